//! The points lifecycle: pending points (`pending_points`: what a purchase earned that is
//! not spendable until its return window closes, `points_entry.available_at`,
//! `customer.points_pending`), transfers between members (`points_transfer`), member
//! merge (`customer.merged_into_id`: a merged member is a tombstone naming its survivor)
//! and the program's expiry policy.

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
                    .table(PendingPoints::Table)
                    .col(uuid(PendingPoints::Id).primary_key())
                    .col(uuid(PendingPoints::CustomerId))
                    .col(uuid(PendingPoints::EntryId))
                    .col(string_len_null(PendingPoints::OrderRef, 200))
                    .col(big_integer(PendingPoints::Points))
                    .col(timestamp_with_time_zone(PendingPoints::AvailableAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(PendingPoints::Table, &[PendingPoints::AvailableAt]))
            .await?;
        manager
            .create_index(index(
                PendingPoints::Table,
                &[PendingPoints::CustomerId, PendingPoints::OrderRef],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PointsTransfer::Table)
                    .col(uuid(PointsTransfer::Id).primary_key())
                    .col(uuid(PointsTransfer::FromCustomerId))
                    .col(uuid(PointsTransfer::ToCustomerId))
                    .col(big_integer(PointsTransfer::Points))
                    .col(text_null(PointsTransfer::Note))
                    .col(boolean(PointsTransfer::Merge).default(false))
                    .col(string_len(PointsTransfer::CreatedBy, 200))
                    .col(timestamp_with_time_zone(PointsTransfer::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                PointsTransfer::Table,
                &[PointsTransfer::FromCustomerId, PointsTransfer::CreatedAt],
            ))
            .await?;
        add_columns(
            manager,
            PointsEntry::Table,
            [
                timestamp_with_time_zone_null(PointsEntry::AvailableAt),
                uuid_null(PointsEntry::TransferId),
            ],
        )
        .await?;
        add_columns(
            manager,
            Customer::Table,
            [
                big_integer(Customer::PointsPending).default(0).to_owned(),
                uuid_null(Customer::MergedIntoId),
            ],
        )
        .await?;
        manager
            .create_index(index(Customer::Table, &[Customer::MergedIntoId]))
            .await?;
        add_columns(
            manager,
            ProgramSettings::Table,
            [
                integer(ProgramSettings::PendingDays).default(0).to_owned(),
                string_len(ProgramSettings::PointsExpiryPolicy, 16)
                    .default("ROLLING")
                    .to_owned(),
                integer(ProgramSettings::PointsExpiryYears)
                    .default(1)
                    .to_owned(),
                boolean(ProgramSettings::TransfersEnabled)
                    .default(false)
                    .to_owned(),
                big_integer_null(ProgramSettings::MaxTransferPerMonth),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(
            manager,
            ProgramSettings::Table,
            [
                ProgramSettings::PendingDays,
                ProgramSettings::PointsExpiryPolicy,
                ProgramSettings::PointsExpiryYears,
                ProgramSettings::TransfersEnabled,
                ProgramSettings::MaxTransferPerMonth,
            ],
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_customer_merged_into_id")
                    .table(Customer::Table)
                    .to_owned(),
            )
            .await?;
        crate::drop_columns(
            manager,
            Customer::Table,
            [Customer::PointsPending, Customer::MergedIntoId],
        )
        .await?;
        crate::drop_columns(
            manager,
            PointsEntry::Table,
            [PointsEntry::AvailableAt, PointsEntry::TransferId],
        )
        .await?;
        for table in ["points_transfer", "pending_points"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum PendingPoints {
    Table,
    Id,
    CustomerId,
    EntryId,
    OrderRef,
    Points,
    AvailableAt,
}

#[derive(DeriveIden, Clone)]
enum PointsTransfer {
    Table,
    Id,
    FromCustomerId,
    ToCustomerId,
    Points,
    Note,
    Merge,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum PointsEntry {
    Table,
    AvailableAt,
    TransferId,
}

#[derive(DeriveIden, Clone)]
enum Customer {
    Table,
    PointsPending,
    MergedIntoId,
}

#[derive(DeriveIden, Clone)]
enum ProgramSettings {
    Table,
    PendingDays,
    PointsExpiryPolicy,
    PointsExpiryYears,
    TransfersEnabled,
    MaxTransferPerMonth,
}
