//! Indexes for short search terms: a term of one or two characters matches the start of
//! a customer's name, e-mail, phone or externalRef (`CustomerFilter.search`), which the
//! trigram index cannot serve. Each is an index on the lower-cased column in byte order
//! (`COLLATE "C"` on Postgres, SQLite's default), so that a prefix is an index range.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns a short term is matched against.
pub const PREFIX_COLUMNS: [&str; 4] = ["name", "email", "phone", "external_ref"];

/// The indexed expression of `column`, as the search condition must write it to use
/// the index.
pub fn prefix_expression(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("(lower({column}) COLLATE \"C\")"),
        _ => format!("lower({column})"),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        for column in PREFIX_COLUMNS {
            let expression = prefix_expression(backend, column);
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX ix_customer_{column}_prefix ON customer (({expression}))"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in PREFIX_COLUMNS {
            manager
                .get_connection()
                .execute_unprepared(&format!("DROP INDEX ix_customer_{column}_prefix"))
                .await?;
        }
        Ok(())
    }
}
