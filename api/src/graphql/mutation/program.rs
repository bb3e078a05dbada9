use async_graphql::{Context, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::types::program::{
    ProgramSettings, ProgramSettingsInput, ScoringModel, ScoringModelInput, TierInput,
};
use crate::graphql::types::tier::Tier;
use crate::service::program;
use crate::store::Db;

#[derive(Default)]
pub struct ProgramMutation;

#[Object]
impl ProgramMutation {
    /// Keyed by `key`.
    #[graphql(guard = "Allow(Permission::ManageProgram)")]
    async fn upsert_tier(&self, ctx: &Context<'_>, input: TierInput) -> Result<Tier> {
        let draft = input.into_draft().gql()?;
        Ok(Tier(
            program::upsert_tier(ctx.data::<Db>()?, draft).await.gql()?,
        ))
    }

    /// Refused while customers hold the tier.
    #[graphql(guard = "Allow(Permission::ManageProgram)")]
    async fn delete_tier(&self, ctx: &Context<'_>, key: String) -> Result<bool> {
        program::delete_tier(ctx.data::<Db>()?, key).await.gql()?;
        Ok(true)
    }

    #[graphql(guard = "Allow(Permission::ManageProgram)")]
    async fn update_scoring_model(
        &self,
        ctx: &Context<'_>,
        input: ScoringModelInput,
    ) -> Result<ScoringModel> {
        Ok(
            program::update_scoring_model(ctx.data::<Db>()?, input.into())
                .await
                .gql()?
                .into(),
        )
    }

    #[graphql(guard = "Allow(Permission::ManageProgram)")]
    async fn update_program_settings(
        &self,
        ctx: &Context<'_>,
        input: ProgramSettingsInput,
    ) -> Result<ProgramSettings> {
        let patch = input.into_patch().gql()?;
        Ok(program::update_settings(ctx.data::<Db>()?, patch)
            .await
            .gql()?
            .into())
    }
}
