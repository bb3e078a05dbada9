//! `ProgramStats`: the program at a glance, for dashboards.

use async_graphql::SimpleObject;

use super::enums::LifecycleStage;
use super::tier::Tier;

#[derive(SimpleObject)]
pub struct ProgramStats {
    pub customer_count: i64,
    /// Every tier, by rank, with how many customers hold it.
    pub tier_distribution: Vec<TierCount>,
    /// Every lifecycle stage, with how many customers are in it.
    pub lifecycle_distribution: Vec<LifecycleCount>,
    /// Points customers hold and may still redeem (the sum of positive balances).
    pub points_outstanding: i64,
}

#[derive(SimpleObject)]
pub struct TierCount {
    pub tier: Tier,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct LifecycleCount {
    pub stage: LifecycleStage,
    pub count: i64,
}
