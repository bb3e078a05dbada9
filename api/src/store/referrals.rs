//! Referrals: who brought whom, and whether it was rewarded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::ReferralStatus;
use entity::referral;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
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

/// The referrals with these ids.
pub async fn by_ids(db: &impl ConnectionTrait, ids: &[Uuid]) -> DomainResult<Vec<referral::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(referral::Entity::find()
        .filter(referral::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    referral: referral::Model,
) -> DomainResult<referral::Model> {
    Ok(referral::ActiveModel::from(referral).insert(db).await?)
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

/// The pending referral of each of `referee_ids` that has one.
pub async fn pending_of(
    db: &impl ConnectionTrait,
    referee_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, referral::Model>> {
    if referee_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(referral::Entity::find()
        .filter(referral::Column::RefereeId.is_in(referee_ids.iter().copied()))
        .filter(referral::Column::Status.eq(ReferralStatus::Pending))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.referee_id, r))
        .collect())
}

/// How many referrals each of `referrer_ids` had rewarded in `[from, to)`, in one
/// statement.
pub async fn rewarded_counts(
    db: &impl ConnectionTrait,
    referrer_ids: &[Uuid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<HashMap<Uuid, u64>> {
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::Expr;
    if referrer_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = referral::Entity::find()
        .select_only()
        .column(referral::Column::ReferrerId)
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "rewarded")
        .filter(referral::Column::ReferrerId.is_in(referrer_ids.iter().copied()))
        .filter(referral::Column::Status.eq(ReferralStatus::Rewarded))
        .filter(referral::Column::RewardedAt.gte(from))
        .filter(referral::Column::RewardedAt.lt(to))
        .group_by(referral::Column::ReferrerId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Records how the referrals in `ids` ended (all the same way), in one statement.
pub async fn settle_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    status: ReferralStatus,
    referrer_points: i64,
    referee_points: i64,
    at: DateTime<Utc>,
) -> DomainResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    referral::Entity::update_many()
        .set(referral::ActiveModel {
            status: Set(status),
            referrer_points: Set(referrer_points),
            referee_points: Set(referee_points),
            rewarded_at: Set((status == ReferralStatus::Rewarded).then_some(at)),
            ..Default::default()
        })
        .filter(referral::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    if status == ReferralStatus::Rewarded {
        // About two customers at once, so about no single one.
        super::outbox::emit_many(
            db,
            entity::enums::EventTopic::ReferralRewarded,
            ids.iter().map(|id| (None, *id)),
        )
        .await?;
    }
    Ok(())
}
