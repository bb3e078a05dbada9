//! Tier history: every move of a customer between tiers.

use entity::enums::TierChangeReason;
use entity::tier_change;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::now;
use super::paging::{Cursor, Page, PageRequest, SortValue, after_condition};
use crate::domain::{DomainError, DomainResult};

/// The order tier history is listed in: newest first.
pub const ORDER: &str = "CHANGED_AT_DESC";

pub struct NewTierChange<'a> {
    pub customer_id: Uuid,
    pub from_tier_id: Option<Uuid>,
    pub to_tier_id: Uuid,
    pub reason: TierChangeReason,
    pub score: f64,
    pub note: Option<&'a str>,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    change: NewTierChange<'_>,
) -> DomainResult<tier_change::Model> {
    Ok(tier_change::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(change.customer_id),
        from_tier_id: Set(change.from_tier_id),
        to_tier_id: Set(change.to_tier_id),
        reason: Set(change.reason),
        score: Set(change.score),
        note: Set(change.note.map(str::to_owned)),
        evaluation_run_id: Set(None),
        changed_at: Set(now()),
    }
    .insert(db)
    .await?)
}

pub fn cursor(change: &tier_change::Model) -> String {
    Cursor::new(
        ORDER,
        SortValue::Text(change.changed_at.to_rfc3339()),
        change.id,
    )
    .encode()
}

/// A page of one customer's tier history, newest first.
pub async fn page_of(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    page: &PageRequest,
) -> DomainResult<Page<tier_change::Model>> {
    let of_customer = tier_change::Column::CustomerId.eq(customer_id);
    let total = tier_change::Entity::find()
        .filter(of_customer.clone())
        .count(db)
        .await?;
    let mut query = tier_change::Entity::find().filter(of_customer);
    if let Some(cursor) = &page.after {
        let SortValue::Text(text) = &cursor.value else {
            return Err(DomainError::bad_input(
                "after",
                "is not a cursor from this list",
            ));
        };
        let at = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| DomainError::bad_input("after", "is not a cursor from this list"))?
            .with_timezone(&chrono::Utc);
        query = query.filter(after_condition(
            tier_change::Column::ChangedAt,
            tier_change::Column::Id,
            true,
            false,
            cursor,
            Some(at.into()),
        ));
    }
    let rows = query
        .order_by_desc(tier_change::Column::ChangedAt)
        .order_by_desc(tier_change::Column::Id)
        .limit(page.first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, page, total))
}
