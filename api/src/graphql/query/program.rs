use async_graphql::{Context, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::types::program::{ProgramSettings, ScoringModel};
use crate::graphql::types::stats::{LifecycleCount, ProgramStats, TierCount};
use crate::graphql::types::tier::Tier;
use crate::store::{Db, customers, program, tiers};

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

    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn program_stats(&self, ctx: &Context<'_>) -> Result<ProgramStats> {
        use sea_orm::Iterable;
        let db = ctx.data::<Db>()?.conn();
        let tiers = tiers::all(db).await.gql()?;
        let ids: Vec<_> = tiers.iter().map(|t| t.id).collect();
        let by_tier = customers::count_by_tier(db, &ids).await.gql()?;
        let by_stage = customers::count_by_stage(db).await.gql()?;
        let (customer_count, points_outstanding) = customers::count_and_points(db).await.gql()?;
        Ok(ProgramStats {
            customer_count,
            tier_distribution: tiers
                .into_iter()
                .map(|tier| TierCount {
                    count: by_tier.get(&tier.id).copied().unwrap_or(0),
                    tier: Tier(tier),
                })
                .collect(),
            lifecycle_distribution: entity::enums::LifecycleStage::iter()
                .map(|stage| LifecycleCount {
                    stage: stage.into(),
                    count: by_stage.get(&stage).copied().unwrap_or(0),
                })
                .collect(),
            points_outstanding,
        })
    }
}
