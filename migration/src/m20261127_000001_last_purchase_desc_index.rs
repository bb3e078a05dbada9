//! An index for customers by last purchase, most recent first. Customers who never bought
//! come last in both directions (`NULLS LAST`); the ascending index serves ascending
//! pages, but walked backwards it puts them first, so Postgres sorted the whole table
//! for every descending page. SQLite already sorts NULLs last when descending.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_customer_last_purchase_at_desc_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX {NAME} ON customer (last_purchase_at DESC NULLS LAST, id DESC)"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!("DROP INDEX {NAME}"))
                .await?;
        }
        Ok(())
    }
}
