//! What tier progress reads besides the customer's row: its sums as of an instant (now,
//! or the end of a downgrade's grace period), and the rewards on offer.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use entity::customer;
use uuid::Uuid;

use super::{LoadResult, StoreLoader};
use crate::domain::DomainError;
use crate::domain::metrics::Aggregates;
use crate::domain::progress::{RewardOffer, grace_end};
use crate::store::{metrics, rewards};

/// What a customer's tier progress reads of its interactions: its sums as of now, and as
/// of the end of its downgrade grace period (`grace_end`, when it is marked). The key
/// holds only what the customer's row and the program decide, so that a page's
/// resolvers and its priming ask for the same keys; "now" is the batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProgressOf {
    pub customer_id: Uuid,
    pub grace_end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct ProgressSums {
    pub now: DateTime<Utc>,
    pub sums_now: Aggregates,
    pub sums_at_grace_end: Option<Aggregates>,
}

impl ProgressOf {
    pub fn of(customer: &customer::Model, grace_days: i32) -> Self {
        Self {
            customer_id: customer.id,
            grace_end: customer
                .downgrade_marked_at
                .map(|marked| grace_end(marked, grace_days)),
        }
    }
}

impl Loader<ProgressOf> for StoreLoader {
    type Value = ProgressSums;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[ProgressOf]) -> LoadResult<ProgressOf, ProgressSums> {
        let program = self.db.programs().recent(self.db.conn()).await?;
        let now = crate::store::now();
        // Subjects 2i (now) and 2i + 1 (the end of grace) for the i-th key.
        let mut wanted: Vec<(i64, Uuid, DateTime<Utc>)> = Vec::with_capacity(keys.len() * 2);
        for (i, key) in keys.iter().enumerate() {
            let subject = 2 * i as i64;
            wanted.push((subject, key.customer_id, now));
            if let Some(at) = key.grace_end {
                wanted.push((subject + 1, key.customer_id, at));
            }
        }
        let mut found =
            metrics::at_instants(self.db.conn(), &wanted, program.model.window_days).await?;
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let subject = 2 * i as i64;
                let sums = ProgressSums {
                    now,
                    sums_now: found.remove(&subject).unwrap_or_default(),
                    sums_at_grace_end: key
                        .grace_end
                        .map(|_| found.remove(&(subject + 1)).unwrap_or_default()),
                };
                (*key, sums)
            })
            .collect::<HashMap<_, _>>())
    }
}

/// The active rewards, as far as "the next reward" needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RewardsOnOffer;

impl Loader<RewardsOnOffer> for StoreLoader {
    type Value = Arc<Vec<RewardOffer>>;
    type Error = Arc<DomainError>;

    async fn load(&self, _: &[RewardsOnOffer]) -> LoadResult<RewardsOnOffer, Self::Value> {
        let offers = rewards::list(self.db.conn(), false)
            .await?
            .into_iter()
            .map(|reward| RewardOffer {
                cost_points: reward.cost_points,
                stock: reward.stock,
                min_tier_id: reward.min_tier_id,
            })
            .collect();
        Ok(HashMap::from([(RewardsOnOffer, Arc::new(offers))]))
    }
}
