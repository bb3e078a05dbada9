//! A commit-ordered position for outbox events, so that relays read each event once and
//! never skip one that committed late.
//!
//! Ids (UUID v7) follow the order rows were written, not the order they committed: a
//! relay that remembered the last id would miss an event whose transaction started
//! earlier and committed later. On Postgres each row records its transaction id, and
//! relays read only transactions older than every one still running in the database,
//! so that position `(txid, id)` only ever grows. SQLite has one
//! writer at a time, so its `rowid` already is commit order and needs no column.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE event_outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX ix_event_outbox_txid_id ON event_outbox (txid, id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE event_outbox DROP COLUMN txid")
            .await?;
        Ok(())
    }
}
