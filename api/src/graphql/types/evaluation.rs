//! `EvaluationRun`: what a run was asked to do and what it did.

use async_graphql::{ID, Object};
use entity::evaluation_run;

use super::enums::EvaluationStatus;
use crate::graphql::scalars::DateTime;

pub struct EvaluationRun(pub evaluation_run::Model);

#[Object]
impl EvaluationRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn status(&self) -> EvaluationStatus {
        self.0.status.into()
    }

    async fn as_of(&self) -> DateTime {
        self.0.as_of.into()
    }

    async fn started_at(&self) -> DateTime {
        self.0.started_at.into()
    }

    async fn finished_at(&self) -> Option<DateTime> {
        self.0.finished_at.map(Into::into)
    }

    async fn customers_evaluated(&self) -> i32 {
        self.0.customers_evaluated
    }

    async fn upgrades(&self) -> i32 {
        self.0.upgrades
    }

    async fn downgrades(&self) -> i32 {
        self.0.downgrades
    }

    async fn points_expired(&self) -> i64 {
        self.0.points_expired
    }

    /// Why the run failed, for a FAILED run.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}
