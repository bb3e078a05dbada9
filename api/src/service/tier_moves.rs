//! Manual tier moves (the rules that move tiers by themselves are `domain::tiering`).

use entity::enums::TierChangeReason;
use entity::{customer, tier_change};
use uuid::Uuid;

use crate::domain::customer::text;
use crate::domain::metrics::whole_days;
use crate::domain::scoring::{self, Indicators};
use crate::domain::{DomainError, DomainResult};
use crate::store::tier_changes::{self, NewTierChange};
use crate::store::{Db, customers, tiers};

/// Moves a customer to the tier `tier_key` by hand. The tier holds against live upgrades
/// until the next evaluation run, which applies the usual rules again.
#[tracing::instrument(name = "tier_moves::set_customer_tier", skip_all)]
pub async fn set_customer_tier(
    db: &Db,
    customer_id: Uuid,
    tier_key: String,
    note: String,
) -> DomainResult<tier_change::Model> {
    let note = text(&note, "note", 1000)?;
    let programs = db.programs().clone();
    db.write(move |txn| {
        Box::pin(async move {
            let customer = customers::live_for_update(txn, customer_id).await?;
            let tier = tiers::by_key(txn, &tier_key)
                .await?
                .ok_or_else(|| DomainError::not_found(format!("tier {tier_key}")))?;
            if tier.id == customer.tier_id {
                return Err(DomainError::Conflict(format!(
                    "the customer is already in tier {tier_key}"
                )));
            }
            customers::hold_in_tier(txn, &customer, tier.id).await?;
            let program = programs.current(txn).await?;
            let breakdown = scoring::breakdown(&program.model, &stored_indicators(&customer));
            tier_changes::insert(
                txn,
                NewTierChange {
                    customer_id,
                    from_tier_id: Some(customer.tier_id),
                    to_tier_id: tier.id,
                    reason: TierChangeReason::Manual,
                    score: customer.score,
                    note: Some(&note),
                    breakdown: Some(&breakdown),
                },
            )
            .await
        })
    })
    .await
}

/// The values the customer's stored score was computed from: its metrics as of
/// `metrics_as_of` (a manual move records the score the customer had, and why).
fn stored_indicators(customer: &customer::Model) -> Indicators {
    Indicators {
        recency_days: customer
            .last_purchase_at
            .map(|at| whole_days(at, customer.metrics_as_of))
            .filter(|_| customer.purchase_count > 0),
        purchase_count: customer.purchase_count.into(),
        net_spend_e4: customer.net_spend_e4,
        engagement_count: customer.engagement_count.into(),
        latest_nps: customer.latest_nps,
    }
}
