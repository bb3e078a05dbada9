//! Tiers of the program.

use std::collections::HashMap;

use entity::tier;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::now;
use crate::domain::DomainResult;
use crate::domain::program::TierDraft;

/// All tiers, lowest rank first.
pub async fn all(db: &impl ConnectionTrait) -> DomainResult<Vec<tier::Model>> {
    Ok(tier::Entity::find()
        .order_by_asc(tier::Column::Rank)
        .all(db)
        .await?)
}

/// The tier every new customer starts in.
pub async fn lowest(db: &impl ConnectionTrait) -> DomainResult<Option<tier::Model>> {
    Ok(tier::Entity::find()
        .order_by_asc(tier::Column::Rank)
        .one(db)
        .await?)
}

/// The tier with `key`, if any.
pub async fn by_key(db: &impl ConnectionTrait, key: &str) -> DomainResult<Option<tier::Model>> {
    Ok(tier::Entity::find()
        .filter(tier::Column::Key.eq(key))
        .one(db)
        .await?)
}

pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, tier::Model>> {
    let tiers = tier::Entity::find()
        .filter(tier::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(tiers.into_iter().map(|t| (t.id, t)).collect())
}

pub async fn insert(db: &impl ConnectionTrait, draft: &TierDraft) -> DomainResult<tier::Model> {
    let at = now();
    Ok(tier::ActiveModel {
        id: Set(Uuid::now_v7()),
        key: Set(draft.key.clone()),
        name: Set(draft.name.clone()),
        rank: Set(draft.rank),
        min_score: Set(draft.min_score),
        points_multiplier_e4: Set(draft.points_multiplier_e4),
        benefits: Set(serde_json::json!(draft.benefits)),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?)
}

pub async fn update(
    db: &impl ConnectionTrait,
    existing: tier::Model,
    draft: &TierDraft,
) -> DomainResult<tier::Model> {
    let mut tier: tier::ActiveModel = existing.into();
    tier.name = Set(draft.name.clone());
    tier.rank = Set(draft.rank);
    tier.min_score = Set(draft.min_score);
    tier.points_multiplier_e4 = Set(draft.points_multiplier_e4);
    tier.benefits = Set(serde_json::json!(draft.benefits));
    tier.updated_at = Set(now());
    Ok(tier.update(db).await?)
}

pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<()> {
    tier::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// The benefits column as a list of strings.
pub fn benefits(tier: &tier::Model) -> Vec<String> {
    serde_json::from_value(tier.benefits.clone()).unwrap_or_default()
}
