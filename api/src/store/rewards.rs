//! The rewards catalogue and redemptions.

use entity::{redemption, reward};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::now;
use crate::domain::DomainResult;
use crate::domain::points::RewardDraft;

/// How many rewards require `tier_id`.
pub async fn count_requiring_tier(db: &impl ConnectionTrait, tier_id: Uuid) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(reward::Entity::find()
        .filter(reward::Column::MinTierId.eq(tier_id))
        .count(db)
        .await?)
}

/// Rewards by cost, then name; only active ones unless `include_inactive`.
pub async fn list(
    db: &impl ConnectionTrait,
    include_inactive: bool,
) -> DomainResult<Vec<reward::Model>> {
    let mut query = reward::Entity::find();
    if !include_inactive {
        query = query.filter(reward::Column::Active.eq(true));
    }
    Ok(query
        .order_by_asc(reward::Column::CostPoints)
        .order_by_asc(reward::Column::Name)
        .order_by_asc(reward::Column::Id)
        .all(db)
        .await?)
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<Option<reward::Model>> {
    Ok(reward::Entity::find_by_id(id).one(db).await?)
}

/// The reward, locked for the rest of the transaction (stock is decided under the lock).
pub async fn find_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<reward::Model>> {
    Ok(reward::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    draft: RewardDraft,
    min_tier_id: Option<Uuid>,
) -> DomainResult<reward::Model> {
    let at = now();
    Ok(reward::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(draft.name),
        description: Set(draft.description),
        cost_points: Set(draft.cost_points),
        stock: Set(draft.stock),
        active: Set(draft.active),
        min_tier_id: Set(min_tier_id),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?)
}

pub async fn update(
    db: &impl ConnectionTrait,
    id: Uuid,
    draft: RewardDraft,
    min_tier_id: Option<Uuid>,
) -> DomainResult<reward::Model> {
    Ok(reward::ActiveModel {
        id: Set(id),
        name: Set(draft.name),
        description: Set(draft.description),
        cost_points: Set(draft.cost_points),
        stock: Set(draft.stock),
        active: Set(draft.active),
        min_tier_id: Set(min_tier_id),
        updated_at: Set(now()),
        ..Default::default()
    }
    .update(db)
    .await?)
}

/// Takes one unit of stock when any is left; `false` when the reward is sold out. A
/// conditional update, so that stock never goes below zero whatever the interleaving.
pub async fn take_one(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<bool> {
    let taken = reward::Entity::update_many()
        .col_expr(
            reward::Column::Stock,
            Expr::col(reward::Column::Stock).sub(1),
        )
        .col_expr(reward::Column::UpdatedAt, Expr::value(now()))
        .filter(reward::Column::Id.eq(id))
        .filter(reward::Column::Stock.gt(0))
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

pub async fn insert_redemption(
    db: &impl ConnectionTrait,
    redemption: redemption::Model,
) -> DomainResult<redemption::Model> {
    Ok(redemption::ActiveModel::from(redemption).insert(db).await?)
}

pub async fn find_redemption(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<redemption::Model>> {
    Ok(redemption::Entity::find_by_id(id).one(db).await?)
}
