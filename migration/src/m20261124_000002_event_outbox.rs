//! The transactional outbox: every ledger entry and tier change writes an event row in
//! its own transaction, so that the live-events relay publishes exactly what committed.

use sea_orm_migration::{prelude::*, schema::*};

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventOutbox::Table)
                    .col(uuid(EventOutbox::Id).primary_key())
                    .col(string_len(EventOutbox::Topic, 32))
                    .col(uuid(EventOutbox::CustomerId))
                    .col(uuid(EventOutbox::SubjectId))
                    .col(timestamp_with_time_zone(EventOutbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(EventOutbox::Table, &[EventOutbox::CreatedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone)]
enum EventOutbox {
    Table,
    Id,
    Topic,
    CustomerId,
    SubjectId,
    CreatedAt,
}
