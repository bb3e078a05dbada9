//! Idempotency keys remember what they were used for.
//!
//! A key was stored with the operation and the id of what it produced, and any later
//! call with the same key replayed that result, whatever it asked for: a second
//! customer (or a partner reusing a receipt number for another customer) received the
//! first call's redemption. Each key now keeps a fingerprint of its request (customer,
//! reward, amount…): the same request replays, a different one is refused, and so is a
//! key stored before this migration, which has none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum IdempotencyKey {
    Table,
    Fingerprint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let fingerprint = string_null(IdempotencyKey::Fingerprint);
        add_columns(manager, IdempotencyKey::Table, [fingerprint]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            IdempotencyKey::Table,
            [IdempotencyKey::Fingerprint],
        )
        .await
    }
}
