//! Manual tier moves.

use entity::enums::TierChangeReason;
use entity::{customer, tier, tier_change};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::domain::customer::text;
use crate::domain::{DomainError, DomainResult};
use crate::store::tier_changes::{self, NewTierChange};
use crate::store::{Db, customers, now};

/// Moves a customer to the tier `tier_key` by hand. The tier holds against live upgrades
/// until the next evaluation run, which applies the usual rules again.
#[tracing::instrument(name = "tiering::set_customer_tier", skip_all)]
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
            let tier = tier::Entity::find()
                .filter(tier::Column::Key.eq(&tier_key))
                .one(txn)
                .await?
                .ok_or_else(|| DomainError::not_found(format!("tier {tier_key}")))?;
            if tier.id == customer.tier_id {
                return Err(DomainError::Conflict(format!(
                    "the customer is already in tier {tier_key}"
                )));
            }
            customer::Entity::update_many()
                .set(customer::ActiveModel {
                    tier_id: Set(tier.id),
                    tier_held: Set(true),
                    downgrade_marked_at: Set(None),
                    revision: Set(customer.revision + 1),
                    updated_at: Set(now()),
                    ..Default::default()
                })
                .filter(customer::Column::Id.eq(customer.id))
                .exec(txn)
                .await?;
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
