use async_graphql::{Context, Object, Result};

use crate::auth::{Allow, Permission, guard::principal};
use crate::graphql::error::Gql;
use crate::graphql::types::interaction::{RecordInteractionInput, RecordInteractionPayload};
use crate::service::interactions::{self, MAX_BATCH};
use crate::store::Db;

#[derive(Default)]
pub struct InteractionMutation;

#[Object]
impl InteractionMutation {
    #[graphql(guard = "Allow(Permission::RecordInteractions)")]
    async fn record_interaction(
        &self,
        ctx: &Context<'_>,
        input: RecordInteractionInput,
    ) -> Result<RecordInteractionPayload> {
        let caller = principal(ctx)?.caller();
        let request = input.into_request("input").gql()?;
        let recorded = interactions::record(ctx.data::<Db>()?, caller, request)
            .await
            .gql()?;
        Ok(recorded.into())
    }

    /// Up to 1000, all or nothing.
    #[graphql(
        guard = "Allow(Permission::RecordInteractions)",
        complexity = "crate::graphql::cost::list(inputs.len().min(MAX_BATCH), child_complexity)"
    )]
    async fn record_interactions(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<RecordInteractionInput>,
    ) -> Result<Vec<RecordInteractionPayload>> {
        let caller = principal(ctx)?.caller();
        let requests = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| input.into_request(&format!("inputs[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .gql()?;
        let recorded = interactions::record_many(ctx.data::<Db>()?, caller, requests)
            .await
            .gql()?;
        Ok(recorded.into_iter().map(Into::into).collect())
    }
}
