//! A tier change keeps the breakdown of the score that decided it
//! (`tier_change.breakdown`: each indicator's value, band, points and weight as they
//! were then), so that the history explains itself after the scoring model changes.
//! Changes recorded before this migration have none.

use sea_orm_migration::{prelude::*, schema::*};

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            TierChange::Table,
            [json_null(TierChange::Breakdown)],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(manager, TierChange::Table, [TierChange::Breakdown]).await
    }
}

#[derive(DeriveIden, Clone)]
enum TierChange {
    Table,
    Breakdown,
}
