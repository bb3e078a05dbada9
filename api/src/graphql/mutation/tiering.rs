use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission, guard::principal};
use crate::domain::DomainError;
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::scalars::DateTime;
use crate::graphql::types::evaluation::EvaluationRun;
use crate::graphql::types::tier::TierChange;
use std::sync::Arc;

use crate::jobs::evaluation::{self, Quiet, RunRequest};
use crate::jobs::supervisor::Supervisor;
use crate::service::tier_moves;
use crate::store::Db;
use tracing::Instrument as _;

#[derive(Default)]
pub struct TieringMutation;

#[Object]
impl TieringMutation {
    /// Recomputes metrics, scores, RFM, ABC, lifecycle stages and tiers as of `asOf`
    /// (default now), for everyone or for `customerIds`. With `wait: false` it returns the
    /// RUNNING run at once; poll `evaluationRun(id:)`.
    #[graphql(guard = "Allow(Permission::RunEvaluations)")]
    async fn evaluate_tiers(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime>,
        customer_ids: Option<Vec<ID>>,
        #[graphql(default_with = "Some(true)")] wait: Option<bool>,
    ) -> Result<EvaluationRun> {
        let wait = wait.unwrap_or(true);
        let db = ctx.data::<Db>()?.clone();
        let customer_ids = customer_ids
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| parse_id(id, &format!("customerIds[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .gql()?;
        let request = RunRequest {
            as_of: as_of.map(|at| at.0),
            customer_ids,
            requested_by: principal(ctx)?.subject.clone(),
        };
        let run = evaluation::start(&db, request).await.gql()?;
        let started = run.clone();
        // The run works in a task of the server's supervisor, so that a client that hangs
        // up does not stop it and a server that stops does; its log lines still name the
        // request that started it.
        let (done, finished) = tokio::sync::oneshot::channel();
        ctx.data::<Arc<Supervisor>>()?.spawn_once(
            "evaluation run",
            async move {
                let _ = done.send(evaluation::execute(&db, run, &Quiet).await);
            }
            .instrument(tracing::Span::current()),
        );
        if !wait {
            return Ok(EvaluationRun(started));
        }
        let finished = finished
            .await
            .map_err(|_| DomainError::Internal(anyhow::anyhow!("the evaluation task was stopped")))
            .and_then(|result| result)
            .gql()?;
        Ok(EvaluationRun(finished))
    }

    /// Moves a customer to a tier by hand; the tier holds until the next evaluation run.
    #[graphql(guard = "Allow(Permission::SetCustomerTier)")]
    async fn set_customer_tier(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        tier_key: String,
        note: String,
    ) -> Result<TierChange> {
        let id = parse_id(&customer_id, "customerId").gql()?;
        let change = tier_moves::set_customer_tier(ctx.data::<Db>()?, id, tier_key, note)
            .await
            .gql()?;
        Ok(TierChange(change))
    }
}
