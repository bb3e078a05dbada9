//! The churn and spend models' inputs per customer, in place of their outputs.
//!
//! A customer's BG/NBD history (repeat purchase days, first and last purchase day) and
//! its Gamma-Gamma spend change only when it buys, while the models' outputs (`pAlive`,
//! expected purchases, CLV) change for nearly every customer at every run. So rows keep
//! the inputs, written only when they change, and the outputs are computed from them and
//! the current model when read or filtered on (see `domain::analytics::churn`). Days
//! are counted from 1970-01-01 UTC, so that SQL on either database does plain arithmetic
//! with them. Runs record why they did not fit a model in `churn_model_note`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261123_000002_customers::Customer;
use crate::m20261123_000004_segments_and_runs::EvaluationRun;
use crate::{add_columns, drop_columns, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum ChurnColumns {
    RepeatPurchaseDays,
    FirstPurchaseDay,
    LastPurchaseDay,
    RepeatSpendE4,
    ChurnModelNote,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            Customer::Table,
            [
                Customer::PAlive,
                Customer::ExpectedPurchases90d,
                Customer::Clv365E4,
            ],
        )
        .await?;
        add_columns(
            manager,
            Customer::Table,
            [
                integer(ChurnColumns::RepeatPurchaseDays)
                    .default(0)
                    .to_owned(),
                integer_null(ChurnColumns::FirstPurchaseDay),
                integer_null(ChurnColumns::LastPurchaseDay),
                big_integer(ChurnColumns::RepeatSpendE4)
                    .default(0)
                    .to_owned(),
            ],
        )
        .await?;
        add_columns(
            manager,
            EvaluationRun::Table,
            [text_null(ChurnColumns::ChurnModelNote)],
        )
        .await?;
        // The current model is the latest run's that fitted one.
        manager
            .create_index(index(EvaluationRun::Table, &[ChurnColumns::FinishedAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_evaluation_run_finished_at")
                    .table(EvaluationRun::Table)
                    .to_owned(),
            )
            .await?;
        drop_columns(
            manager,
            EvaluationRun::Table,
            [ChurnColumns::ChurnModelNote],
        )
        .await?;
        drop_columns(
            manager,
            Customer::Table,
            [
                ChurnColumns::RepeatPurchaseDays,
                ChurnColumns::FirstPurchaseDay,
                ChurnColumns::LastPurchaseDay,
                ChurnColumns::RepeatSpendE4,
            ],
        )
        .await?;
        add_columns(
            manager,
            Customer::Table,
            [
                double_null(Customer::PAlive),
                double_null(Customer::ExpectedPurchases90d),
                big_integer_null(Customer::Clv365E4),
            ],
        )
        .await
    }
}

// SQLite alters one column per statement.
