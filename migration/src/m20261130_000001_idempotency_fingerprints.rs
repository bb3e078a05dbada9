//! Idempotency keys remember what they were used for.
//!
//! A key was stored with the operation and the id of what it produced, and any later
//! call with the same key replayed that result, whatever it asked for: a second
//! customer (or a partner reusing a receipt number for another customer) received the
//! first call's redemption. Each key now keeps a fingerprint of its request (customer,
//! reward, amount…): the same request replays, a different one is refused. Keys stored
//! before this migration have none and replay as before.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    Fingerprint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKey::Table)
                    .add_column(string_null(IdempotencyKey::Fingerprint))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKey::Table)
                    .drop_column(IdempotencyKey::Fingerprint)
                    .to_owned(),
            )
            .await
    }
}
