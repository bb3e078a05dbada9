//! What an evaluation run could not process: one customer's bad data (an amount stored
//! before amounts were bounded, a row the run cannot read) is skipped, counted and named,
//! and the rest of the program is evaluated; it used to fail the whole run.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EvaluationRun {
    Table,
    SkippedCustomers,
    SkippedCustomerIds,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EvaluationRun::Table)
                    .add_column(
                        integer(EvaluationRun::SkippedCustomers)
                            .default(0)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EvaluationRun::Table)
                    .add_column(json_binary_null(EvaluationRun::SkippedCustomerIds))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            EvaluationRun::SkippedCustomers,
            EvaluationRun::SkippedCustomerIds,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(EvaluationRun::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
