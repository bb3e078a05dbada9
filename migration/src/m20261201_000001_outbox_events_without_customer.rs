//! Outbox events about no single customer: `event_outbox.customer_id` becomes nullable,
//! so that an event of the program, a segment or a partner endpoint can be written and
//! read like any other.
//!
//! SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt, keeping each
//! row's `rowid` (a SQLite outbox is read in `rowid` order).

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too (sea-orm-migration runs SQLite migrations on the
    /// pool otherwise): the rebuild is all or nothing, and its statements share one
    /// connection, which the rename needs to see the old table gone.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE event_outbox ALTER COLUMN customer_id DROP NOT NULL",
            )
            .await?;
            return Ok(());
        }
        manager
            .create_table(
                Table::create()
                    .table(Rebuilt::Table)
                    .col(uuid(EventOutbox::Id).primary_key())
                    .col(string_len(EventOutbox::Topic, 32))
                    .col(uuid_null(EventOutbox::CustomerId))
                    .col(uuid(EventOutbox::SubjectId))
                    .col(timestamp_with_time_zone(EventOutbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO event_outbox_rebuilt (rowid, id, topic, customer_id, subject_id, created_at) \
             SELECT rowid, id, topic, customer_id, subject_id, created_at FROM event_outbox",
        )
        .await?;
        db.execute_unprepared("DROP TABLE event_outbox").await?;
        db.execute_unprepared("ALTER TABLE event_outbox_rebuilt RENAME TO event_outbox")
            .await?;
        manager
            .create_index(index(EventOutbox::Table, &[EventOutbox::CreatedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Events without a customer cannot go back into a column that requires one. On
        // SQLite the column stays nullable (putting the constraint back would rebuild the
        // table again); nothing older writes a row without a customer.
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM event_outbox WHERE customer_id IS NULL")
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE event_outbox ALTER COLUMN customer_id SET NOT NULL",
                )
                .await?;
        }
        Ok(())
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

#[derive(DeriveIden, Clone)]
enum Rebuilt {
    #[sea_orm(iden = "event_outbox_rebuilt")]
    Table,
}
