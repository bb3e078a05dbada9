//! `EvaluationRun`: what a run was asked to do and what it did; `ChurnModel` and
//! `SpendModel`: the models a run fitted.

use async_graphql::{ID, Object, SimpleObject};
use entity::evaluation_run;

use super::enums::EvaluationStatus;
use crate::domain::analytics::churn;
use crate::graphql::scalars::DateTime;
use crate::store::evaluation_runs::churn_model_of;

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

    /// Customers the run could not process and skipped (their data is out of any valid
    /// range, e.g. an amount stored before amounts were bounded); the rest of the
    /// program was evaluated. Each is logged.
    async fn skipped_customers(&self) -> i32 {
        self.0.skipped_customers
    }

    /// The first 100 of the skipped customers.
    async fn skipped_customer_ids(&self) -> Vec<ID> {
        self.0
            .skipped_customer_ids
            .as_ref()
            .and_then(|ids| serde_json::from_value::<Vec<uuid::Uuid>>(ids.clone()).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|id| ID(id.to_string()))
            .collect()
    }

    /// Why the run failed, for a FAILED run.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// The churn and spend models this run fitted; `null` when it fitted none (see
    /// `churnModelNote`), and the model in use stays the previous one.
    async fn churn_model(&self) -> Option<ChurnModel> {
        churn_model_of(&self.0).map(ChurnModel)
    }

    /// Why the run fitted no churn model, or no spend model: too few customers, nobody
    /// with a repeat purchase, a run limited to some customers.
    async fn churn_model_note(&self) -> Option<&str> {
        self.0.churn_model_note.as_deref()
    }
}

/// BG/NBD (Fader, Hardie & Lee 2005) fitted by maximum likelihood; the time unit is the
/// week. Purchase rates λ ~ Gamma(r, α); drop-out probabilities p ~ Beta(a, b).
pub struct ChurnModel(pub churn::ChurnModel);

#[Object]
impl ChurnModel {
    async fn r(&self) -> f64 {
        self.0.purchases.r
    }

    async fn alpha(&self) -> f64 {
        self.0.purchases.alpha
    }

    async fn a(&self) -> f64 {
        self.0.purchases.a
    }

    async fn b(&self) -> f64 {
        self.0.purchases.b
    }

    /// Customers with a purchase the model was fitted to.
    async fn customers(&self) -> i64 {
        self.0.purchases.customers as i64
    }

    async fn log_likelihood(&self) -> f64 {
        self.0.purchases.log_likelihood
    }

    /// The instant histories were observed to (the run's `asOf`).
    async fn as_of(&self) -> DateTime {
        self.0.as_of.into()
    }

    /// Gamma-Gamma (Fader, Hardie & Lee 2005) over repeat buyers; `null` when too few.
    async fn spend(&self) -> Option<SpendModel> {
        self.0.spend.map(|spend| SpendModel {
            p: spend.p,
            q: spend.q,
            gamma: spend.gamma,
            customers: spend.customers as i64,
        })
    }
}

/// Spend per transaction ~ Gamma(p, ν), ν ~ Gamma(q, γ).
#[derive(SimpleObject)]
pub struct SpendModel {
    p: f64,
    q: f64,
    gamma: f64,
    /// Repeat buyers the model was fitted to.
    customers: i64,
}
