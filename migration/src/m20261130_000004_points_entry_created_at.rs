//! An index on when ledger entries were written: an evaluation run's expiry looks at
//! the customers whose ledgers changed since the last full run (`points::expiry_candidates`)
//! rather than at everyone who ever held an expiring lot.

use sea_orm_migration::prelude::*;

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum PointsEntry {
    Table,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(PointsEntry::Table, &[PointsEntry::CreatedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_points_entry_created_at")
                    .table(PointsEntry::Table)
                    .to_owned(),
            )
            .await
    }
}
