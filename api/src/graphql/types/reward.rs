//! `Reward`, `Redemption` and their inputs.

use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::{redemption, reward};

use super::customer::Customer;
use super::points::PointsEntry;
use crate::domain::points::RewardDraft;
use crate::domain::{DomainError, DomainResult};
use crate::graphql::error::Gql;
use crate::graphql::loaders::{RequestLoader, TierById, load_customer};
use crate::graphql::scalars::DateTime;
use crate::store::{Db, points, rewards};

#[derive(Clone)]
pub struct Reward(pub reward::Model);

#[Object]
impl Reward {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn cost_points(&self) -> i64 {
        self.0.cost_points
    }

    /// `null`: unlimited.
    async fn stock(&self) -> Option<i32> {
        self.0.stock
    }

    async fn active(&self) -> bool {
        self.0.active
    }

    /// The lowest tier that may redeem it.
    async fn min_tier_key(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let Some(id) = self.0.min_tier_id else {
            return Ok(None);
        };
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader.load_one(TierById(id)).await.gql()?.map(|t| t.key))
    }
}

#[derive(InputObject)]
pub struct RewardInput {
    name: String,
    description: Option<String>,
    cost_points: i64,
    /// Leave out for unlimited.
    stock: Option<i32>,
    /// Null counts as the default, true.
    #[graphql(default_with = "Some(true)")]
    active: Option<bool>,
    min_tier_key: Option<String>,
}

impl RewardInput {
    /// The validated reward and the key of the tier it requires.
    pub fn into_draft(self) -> DomainResult<(RewardDraft, Option<String>)> {
        let draft = RewardDraft::new(
            &self.name,
            self.description.as_deref(),
            self.cost_points,
            self.stock,
            self.active.unwrap_or(true),
        )?;
        Ok((draft, self.min_tier_key))
    }
}

pub struct Redemption(pub redemption::Model);

#[Object]
impl Redemption {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn customer(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.customer_id).await
    }

    async fn reward(&self, ctx: &Context<'_>) -> Result<Reward> {
        let db = ctx.data::<Db>()?;
        rewards::find(db.conn(), self.0.reward_id)
            .await
            .gql()?
            .map(Reward)
            .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("reward is missing")))
            .gql()
    }

    async fn points_spent(&self) -> i64 {
        self.0.points_spent
    }

    async fn entry(&self, ctx: &Context<'_>) -> Result<PointsEntry> {
        let db = ctx.data::<Db>()?;
        points::find(db.conn(), self.0.entry_id)
            .await
            .gql()?
            .map(PointsEntry)
            .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("ledger entry is missing")))
            .gql()
    }

    async fn redeemed_at(&self) -> DateTime {
        self.0.redeemed_at.into()
    }
}

#[derive(InputObject)]
pub struct RedeemRewardInput {
    pub customer_id: ID,
    pub reward_id: ID,
    pub idempotency_key: Option<String>,
}
