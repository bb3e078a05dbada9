//! `TierProgress` and `IndicatorScore`: why a customer holds its tier and what would
//! take it to the next one (`domain::progress`).
//!
//! Both are reached only through a customer (`Customer.tierProgress`) or one of its tier
//! changes (`TierChange.breakdown`), whose guards decide who reads them.

use async_graphql::{Context, Object, Result};
use rust_decimal::Decimal;

use super::tier::{Tier, load_tier};
use crate::domain::money::e4_to_decimal;
use crate::domain::progress::Progress;
use crate::domain::scoring;
use crate::graphql::scalars::DateTime;

/// One indicator's share of a score.
pub struct IndicatorScore(pub scoring::IndicatorScore);

#[Object]
impl IndicatorScore {
    /// `recency`, `frequency`, `monetary`, `engagement` or `nps`.
    async fn indicator(&self) -> &str {
        &self.0.indicator
    }

    /// The customer's raw value: days since its last purchase in the window, purchases
    /// and net spend in the window, engagements in the window, the latest NPS rating;
    /// null when it has none (no purchase, no survey in the window).
    async fn value(&self) -> Option<f64> {
        self.0.value
    }

    /// The index of the band the value falls in, in the program's list for the
    /// indicator (best first); null when it reaches none.
    async fn band(&self) -> Option<i32> {
        self.0.band
    }

    /// The band's points (0 without a band).
    async fn points(&self) -> f64 {
        self.0.points
    }

    /// The indicator's weight in this score: its configured weight over the sum of the
    /// weights of the indicators present (without a survey, nps is left out of the mean
    /// and weighs 0 here).
    async fn weight(&self) -> f64 {
        self.0.weight
    }

    /// `points × weight`: the indicator's share of the score. The shares add up to the
    /// score before its rounding to one decimal.
    async fn weighted(&self) -> f64 {
        self.0.weighted
    }
}

pub fn indicator_scores(breakdown: &[scoring::IndicatorScore]) -> Vec<IndicatorScore> {
    breakdown.iter().cloned().map(IndicatorScore).collect()
}

/// Where a customer stands between tiers, computed now by the rules that move tiers.
pub struct TierProgress(pub Progress);

#[Object]
impl TierProgress {
    /// The score as of now (`Customer.score` is as of the customer's last write or
    /// run, and can lag: recency grows and the window slides between runs).
    async fn score(&self) -> f64 {
        self.0.score
    }

    /// How the score is made; the `weighted` values add up to it.
    async fn breakdown(&self) -> Vec<IndicatorScore> {
        indicator_scores(&self.0.breakdown)
    }

    async fn tier(&self, ctx: &Context<'_>) -> Result<Tier> {
        load_tier(ctx, self.0.tier_id).await
    }

    /// The tier one rank up; null at the top.
    async fn next_tier(&self, ctx: &Context<'_>) -> Result<Option<Tier>> {
        match self.0.next_tier_id {
            Some(id) => load_tier(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }

    /// `nextTier.minScore − score` (0 when the score already reaches it), null at the top.
    async fn score_to_next(&self) -> Option<f64> {
        self.0.score_to_next
    }

    /// The smallest single purchase amount (base currency) that, recorded now, moves
    /// the customer to `nextTier` at once by the live-upgrade rules; null when no single
    /// purchase up to `maxInteractionAmount` can (or a manual move holds the tier). When
    /// the score already earns `nextTier` (the scoring model changed since the customer's
    /// last write), the next evaluation run upgrades it, and any purchase does so at once:
    /// this is then the smallest amount, 0.0001, and `purchasesToNext` 1.
    async fn spend_to_next(&self) -> Option<Decimal> {
        self.0.spend_to_next_e4.map(e4_to_decimal)
    }

    /// The fewest purchases of the customer's average order value (in the window) that,
    /// recorded now, reach `nextTier`; null without a purchase in the window, or when no
    /// number of them can.
    async fn purchases_to_next(&self) -> Option<i64> {
        self.0.purchases_to_next
    }

    /// For a customer marked for downgrade: when the grace period ends, and the first
    /// evaluation run as of then or later moves it down if its score has not recovered.
    async fn keeps_tier_until(&self) -> Option<DateTime> {
        self.0.keeps_tier_until.map(Into::into)
    }

    /// The tier that run would move the customer to, if nothing else changes.
    async fn downgrade_to(&self, ctx: &Context<'_>) -> Result<Option<Tier>> {
        match self.0.downgrade_to {
            Some(id) => load_tier(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Points missing for the cheapest reward the customer could redeem (active, in
    /// stock, open to its tier) but cannot yet afford; null if there is none.
    async fn points_to_next_reward(&self) -> Option<i64> {
        self.0.points_to_next_reward
    }
}
