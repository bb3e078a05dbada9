//! What an evaluation run could not process: one customer's bad data (an amount stored
//! before amounts were bounded, a row the run cannot read) is skipped, counted and named,
//! and the rest of the program is evaluated; it used to fail the whole run.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum EvaluationRun {
    Table,
    SkippedCustomers,
    SkippedCustomerIds,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            integer(EvaluationRun::SkippedCustomers)
                .default(0)
                .to_owned(),
            json_binary_null(EvaluationRun::SkippedCustomerIds),
        ];
        add_columns(manager, EvaluationRun::Table, columns).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            EvaluationRun::SkippedCustomers,
            EvaluationRun::SkippedCustomerIds,
        ];
        drop_columns(manager, EvaluationRun::Table, columns).await
    }
}
