//! Referrals: who brought whom, and whether it was rewarded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::ReferralStatus;
use entity::referral;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use crate::domain::DomainResult;

pub async fn of_referee(
    db: &impl ConnectionTrait,
    referee_id: Uuid,
) -> DomainResult<Option<referral::Model>> {
    Ok(referral::Entity::find()
        .filter(referral::Column::RefereeId.eq(referee_id))
        .one(db)
        .await?)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    referral: referral::Model,
) -> DomainResult<referral::Model> {
    Ok(referral::ActiveModel::from(referral).insert(db).await?)
}

/// How many of `referrer_id`'s referrals were rewarded in `[from, to)`.
pub async fn rewarded_between(
    db: &impl ConnectionTrait,
    referrer_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<u64> {
    Ok(referral::Entity::find()
        .filter(referral::Column::ReferrerId.eq(referrer_id))
        .filter(referral::Column::Status.eq(ReferralStatus::Rewarded))
        .filter(referral::Column::RewardedAt.gte(from))
        .filter(referral::Column::RewardedAt.lt(to))
        .count(db)
        .await?)
}

/// Records how a referral ended.
pub async fn settle(
    db: &impl ConnectionTrait,
    id: Uuid,
    status: ReferralStatus,
    referrer_points: i64,
    referee_points: i64,
    at: DateTime<Utc>,
) -> DomainResult<referral::Model> {
    Ok(referral::ActiveModel {
        id: Set(id),
        status: Set(status),
        referrer_points: Set(referrer_points),
        referee_points: Set(referee_points),
        rewarded_at: Set((status == ReferralStatus::Rewarded).then_some(at)),
        ..Default::default()
    }
    .update(db)
    .await?)
}

/// The referrals each of `referrer_ids` made, oldest first.
pub async fn made_by(
    db: &impl ConnectionTrait,
    referrer_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<referral::Model>>> {
    let rows = referral::Entity::find()
        .filter(referral::Column::ReferrerId.is_in(referrer_ids.iter().copied()))
        .order_by_asc(referral::Column::CreatedAt)
        .order_by_asc(referral::Column::Id)
        .all(db)
        .await?;
    let mut grouped: HashMap<Uuid, Vec<referral::Model>> =
        referrer_ids.iter().map(|id| (*id, Vec::new())).collect();
    for row in rows {
        grouped.entry(row.referrer_id).or_default().push(row);
    }
    Ok(grouped)
}
