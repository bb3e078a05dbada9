//! Campaigns: earning rules and automations (`campaign`), the log of their firings
//! (`campaign_firing`, one row per campaign, customer and cause, so a cause never fires
//! twice), the members an ENTERED_SEGMENT campaign last saw in its segment, the campaign a
//! ledger entry came from, and the program's time zone (a member
//! day is a weekday where the program's customers live).

use sea_orm_migration::{prelude::*, schema::*};

use crate::{add_columns, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaign::Table)
                    .col(uuid(Campaign::Id).primary_key())
                    .col(string_len(Campaign::Name, 200))
                    .col(text_null(Campaign::Description))
                    .col(string_len(Campaign::Status, 16))
                    .col(string_len(Campaign::TriggerKind, 32))
                    .col(json(Campaign::Trigger))
                    .col(json_null(Campaign::Condition))
                    .col(json(Campaign::Actions))
                    .col(timestamp_with_time_zone_null(Campaign::StartsAt))
                    .col(timestamp_with_time_zone_null(Campaign::EndsAt))
                    .col(integer_null(Campaign::LimitPerCustomer))
                    .col(big_integer_null(Campaign::BudgetPoints))
                    .col(big_integer(Campaign::BudgetSpent).default(0))
                    .col(timestamp_with_time_zone_null(Campaign::BudgetExhaustedAt))
                    .col(timestamp_with_time_zone(Campaign::CreatedAt))
                    .col(timestamp_with_time_zone(Campaign::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // What each write path asks: the active campaigns of one trigger.
        manager
            .create_index(index(
                Campaign::Table,
                &[Campaign::Status, Campaign::TriggerKind],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignFiring::Table)
                    .col(uuid(CampaignFiring::Id).primary_key())
                    .col(uuid(CampaignFiring::CampaignId))
                    .col(uuid(CampaignFiring::CustomerId))
                    .col(string_len(CampaignFiring::Cause, 128))
                    .col(big_integer(CampaignFiring::Points))
                    .col(timestamp_with_time_zone(CampaignFiring::FiredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignFiring::Table, CampaignFiring::CampaignId)
                            .to(Campaign::Table, Campaign::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A cause fires a campaign once per customer, whichever replica or retry gets
        // there; its prefix counts a customer's firings for `limitPerCustomer`.
        manager
            .create_index(
                index(
                    CampaignFiring::Table,
                    &[
                        CampaignFiring::CampaignId,
                        CampaignFiring::CustomerId,
                        CampaignFiring::Cause,
                    ],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        // The members an ENTERED_SEGMENT campaign saw in its segment when it last looked:
        // who is in the segment now and not here has entered it.
        manager
            .create_table(
                Table::create()
                    .table(CampaignSegmentMember::Table)
                    .col(uuid(CampaignSegmentMember::CampaignId))
                    .col(uuid(CampaignSegmentMember::CustomerId))
                    .primary_key(
                        Index::create()
                            .col(CampaignSegmentMember::CampaignId)
                            .col(CampaignSegmentMember::CustomerId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                CampaignSegmentMember::Table,
                                CampaignSegmentMember::CampaignId,
                            )
                            .to(Campaign::Table, Campaign::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        add_columns(
            manager,
            PointsEntry::Table,
            [uuid_null(PointsEntry::CampaignId)],
        )
        .await?;
        add_columns(
            manager,
            ProgramSettings::Table,
            [string_len(ProgramSettings::TimeZone, 64)
                .default("Asia/Shanghai")
                .to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(manager, ProgramSettings::Table, [ProgramSettings::TimeZone]).await?;
        crate::drop_columns(manager, PointsEntry::Table, [PointsEntry::CampaignId]).await?;
        for table in ["campaign_segment_member", "campaign_firing", "campaign"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum Campaign {
    Table,
    Id,
    Name,
    Description,
    Status,
    TriggerKind,
    Trigger,
    Condition,
    Actions,
    StartsAt,
    EndsAt,
    LimitPerCustomer,
    BudgetPoints,
    BudgetSpent,
    BudgetExhaustedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum CampaignFiring {
    Table,
    Id,
    CampaignId,
    CustomerId,
    Cause,
    Points,
    FiredAt,
}

#[derive(DeriveIden, Clone)]
enum CampaignSegmentMember {
    Table,
    CampaignId,
    CustomerId,
}

#[derive(DeriveIden, Clone)]
enum PointsEntry {
    Table,
    CampaignId,
}

#[derive(DeriveIden, Clone)]
enum ProgramSettings {
    Table,
    TimeZone,
}
