//! The rewards catalogue, and redeeming rewards for points.
//!
//! A redemption locks the customer, then the reward (always in that order, so redemptions
//! queue instead of deadlocking), and decides balance, tier and stock under those locks;
//! stock is taken with a conditional update, so it is never oversold.

use entity::enums::PointsEntryKind;
use entity::{redemption, reward};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::points::RewardDraft;
use crate::domain::{DomainError, DomainResult};
use crate::service::Caller;
use crate::store::idempotency::{self, Claim};
use crate::store::points::{self, NewEntry};
use crate::store::{Db, customers, now, rewards, tiers};

const OPERATION: &str = "redeemReward";

/// The tier a reward requires, by key; `BAD_USER_INPUT` for a key no tier has.
async fn min_tier(txn: &impl ConnectionTrait, key: Option<&str>) -> DomainResult<Option<Uuid>> {
    let Some(key) = key else {
        return Ok(None);
    };
    tiers::by_key(txn, key)
        .await?
        .map(|t| Some(t.id))
        .ok_or_else(|| DomainError::bad_input("input.minTierKey", format!("no tier has key {key}")))
}

#[tracing::instrument(name = "rewards::create", skip_all)]
pub async fn create(
    db: &Db,
    draft: RewardDraft,
    min_tier_key: Option<String>,
) -> DomainResult<reward::Model> {
    db.write(move |txn| {
        Box::pin(async move {
            let min_tier_id = min_tier(txn, min_tier_key.as_deref()).await?;
            rewards::insert(txn, draft, min_tier_id).await
        })
    })
    .await
}

#[tracing::instrument(name = "rewards::update", skip_all)]
pub async fn update(
    db: &Db,
    id: Uuid,
    draft: RewardDraft,
    min_tier_key: Option<String>,
) -> DomainResult<reward::Model> {
    db.write(move |txn| {
        Box::pin(async move {
            rewards::find_for_update(txn, id)
                .await?
                .ok_or_else(|| DomainError::not_found("reward"))?;
            let min_tier_id = min_tier(txn, min_tier_key.as_deref()).await?;
            rewards::update(txn, id, draft, min_tier_id).await
        })
    })
    .await
}

/// Redeems `reward_id` for `customer_id`: `INSUFFICIENT_POINTS`, `TIER_TOO_LOW`,
/// `OUT_OF_STOCK` or `CONFLICT` (inactive) when it cannot be; a repeated idempotency key
/// returns the first redemption.
#[tracing::instrument(name = "rewards::redeem", skip_all)]
pub async fn redeem(
    db: &Db,
    caller: Caller<'_>,
    customer_id: Uuid,
    reward_id: Uuid,
    idempotency_key: Option<String>,
) -> DomainResult<redemption::Model> {
    let key = crate::domain::interaction::idempotency_key(
        idempotency_key.as_deref(),
        "input.idempotencyKey",
    )?;
    let fingerprint = idempotency::fingerprint(&[&customer_id, &reward_id]);
    let key_owner = caller.key_owner.to_owned();
    let caller = caller.subject.to_owned();
    db.write(move |txn| {
        Box::pin(async move {
            let customer = customers::live_for_update(txn, customer_id).await?;
            let id = Uuid::now_v7();
            if let Some(key) = &key
                && let Claim::Seen(previous) =
                    idempotency::claim(txn, &key_owner, key, OPERATION, &fingerprint, id).await?
            {
                return idempotency::replay(previous, |id| rewards::find_redemption(txn, id)).await;
            }
            // Not locked: every redemption of a popular reward would queue on its row.
            // Stock is taken by one conditional update (`take_one`), exact under races.
            let reward = rewards::find(txn, reward_id)
                .await?
                .ok_or_else(|| DomainError::not_found("reward"))?;
            if !reward.active {
                return Err(DomainError::Conflict(format!(
                    "reward {} is not active",
                    reward.name
                )));
            }
            // What holds for everyone is answered first: a sold-out reward says so
            // whatever the customer's tier or balance, so that trying one tells a caller
            // who may not read the customer nothing about them.
            if reward.stock == Some(0) {
                return Err(DomainError::OutOfStock(format!(
                    "reward {} is out of stock",
                    reward.name
                )));
            }
            if let Some(required) = reward.min_tier_id {
                let found = tiers::by_ids(txn, &[required, customer.tier_id]).await?;
                let rank = |id: Uuid| found.get(&id).map(|t| t.rank);
                if rank(customer.tier_id) < rank(required) {
                    let name = found
                        .get(&required)
                        .map_or("a higher tier", |t| t.name.as_str());
                    return Err(DomainError::TierTooLow(format!(
                        "reward {} needs tier {name} or higher",
                        reward.name
                    )));
                }
            }
            // The ledger refuses a redemption the balance does not cover
            // (`INSUFFICIENT_POINTS`); the stock is taken after it, in the same transaction.
            let entry = points::append(
                txn,
                NewEntry {
                    id: None,
                    customer_id,
                    delta: -reward.cost_points,
                    kind: PointsEntryKind::Redeem,
                    reason: Some(&format!("redeemed {}", reward.name)),
                    expires_at: None,
                    interaction_id: None,
                    campaign_id: None,
                    transfer_id: None,
                    created_by: &caller,
                },
            )
            .await?;
            if reward.stock.is_some() && !rewards::take_one(txn, reward.id).await? {
                return Err(DomainError::OutOfStock(format!(
                    "reward {} is out of stock",
                    reward.name
                )));
            }
            rewards::insert_redemption(
                txn,
                redemption::Model {
                    id,
                    customer_id,
                    reward_id: reward.id,
                    points_spent: reward.cost_points,
                    entry_id: entry.id,
                    redeemed_at: now(),
                },
            )
            .await
        })
    })
    .await
}
