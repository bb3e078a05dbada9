//! Interactions: inserts, one customer's history, and first pages for many customers.

use std::collections::HashMap;

use entity::enums::InteractionKind;
use entity::interaction;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::paging::{
    Cursor, Page, PageRequest, SortValue, after_condition, group_pages, placeholders,
};
use super::{now, raw};
use crate::domain::interaction::InteractionDraft;
use crate::domain::{DomainError, DomainResult};

/// The order interactions are listed in: newest first.
pub const ORDER: &str = "OCCURRED_AT_DESC";

pub async fn insert(
    db: &impl ConnectionTrait,
    id: Uuid,
    customer_id: Uuid,
    draft: &InteractionDraft,
    recorded_by: &str,
) -> DomainResult<interaction::Model> {
    Ok(interaction::ActiveModel {
        id: Set(id),
        customer_id: Set(customer_id),
        kind: Set(draft.kind),
        occurred_at: Set(draft.occurred_at),
        amount_e4: Set(draft.amount_e4),
        currency: Set(draft.currency.clone()),
        channel: Set(draft.channel),
        rating: Set(draft.rating),
        note: Set(draft.note.clone()),
        order_ref: Set(draft.order_ref.clone()),
        recorded_by: Set(recorded_by.to_owned()),
        recorded_at: Set(now()),
    }
    .insert(db)
    .await?)
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<Option<interaction::Model>> {
    Ok(interaction::Entity::find_by_id(id).one(db).await?)
}

/// A customer's interactions of `kind` that carry `order_ref`.
pub async fn of_order(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    kind: InteractionKind,
    order_ref: &str,
) -> DomainResult<Vec<interaction::Model>> {
    Ok(interaction::Entity::find()
        .filter(interaction::Column::CustomerId.eq(customer_id))
        .filter(interaction::Column::OrderRef.eq(order_ref))
        .filter(interaction::Column::Kind.eq(kind))
        .all(db)
        .await?)
}

pub fn cursor(interaction: &interaction::Model) -> String {
    Cursor::new(
        ORDER,
        SortValue::Text(interaction.occurred_at.to_rfc3339()),
        interaction.id,
    )
    .encode()
}

fn of_customer(customer_id: Uuid, kinds: &[InteractionKind]) -> Condition {
    let mut condition = Condition::all().add(interaction::Column::CustomerId.eq(customer_id));
    if !kinds.is_empty() {
        condition = condition.add(interaction::Column::Kind.is_in(kinds.iter().copied()));
    }
    condition
}

/// A page of one customer's interactions of `kinds` (all when empty), newest first.
pub async fn page_of(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    kinds: &[InteractionKind],
    page: &PageRequest,
) -> DomainResult<Page<interaction::Model>> {
    let total = interaction::Entity::find()
        .filter(of_customer(customer_id, kinds))
        .count(db)
        .await?;
    let mut query = interaction::Entity::find().filter(of_customer(customer_id, kinds));
    if let Some(cursor) = &page.after {
        let at = cursor_instant(cursor)?;
        query = query.filter(after_condition(
            interaction::Column::OccurredAt,
            interaction::Column::Id,
            true,
            false,
            cursor,
            Some(at.into()),
        ));
    }
    let rows = query
        .order_by_desc(interaction::Column::OccurredAt)
        .order_by_desc(interaction::Column::Id)
        .limit(page.first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, page, total))
}

/// The instant a newest-first cursor points at.
pub fn cursor_instant(cursor: &Cursor) -> DomainResult<chrono::DateTime<chrono::Utc>> {
    let invalid = || DomainError::bad_input("after", "is not a cursor from this list");
    let SortValue::Text(text) = &cursor.value else {
        return Err(invalid());
    };
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid())?
        .with_timezone(&chrono::Utc))
}

#[derive(FromQueryResult)]
struct CountRow {
    customer_id: Uuid,
    total: i64,
}

/// The first page (newest first) of each customer's interactions of `kinds`, in two
/// statements whatever the number of customers: a window function numbers each
/// customer's rows, and one grouped count gives the totals.
pub async fn first_pages(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    kinds: &[InteractionKind],
    page: &PageRequest,
) -> DomainResult<HashMap<Uuid, Page<interaction::Model>>> {
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = customer_ids.iter().map(|id| (*id).into()).collect();
    let ids = placeholders(1, customer_ids.len());
    let kinds_filter = if kinds.is_empty() {
        String::new()
    } else {
        let list = placeholders(values.len() + 1, kinds.len());
        values.extend(kinds.iter().map(|k| k.as_str().into()));
        format!(" AND kind IN ({list})")
    };
    let limit = values.len() + 1;
    values.push((page.first as i64 + 1).into());
    let rows = interaction::Model::find_by_statement(raw(
        backend,
        &format!(
            "SELECT * FROM (SELECT interaction.*, ROW_NUMBER() OVER \
             (PARTITION BY customer_id ORDER BY occurred_at DESC, id DESC) AS position \
             FROM interaction WHERE customer_id IN ({ids}){kinds_filter}) numbered \
             WHERE position <= ${limit} ORDER BY customer_id, position"
        ),
        values.clone(),
    ))
    .all(db)
    .await?;
    values.pop();
    let totals = CountRow::find_by_statement(raw(
        backend,
        &format!(
            "SELECT customer_id, CAST(COUNT(*) AS BIGINT) AS total FROM interaction \
             WHERE customer_id IN ({ids}){kinds_filter} GROUP BY customer_id"
        ),
        values,
    ))
    .all(db)
    .await?;
    Ok(group_pages(
        customer_ids,
        rows,
        totals.into_iter().map(|t| (t.customer_id, t.total)),
        page,
        |i| i.customer_id,
    ))
}
