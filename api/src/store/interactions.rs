//! Interactions: inserts, one customer's history, and first pages for many customers.

use std::collections::HashMap;

use entity::enums::InteractionKind;
use entity::interaction;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use super::now;
use super::paging::{self, ChildList, Page, PageRequest, time_cursor};
use crate::domain::DomainResult;
use crate::domain::interaction::InteractionDraft;

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
    time_cursor(ORDER, interaction.occurred_at, interaction.id)
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
    paging::newest_first::<interaction::Entity>(
        db,
        of_customer(customer_id, kinds),
        interaction::Column::OccurredAt,
        interaction::Column::Id,
        page,
    )
    .await
}

/// The first page (newest first) of each customer's interactions of `kinds` (all when
/// empty), in two statements whatever the number of customers.
pub async fn first_pages(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    kinds: &[InteractionKind],
    page: &PageRequest,
) -> DomainResult<HashMap<Uuid, Page<interaction::Model>>> {
    let list = ChildList {
        table: "interaction",
        time_column: "occurred_at",
        any_of: Some(("kind", kinds.iter().map(|k| k.as_str().into()).collect())),
    };
    paging::first_pages(db, list, customer_ids, page, |i: &interaction::Model| {
        i.customer_id
    })
    .await
}
