//! Manual tier moves (the rules that move tiers by themselves are `domain::tiering`).

use entity::enums::TierChangeReason;
use entity::tier_change;
use uuid::Uuid;

use crate::domain::customer::text;
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
            tier_changes::insert(
                txn,
                NewTierChange {
                    customer_id,
                    from_tier_id: Some(customer.tier_id),
                    to_tier_id: tier.id,
                    reason: TierChangeReason::Manual,
                    score: customer.score,
                    note: Some(&note),
                },
            )
            .await
        })
    })
    .await
}
