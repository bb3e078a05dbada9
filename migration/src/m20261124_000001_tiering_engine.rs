//! What the tiering engine needs beyond the first schema: a lifetime purchase count for
//! lifecycle stages, a revision that lets evaluation runs write without overwriting a
//! concurrent live update, when the metrics were last written (to tell which instant
//! they are true for), the manual-tier hold, and a heartbeat that tells a crashed run
//! from a running one.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261123_000002_customers::Customer;
use crate::m20261123_000004_segments_and_runs::EvaluationRun;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE statement.
        for column in [
            integer(CustomerEngine::LifetimePurchaseCount).default(0),
            big_integer(CustomerEngine::Revision).default(0),
            boolean(CustomerEngine::TierHeld).default(false),
            &mut timestamp_with_time_zone_null(CustomerEngine::MetricsWrittenAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customer::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EvaluationRun::Table)
                    .add_column(timestamp_with_time_zone_null(RunEngine::HeartbeatAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EvaluationRun::Table)
                    .drop_column(RunEngine::HeartbeatAt)
                    .to_owned(),
            )
            .await?;
        for column in [
            CustomerEngine::MetricsWrittenAt,
            CustomerEngine::TierHeld,
            CustomerEngine::Revision,
            CustomerEngine::LifetimePurchaseCount,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customer::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum CustomerEngine {
    LifetimePurchaseCount,
    Revision,
    TierHeld,
    MetricsWrittenAt,
}

#[derive(DeriveIden)]
enum RunEngine {
    HeartbeatAt,
}
