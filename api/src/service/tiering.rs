//! The program as tiering sees it, and manual tier moves.

use std::collections::HashMap;

use entity::enums::TierChangeReason;
use entity::{customer, tier, tier_change};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::domain::analytics::churn::ChurnModel;

use crate::domain::customer::text;
use crate::domain::program::{ScoringModel, Settings};
use crate::domain::tiering::{Ladder, TierLevel};
use crate::domain::{DomainError, DomainResult};
use crate::store::tier_changes::{self, NewTierChange};
use crate::store::{self, Db, customers, now};

/// A snapshot of the program's rules, read once per operation.
#[derive(Debug, Clone)]
pub struct Program {
    pub model: ScoringModel,
    pub settings: Settings,
    pub ladder: Ladder,
    pub tiers: HashMap<Uuid, tier::Model>,
    /// The churn model in use, if a run has fitted one.
    pub churn: Option<ChurnModel>,
}

impl Program {
    pub async fn load(db: &impl ConnectionTrait) -> DomainResult<Self> {
        let tiers = store::tiers::all(db).await?;
        let ladder = Ladder::new(
            tiers
                .iter()
                .map(|t| TierLevel {
                    id: t.id,
                    rank: t.rank,
                    min_score: t.min_score,
                })
                .collect(),
        );
        Ok(Self {
            model: store::program::scoring_model(db).await?,
            settings: store::program::settings(db).await?,
            ladder,
            tiers: tiers.into_iter().map(|t| (t.id, t)).collect(),
            churn: store::evaluation_runs::current_churn_model(db).await?,
        })
    }

    /// The points multiplier of a tier, in ten-thousandths (1.0 for an unknown tier).
    pub fn multiplier_e4(&self, tier_id: Uuid) -> i64 {
        self.tiers
            .get(&tier_id)
            .map_or(10_000, |t| t.points_multiplier_e4)
    }
}

/// Moves a customer to the tier `tier_key` by hand. The tier holds against live upgrades
/// until the next evaluation run, which applies the usual rules again.
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
