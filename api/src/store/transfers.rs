//! Points transfers between members (`points_transfer`).

use chrono::{DateTime, Utc};
use entity::points_transfer;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::domain::DomainResult;

pub async fn insert(
    db: &impl ConnectionTrait,
    transfer: &points_transfer::Model,
) -> DomainResult<()> {
    points_transfer::Entity::insert(points_transfer::ActiveModel::from(transfer.clone()))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<points_transfer::Model>> {
    Ok(points_transfer::Entity::find_by_id(id).one(db).await?)
}

/// The points a member transferred out since `since` (merges not counted), through the
/// `(from_customer_id, created_at)` index.
pub async fn sent_since(
    db: &impl ConnectionTrait,
    from: Uuid,
    since: DateTime<Utc>,
) -> DomainResult<i64> {
    let sent: Option<Option<i64>> = points_transfer::Entity::find()
        .select_only()
        .column_as(Expr::cust("CAST(SUM(points) AS BIGINT)"), "sent")
        .filter(points_transfer::Column::FromCustomerId.eq(from))
        .filter(points_transfer::Column::CreatedAt.gte(since))
        .filter(points_transfer::Column::Merge.eq(false))
        .into_tuple()
        .one(db)
        .await?;
    Ok(sent.flatten().unwrap_or(0))
}
