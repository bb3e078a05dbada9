use async_graphql::{Context, ID, Object, Result};
use entity::enums::CampaignStatus;

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::types::campaign::{Campaign, CampaignInput};
use crate::service::campaigns;
use crate::store::Db;

#[derive(Default)]
pub struct CampaignMutation;

#[Object]
impl CampaignMutation {
    /// Saves a campaign as DRAFT; `activateCampaign` starts it.
    #[graphql(guard = "Allow(Permission::ManageCampaigns)")]
    async fn create_campaign(&self, ctx: &Context<'_>, input: CampaignInput) -> Result<Campaign> {
        let input = input.into_input().gql()?;
        let created = campaigns::create(ctx.data::<Db>()?, input).await.gql()?;
        Ok(Campaign(created))
    }

    /// Replaces a DRAFT or PAUSED campaign's definition (`CONFLICT` otherwise).
    #[graphql(guard = "Allow(Permission::ManageCampaigns)")]
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CampaignInput,
    ) -> Result<Campaign> {
        let id = parse_id(&id, "id").gql()?;
        let input = input.into_input().gql()?;
        let updated = campaigns::update(ctx.data::<Db>()?, id, input)
            .await
            .gql()?;
        Ok(Campaign(updated))
    }

    /// Starts a DRAFT or PAUSED campaign.
    #[graphql(guard = "Allow(Permission::ManageCampaigns)")]
    async fn activate_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        move_to(ctx, &id, CampaignStatus::Active).await
    }

    /// Stops an ACTIVE campaign for now.
    #[graphql(guard = "Allow(Permission::ManageCampaigns)")]
    async fn pause_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        move_to(ctx, &id, CampaignStatus::Paused).await
    }

    /// Stops a campaign for good.
    #[graphql(guard = "Allow(Permission::ManageCampaigns)")]
    async fn end_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        move_to(ctx, &id, CampaignStatus::Ended).await
    }
}

async fn move_to(ctx: &Context<'_>, id: &ID, to: CampaignStatus) -> Result<Campaign> {
    let id = parse_id(id, "id").gql()?;
    let moved = campaigns::move_to(ctx.data::<Db>()?, id, to).await.gql()?;
    Ok(Campaign(moved))
}
