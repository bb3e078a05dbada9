//! Interactions: inserts, one customer's history, and first pages for many customers.

use std::collections::HashMap;

use entity::enums::{InteractionKind, PointsEntryKind};
use entity::interaction;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::paging::{self, ChildList, Page, PageRequest, time_cursor};
use crate::domain::DomainResult;

/// The order interactions are listed in: newest first.
pub const ORDER: &str = "OCCURRED_AT_DESC";

/// Whether the customer has made any purchase.
pub async fn has_purchased(db: &impl ConnectionTrait, customer_id: Uuid) -> DomainResult<bool> {
    Ok(interaction::Entity::find()
        .filter(interaction::Column::CustomerId.eq(customer_id))
        .filter(interaction::Column::Kind.eq(InteractionKind::Purchase))
        .one(db)
        .await?
        .is_some())
}

/// Inserts a batch's interactions in one statement.
pub async fn insert_many(
    db: &impl ConnectionTrait,
    interactions: &[interaction::Model],
) -> DomainResult<()> {
    if interactions.is_empty() {
        return Ok(());
    }
    interaction::Entity::insert_many(
        interactions
            .iter()
            .cloned()
            .map(interaction::ActiveModel::from),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The interaction with these ids.
pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, interaction::Model>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(interaction::Entity::find()
        .filter(interaction::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect())
}

/// An order's purchases and refunds so far, and the points they earned and reversed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderHistory {
    pub paid_e4: i64,
    pub refunded_e4: i64,
    /// The points its purchases earned (`EARN` entries, and campaigns' bonuses on them).
    pub earned: i64,
    /// The points its refunds took back so far (the negated `REVERSAL` entries).
    pub reversed: i64,
    /// Its purchases' points still pending (their return window is open).
    pub pending: Vec<entity::pending_points::Model>,
}

/// The history of each `(customer, orderRef)`, in two statements whatever their number:
/// the orders' purchases and refunds, then the points those caused.
pub async fn order_histories(
    db: &impl ConnectionTrait,
    orders: &[(Uuid, String)],
) -> DomainResult<HashMap<(Uuid, String), OrderHistory>> {
    let mut histories: HashMap<(Uuid, String), OrderHistory> = orders
        .iter()
        .map(|o| (o.clone(), OrderHistory::default()))
        .collect();
    if orders.is_empty() {
        return Ok(histories);
    }
    // The customer and the reference each narrow through an index; pairs are picked out
    // here rather than with row values, which sea-query writes differently per backend.
    let rows = interaction::Entity::find()
        .filter(interaction::Column::CustomerId.is_in(orders.iter().map(|o| o.0)))
        .filter(interaction::Column::OrderRef.is_in(orders.iter().map(|o| o.1.clone())))
        .filter(
            interaction::Column::Kind.is_in([InteractionKind::Purchase, InteractionKind::Refund]),
        )
        .all(db)
        .await?;
    let mut owner_of = HashMap::new();
    for row in rows {
        let Some(order_ref) = row.order_ref.clone() else {
            continue;
        };
        let Some(history) = histories.get_mut(&(row.customer_id, order_ref.clone())) else {
            continue;
        };
        let amount = row.amount_e4.unwrap_or(0);
        match row.kind {
            InteractionKind::Purchase => history.paid_e4 += amount,
            _ => history.refunded_e4 += amount,
        }
        owner_of.insert(row.id, (row.customer_id, order_ref, row.kind));
    }
    let ids: Vec<Uuid> = owner_of.keys().copied().collect();
    for (interaction_id, kind, points) in super::points::sums_by_interaction(db, &ids).await? {
        let Some((customer_id, order_ref, interaction_kind)) = owner_of.get(&interaction_id) else {
            continue;
        };
        let Some(history) = histories.get_mut(&(*customer_id, order_ref.clone())) else {
            continue;
        };
        match (interaction_kind, kind) {
            // A campaign's bonus on a purchase is taken back with it, in proportion.
            (InteractionKind::Purchase, PointsEntryKind::Earn | PointsEntryKind::CampaignBonus) => {
                history.earned += points
            }
            (InteractionKind::Refund, PointsEntryKind::Reversal) => history.reversed -= points,
            _ => {}
        }
    }
    for lot in super::pending_points::of_orders(db, orders).await? {
        let Some(order_ref) = lot.order_ref.clone() else {
            continue;
        };
        if let Some(history) = histories.get_mut(&(lot.customer_id, order_ref)) {
            history.pending.push(lot);
        }
    }
    Ok(histories)
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
    paging::first_pages::<interaction::Entity>(db, list, customer_ids, page, |i| i.customer_id)
        .await
}
