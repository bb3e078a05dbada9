//! Persisted operations (`persisted_document`): documents by the SHA-256 of their text.
//! Apollo's automatic persisted queries register them as clients first send them
//! (`trusted` false, a bounded number kept); `tierwise persist` registers an app's
//! manifest (`trusted` true), which `TRUSTED_DOCUMENTS` limits callers to. Shared
//! through the database, so that every replica knows what any replica was sent.

use sea_orm_migration::{prelude::*, schema::*};

use crate::index;

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
                    .table(PersistedDocument::Table)
                    .col(string_len(PersistedDocument::Hash, 64).primary_key())
                    .col(text(PersistedDocument::Document))
                    .col(boolean(PersistedDocument::Trusted))
                    .col(timestamp_with_time_zone(PersistedDocument::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The automatic ones are pruned oldest first.
        manager
            .create_index(index(
                PersistedDocument::Table,
                &[PersistedDocument::Trusted, PersistedDocument::CreatedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PersistedDocument::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone)]
enum PersistedDocument {
    Table,
    Hash,
    Document,
    Trusted,
    CreatedAt,
}
