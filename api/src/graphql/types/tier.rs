//! `Tier` and `TierChange`.

use async_graphql::{Context, ID, Object, Result};
use entity::{tier, tier_change};

use super::customer::Customer;
use super::enums::TierChangeReason;
use crate::auth::{Allow, Anyone, OwnedBy, Permission};
use crate::domain::DomainError;
use crate::domain::money::e4_to_rate;
use crate::graphql::error::Gql;
use crate::graphql::loaders::{MembersOfTier, RequestLoader, TierById};
use crate::graphql::scalars::DateTime;
use crate::store::{tier_changes, tiers};

#[derive(Clone)]
pub struct Tier(pub tier::Model);

#[Object]
impl Tier {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn rank(&self) -> i32 {
        self.0.rank
    }

    async fn min_score(&self) -> f64 {
        self.0.min_score
    }

    async fn points_multiplier(&self) -> f64 {
        e4_to_rate(self.0.points_multiplier_e4)
    }

    async fn benefits(&self) -> Vec<String> {
        tiers::benefits(&self.0)
    }

    /// Customers currently in this tier: a program-wide figure, for those who may read
    /// the program.
    #[graphql(guard = "Allow(Permission::ReadProgram)")]
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(MembersOfTier(self.0.id))
            .await
            .gql()?
            .unwrap_or(0))
    }
}

/// Loads a tier that a foreign key guarantees exists.
pub async fn load_tier(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Tier> {
    let loader = ctx.data::<RequestLoader>()?;
    loader
        .load_one(TierById(id))
        .await
        .gql()?
        .map(Tier)
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("tier {id} is missing")))
        .gql()
}

/// A change of a customer's tier. The tiers it moved between, the score and the note are
/// the customer's (`OwnedBy`): who may not read the customer learns only that its tier
/// changed, when and why.
#[derive(Clone)]
pub struct TierChange(pub tier_change::Model);

#[Object(guard = "OwnedBy(self.0.customer_id)")]
impl TierChange {
    #[graphql(guard = "Anyone")]
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The customer as the caller may see it (its public view, or all of it).
    #[graphql(guard = "Anyone")]
    async fn customer(&self, ctx: &Context<'_>) -> Result<Customer> {
        crate::graphql::loaders::load_customer(ctx, self.0.customer_id).await
    }

    /// `null` for the first tier, reason `CREATED`.
    async fn from(&self, ctx: &Context<'_>) -> Result<Option<Tier>> {
        match self.0.from_tier_id {
            Some(id) => load_tier(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }

    async fn to(&self, ctx: &Context<'_>) -> Result<Tier> {
        load_tier(ctx, self.0.to_tier_id).await
    }

    #[graphql(guard = "Anyone")]
    async fn reason(&self) -> TierChangeReason {
        self.0.reason.into()
    }

    async fn score(&self) -> f64 {
        self.0.score
    }

    /// How the score that decided the change was made, as it was then (later changes to
    /// the scoring model leave it be); empty for a customer's first tier, which no score
    /// decided, and for changes recorded before breakdowns were kept.
    async fn breakdown(&self) -> Vec<super::progress::IndicatorScore> {
        super::progress::indicator_scores(&tier_changes::breakdown_of(&self.0))
    }

    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    #[graphql(guard = "Anyone")]
    async fn changed_at(&self) -> DateTime {
        self.0.changed_at.into()
    }
}

super::connection::connection!(TierChangeConnection, TierChangeEdge, TierChange);
