//! Customers with their current tier, score and value metrics; their tags; tier history.
//!
//! The metrics live on the customer row itself so that every filter and order the API
//! offers (score, spend, last purchase, RFM, ABC, lifecycle) is one indexed column of one
//! table, and a segment count over a million customers needs no join.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

use crate::index;
use crate::m20261123_000001_program::Tier;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The expression the `search` filter matches against: one lower-cased string of the
/// searchable fields, separated by the unit separator (U+001F, written literally because
/// Postgres and SQLite name the function that makes it differently) so that a match
/// cannot span two fields. The trigram index below is built on exactly this text.
pub const SEARCH_EXPRESSION: &str = "lower(coalesce(name, '') || '\u{1f}' || coalesce(email, '') || '\u{1f}' || coalesce(phone, '') || '\u{1f}' || coalesce(external_ref, ''))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Customer::Table)
                    .col(uuid(Customer::Id).primary_key())
                    .col(string_len_null(Customer::ExternalRef, 200).unique_key())
                    .col(string_len(Customer::Name, 200))
                    .col(string_len_null(Customer::Email, 254))
                    .col(string_len_null(Customer::Phone, 40))
                    .col(string_len(Customer::Kind, 16))
                    .col(string_len_null(Customer::Industry, 200))
                    .col(string_len_null(Customer::Region, 200))
                    .col(date_null(Customer::Birthday))
                    .col(json_binary(Customer::Attributes))
                    .col(string_len(Customer::LifecycleStage, 16))
                    .col(uuid(Customer::TierId))
                    .col(double(Customer::Score).default(0.0))
                    .col(timestamp_with_time_zone_null(Customer::DowngradeMarkedAt))
                    .col(big_integer(Customer::PointsBalance).default(0))
                    .col(string_len_uniq(Customer::ReferralCode, 16))
                    .col(uuid_null(Customer::ReferredById))
                    // Metrics, as of `metrics_as_of`.
                    .col(timestamp_with_time_zone(Customer::MetricsAsOf))
                    .col(timestamp_with_time_zone_null(Customer::FirstPurchaseAt))
                    .col(timestamp_with_time_zone_null(Customer::LastPurchaseAt))
                    .col(integer(Customer::PurchaseCount).default(0))
                    .col(big_integer(Customer::NetSpendE4).default(0))
                    .col(big_integer(Customer::LifetimeSpendE4).default(0))
                    .col(big_integer_null(Customer::AverageOrderValueE4))
                    .col(integer(Customer::EngagementCount).default(0))
                    .col(integer_null(Customer::LatestNps))
                    .col(small_integer_null(Customer::RfmRecency))
                    .col(small_integer_null(Customer::RfmFrequency))
                    .col(small_integer_null(Customer::RfmMonetary))
                    .col(string_len_null(Customer::RfmSegment, 24))
                    .col(string_len(Customer::AbcClass, 1).default("C"))
                    .col(big_integer(Customer::OutstandingReceivableE4).default(0))
                    .col(double_null(Customer::PAlive))
                    .col(double_null(Customer::ExpectedPurchases90d))
                    .col(big_integer_null(Customer::Clv365E4))
                    .col(timestamp_with_time_zone_null(Customer::ErasedAt))
                    .col(timestamp_with_time_zone(Customer::CreatedAt))
                    .col(timestamp_with_time_zone(Customer::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Customer::Table, Customer::TierId)
                            .to(Tier::Table, Tier::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Customer::Table, Customer::ReferredById)
                            .to(Customer::Table, Customer::Id),
                    )
                    .to_owned(),
            )
            .await?;

        // One index for every filter and order `customers` offers; each ends with the id,
        // the tie-breaker of every keyset cursor.
        for column in [
            Customer::Name,
            Customer::CreatedAt,
            Customer::Score,
            Customer::LifetimeSpendE4,
            Customer::PointsBalance,
            Customer::LastPurchaseAt,
            Customer::TierId,
            Customer::LifecycleStage,
            Customer::Kind,
            Customer::AbcClass,
            Customer::RfmSegment,
            Customer::ReferredById,
        ] {
            manager
                .create_index(index(Customer::Table, &[column, Customer::Id]))
                .await?;
        }

        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Substring search wants a trigram index; pg_trgm ships with Postgres but may
            // not be installable by the migrating role, in which case search still works,
            // by scanning.
            let db = manager.get_connection();
            db.execute_unprepared(
                "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm; \
                 EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'pg_trgm unavailable'; END $$",
            )
            .await?;
            db.execute_unprepared(&format!(
                "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN \
                 CREATE INDEX ix_customer_search ON customer USING gin (({SEARCH_EXPRESSION}) gin_trgm_ops); \
                 END IF; END $$"
            ))
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(CustomerTag::Table)
                    .col(uuid(CustomerTag::CustomerId))
                    .col(string_len(CustomerTag::Tag, 100))
                    .primary_key(
                        Index::create()
                            .col(CustomerTag::CustomerId)
                            .col(CustomerTag::Tag),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CustomerTag::Table, CustomerTag::CustomerId)
                            .to(Customer::Table, Customer::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                CustomerTag::Table,
                &[CustomerTag::Tag, CustomerTag::CustomerId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TierChange::Table)
                    .col(uuid(TierChange::Id).primary_key())
                    .col(uuid(TierChange::CustomerId))
                    .col(uuid_null(TierChange::FromTierId))
                    .col(uuid(TierChange::ToTierId))
                    .col(string_len(TierChange::Reason, 16))
                    .col(double(TierChange::Score))
                    .col(text_null(TierChange::Note))
                    .col(uuid_null(TierChange::EvaluationRunId))
                    .col(timestamp_with_time_zone(TierChange::ChangedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TierChange::Table, TierChange::CustomerId)
                            .to(Customer::Table, Customer::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TierChange::Table, TierChange::FromTierId)
                            .to(Tier::Table, Tier::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TierChange::Table, TierChange::ToTierId)
                            .to(Tier::Table, Tier::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                TierChange::Table,
                &[
                    TierChange::CustomerId,
                    TierChange::ChangedAt,
                    TierChange::Id,
                ],
            ))
            .await?;
        manager
            .create_index(index(TierChange::Table, &[TierChange::FromTierId]))
            .await?;
        manager
            .create_index(index(TierChange::Table, &[TierChange::ToTierId]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TierChange::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CustomerTag::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Customer::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone)]
pub(crate) enum Customer {
    Table,
    Id,
    ExternalRef,
    Name,
    Email,
    Phone,
    Kind,
    Industry,
    Region,
    Birthday,
    Attributes,
    LifecycleStage,
    TierId,
    Score,
    DowngradeMarkedAt,
    PointsBalance,
    ReferralCode,
    ReferredById,
    MetricsAsOf,
    FirstPurchaseAt,
    LastPurchaseAt,
    PurchaseCount,
    NetSpendE4,
    LifetimeSpendE4,
    AverageOrderValueE4,
    EngagementCount,
    LatestNps,
    RfmRecency,
    RfmFrequency,
    RfmMonetary,
    RfmSegment,
    AbcClass,
    OutstandingReceivableE4,
    PAlive,
    ExpectedPurchases90d,
    Clv365E4,
    ErasedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum CustomerTag {
    Table,
    CustomerId,
    Tag,
}

#[derive(DeriveIden, Clone)]
enum TierChange {
    Table,
    Id,
    CustomerId,
    FromTierId,
    ToTierId,
    Reason,
    Score,
    Note,
    EvaluationRunId,
    ChangedAt,
}
