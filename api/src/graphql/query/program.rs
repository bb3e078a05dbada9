use async_graphql::{Context, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::types::program::{ProgramSettings, ScoringModel};
use crate::graphql::types::tier::Tier;
use crate::store::{Db, program, tiers};

#[derive(Default)]
pub struct ProgramQuery;

#[Object]
impl ProgramQuery {
    /// By rank, lowest first.
    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn tiers(&self, ctx: &Context<'_>) -> Result<Vec<Tier>> {
        Ok(tiers::all(ctx.data::<Db>()?.conn())
            .await
            .gql()?
            .into_iter()
            .map(Tier)
            .collect())
    }

    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn scoring_model(&self, ctx: &Context<'_>) -> Result<ScoringModel> {
        Ok(program::scoring_model(ctx.data::<Db>()?.conn())
            .await
            .gql()?
            .into())
    }

    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn program_settings(&self, ctx: &Context<'_>) -> Result<ProgramSettings> {
        Ok(program::settings(ctx.data::<Db>()?.conn())
            .await
            .gql()?
            .into())
    }
}
