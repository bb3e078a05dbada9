//! Leases for periodic background jobs: one row per job, naming the latest slot some
//! replica claimed. Every replica runs every schedule; claiming a slot is one conditional
//! upsert, so exactly one replica runs each slot (`store::leases`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE job_lease (
                   job varchar(100) PRIMARY KEY,
                   slot bigint NOT NULL,
                   holder varchar(200) NOT NULL,
                   claimed_at bigint NOT NULL
                 )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE job_lease")
            .await?;
        Ok(())
    }
}
