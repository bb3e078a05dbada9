use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id_or_none;
use crate::graphql::scalars::DateTime;
use crate::graphql::types::campaign::{
    Campaign, CampaignInput, CampaignSimulation, CampaignStatus,
};
use crate::service::campaigns::{self, MAX_LISTED, simulate};
use crate::store::Db;

#[derive(Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    /// Newest first, at most 200 (every campaign that has not ended fits); `status`
    /// narrows to those statuses.
    #[graphql(
        guard = "Allow(Permission::ReadCampaigns)",
        complexity = "crate::graphql::cost::list(crate::service::campaigns::MAX_LISTED as usize, child_complexity)"
    )]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<CampaignStatus>>,
    ) -> Result<Vec<Campaign>> {
        // Four statuses exist: a list of any length asks for at most those four.
        let statuses: Option<Vec<entity::enums::CampaignStatus>> = status.map(|s| {
            let asked: std::collections::HashSet<entity::enums::CampaignStatus> =
                s.into_iter().map(Into::into).collect();
            asked.into_iter().collect()
        });
        let found = crate::store::campaigns::list(
            ctx.data::<Db>()?.conn(),
            statuses.as_deref(),
            MAX_LISTED,
        )
        .await
        .gql()?;
        Ok(found.into_iter().map(Campaign).collect())
    }

    /// `null` when no campaign has this id.
    #[graphql(guard = "Allow(Permission::ReadCampaigns)")]
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Campaign>> {
        let Some(id) = parse_id_or_none(&id) else {
            return Ok(None);
        };
        Ok(crate::store::campaigns::find(ctx.data::<Db>()?.conn(), id)
            .await
            .gql()?
            .map(Campaign))
    }

    /// Replays the recorded history in `[from, to)` (at most 366 days, not in the future)
    /// through `input` as if it had been active, with the program as it is now, writing
    /// nothing. One per request; at most two run at once per server, and one that runs
    /// longer than 20 s stops with an error (simulate a shorter period).
    #[graphql(
        guard = "Allow(Permission::ReadCampaigns)",
        complexity = "crate::graphql::cost::SIMULATION + child_complexity"
    )]
    async fn simulate_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
        from: DateTime,
        to: DateTime,
    ) -> Result<CampaignSimulation> {
        let db = ctx.data::<Db>()?;
        simulate::check_period(from.0, to.0).gql()?;
        let input = input.into_input().gql()?;
        let draft = campaigns::draft(db, input, "input").await.gql()?;
        let simulation = simulate::simulate(db, draft, from.0, to.0).await.gql()?;
        Ok(CampaignSimulation(simulation))
    }
}
