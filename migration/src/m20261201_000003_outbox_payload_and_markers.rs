//! Events that carry their own figures (a lifecycle change's stages, an expiring lot's
//! points) keep them in the outbox row (`payload`); and `event_marker` remembers the
//! events that must happen once (a birthday a year, a reminder a lot), whichever replica
//! looks first.

use sea_orm_migration::{prelude::*, schema::*};

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            EventOutbox::Table,
            [json_null(EventOutbox::Payload)],
        )
        .await?;
        add_columns(
            manager,
            ProgramSettings::Table,
            [integer(ProgramSettings::PointsExpiryReminderDays)
                .default(30)
                .to_owned()],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventMarker::Table)
                    .col(string_len(EventMarker::Key, 128).primary_key())
                    .col(timestamp_with_time_zone(EventMarker::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventMarker::Table).to_owned())
            .await?;
        crate::drop_columns(manager, EventOutbox::Table, [EventOutbox::Payload]).await?;
        crate::drop_columns(
            manager,
            ProgramSettings::Table,
            [ProgramSettings::PointsExpiryReminderDays],
        )
        .await
    }
}

#[derive(DeriveIden, Clone)]
enum EventOutbox {
    Table,
    Payload,
}

#[derive(DeriveIden, Clone)]
enum ProgramSettings {
    Table,
    PointsExpiryReminderDays,
}

#[derive(DeriveIden, Clone)]
enum EventMarker {
    Table,
    Key,
    CreatedAt,
}
