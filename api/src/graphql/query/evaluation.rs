use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id_or_none;
use crate::graphql::types::evaluation::{ChurnModel, EvaluationRun};
use crate::store::{Db, evaluation_runs};

#[derive(Default)]
pub struct EvaluationQuery;

#[Object]
impl EvaluationQuery {
    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn evaluation_run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<EvaluationRun>> {
        let Some(id) = parse_id_or_none(&id) else {
            return Ok(None);
        };
        Ok(evaluation_runs::find(ctx.data::<Db>()?.conn(), id)
            .await
            .gql()?
            .map(EvaluationRun))
    }

    /// The churn model in use: the latest one an evaluation run fitted; `null` until a
    /// run has fitted one.
    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn churn_model(&self, ctx: &Context<'_>) -> Result<Option<ChurnModel>> {
        Ok(
            evaluation_runs::current_churn_model(ctx.data::<Db>()?.conn())
                .await
                .gql()?
                .map(ChurnModel),
        )
    }
}
