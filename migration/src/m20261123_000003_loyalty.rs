//! What customers do and what it earns them: interactions, the points ledger, rewards,
//! redemptions and referrals.

use sea_orm_migration::{prelude::*, schema::*};

use crate::index;
use crate::m20261123_000001_program::Tier;
use crate::m20261123_000002_customers::Customer;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn to_customer<T: IntoIden>(table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Customer::Table, Customer::Id)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Interaction::Table)
                    .col(uuid(Interaction::Id).primary_key())
                    .col(uuid(Interaction::CustomerId))
                    .col(string_len(Interaction::Kind, 24))
                    .col(timestamp_with_time_zone(Interaction::OccurredAt))
                    .col(big_integer_null(Interaction::AmountE4))
                    .col(string_len_null(Interaction::Currency, 3))
                    .col(string_len_null(Interaction::Channel, 16))
                    .col(integer_null(Interaction::Rating))
                    .col(text_null(Interaction::Note))
                    .col(string_len_null(Interaction::OrderRef, 200))
                    .col(string_len(Interaction::RecordedBy, 200))
                    .col(timestamp_with_time_zone(Interaction::RecordedAt))
                    .foreign_key(&mut to_customer(
                        Interaction::Table,
                        Interaction::CustomerId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                Interaction::Table,
                &[
                    Interaction::CustomerId,
                    Interaction::OccurredAt,
                    Interaction::Id,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                Interaction::Table,
                &[
                    Interaction::CustomerId,
                    Interaction::Kind,
                    Interaction::OccurredAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                Interaction::Table,
                &[Interaction::CustomerId, Interaction::OrderRef],
            ))
            .await?;
        manager
            .create_index(index(Interaction::Table, &[Interaction::OccurredAt]))
            .await?;

        // Append-only: rows are never updated or deleted; corrections are new entries.
        manager
            .create_table(
                Table::create()
                    .table(PointsEntry::Table)
                    .col(uuid(PointsEntry::Id).primary_key())
                    .col(uuid(PointsEntry::CustomerId))
                    .col(big_integer(PointsEntry::Delta))
                    .col(big_integer(PointsEntry::BalanceAfter))
                    .col(string_len(PointsEntry::Kind, 16))
                    .col(text_null(PointsEntry::Reason))
                    .col(timestamp_with_time_zone_null(PointsEntry::ExpiresAt))
                    .col(uuid_null(PointsEntry::InteractionId))
                    .col(string_len(PointsEntry::CreatedBy, 200))
                    .col(timestamp_with_time_zone(PointsEntry::CreatedAt))
                    .foreign_key(&mut to_customer(
                        PointsEntry::Table,
                        PointsEntry::CustomerId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PointsEntry::Table, PointsEntry::InteractionId)
                            .to(Interaction::Table, Interaction::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                PointsEntry::Table,
                &[
                    PointsEntry::CustomerId,
                    PointsEntry::CreatedAt,
                    PointsEntry::Id,
                ],
            ))
            .await?;
        manager
            .create_index(index(PointsEntry::Table, &[PointsEntry::InteractionId]))
            .await?;
        manager
            .create_index(index(PointsEntry::Table, &[PointsEntry::ExpiresAt]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reward::Table)
                    .col(uuid(Reward::Id).primary_key())
                    .col(string_len(Reward::Name, 200))
                    .col(text_null(Reward::Description))
                    .col(big_integer(Reward::CostPoints))
                    .col(integer_null(Reward::Stock))
                    .col(boolean(Reward::Active))
                    .col(uuid_null(Reward::MinTierId))
                    .col(timestamp_with_time_zone(Reward::CreatedAt))
                    .col(timestamp_with_time_zone(Reward::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reward::Table, Reward::MinTierId)
                            .to(Tier::Table, Tier::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(Reward::Table, &[Reward::Active, Reward::CostPoints]))
            .await?;
        manager
            .create_index(index(Reward::Table, &[Reward::MinTierId]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Redemption::Table)
                    .col(uuid(Redemption::Id).primary_key())
                    .col(uuid(Redemption::CustomerId))
                    .col(uuid(Redemption::RewardId))
                    .col(big_integer(Redemption::PointsSpent))
                    .col(uuid(Redemption::EntryId))
                    .col(timestamp_with_time_zone(Redemption::RedeemedAt))
                    .foreign_key(&mut to_customer(Redemption::Table, Redemption::CustomerId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Redemption::Table, Redemption::RewardId)
                            .to(Reward::Table, Reward::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Redemption::Table, Redemption::EntryId)
                            .to(PointsEntry::Table, PointsEntry::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                Redemption::Table,
                &[Redemption::CustomerId, Redemption::RedeemedAt],
            ))
            .await?;
        manager
            .create_index(index(Redemption::Table, &[Redemption::RewardId]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Referral::Table)
                    .col(uuid(Referral::Id).primary_key())
                    .col(uuid(Referral::ReferrerId))
                    // One referral per referee: the database, not a prior check, decides.
                    .col(uuid_uniq(Referral::RefereeId))
                    .col(string_len(Referral::Code, 16))
                    .col(string_len(Referral::Status, 16))
                    .col(big_integer(Referral::ReferrerPoints).default(0))
                    .col(big_integer(Referral::RefereePoints).default(0))
                    .col(timestamp_with_time_zone(Referral::CreatedAt))
                    .col(timestamp_with_time_zone_null(Referral::RewardedAt))
                    .foreign_key(&mut to_customer(Referral::Table, Referral::ReferrerId))
                    .foreign_key(&mut to_customer(Referral::Table, Referral::RefereeId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                Referral::Table,
                &[Referral::ReferrerId, Referral::Status, Referral::RewardedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Referral::Table.into_iden(),
            Redemption::Table.into_iden(),
            Reward::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(PointsEntry::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Interaction::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone)]
enum Interaction {
    Table,
    Id,
    CustomerId,
    Kind,
    OccurredAt,
    AmountE4,
    Currency,
    Channel,
    Rating,
    Note,
    OrderRef,
    RecordedBy,
    RecordedAt,
}

#[derive(DeriveIden, Clone)]
enum PointsEntry {
    Table,
    Id,
    CustomerId,
    Delta,
    BalanceAfter,
    Kind,
    Reason,
    ExpiresAt,
    InteractionId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum Reward {
    Table,
    Id,
    Name,
    Description,
    CostPoints,
    Stock,
    Active,
    MinTierId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum Redemption {
    Table,
    Id,
    CustomerId,
    RewardId,
    PointsSpent,
    EntryId,
    RedeemedAt,
}

#[derive(DeriveIden, Clone)]
enum Referral {
    Table,
    Id,
    ReferrerId,
    RefereeId,
    Code,
    Status,
    ReferrerPoints,
    RefereePoints,
    CreatedAt,
    RewardedAt,
}
