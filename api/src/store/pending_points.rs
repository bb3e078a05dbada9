//! Pending points: what purchases earned inside their return window, kept apart from
//! the balance until `available_at`. Activation moves a lot into its customer's balance
//! and deletes it; a refund inside the window lowers the lot instead of the balance.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::EventTopic;
use entity::pending_points;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::outbox;
use crate::domain::DomainResult;

/// The pending lots of each `(customer, orderRef)`, in one statement.
pub async fn of_orders(
    db: &impl ConnectionTrait,
    orders: &[(Uuid, String)],
) -> DomainResult<Vec<pending_points::Model>> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let mut lots = pending_points::Entity::find()
        .filter(pending_points::Column::CustomerId.is_in(orders.iter().map(|o| o.0)))
        .filter(pending_points::Column::OrderRef.is_in(orders.iter().map(|o| o.1.clone())))
        .order_by_asc(pending_points::Column::AvailableAt)
        .order_by_asc(pending_points::Column::Id)
        .all(db)
        .await?;
    lots.retain(|lot| {
        lot.order_ref
            .as_ref()
            .is_some_and(|r| orders.contains(&(lot.customer_id, r.clone())))
    });
    Ok(lots)
}

/// Writes lots as they now are: new ones inserted, changed ones updated, and those with
/// nothing left (a refund cancelled them) deleted; two statements at most.
pub async fn save(db: &impl ConnectionTrait, lots: &[pending_points::Model]) -> DomainResult<()> {
    let (left, cancelled): (Vec<_>, Vec<_>) = lots.iter().partition(|lot| lot.points > 0);
    if !cancelled.is_empty() {
        pending_points::Entity::delete_many()
            .filter(pending_points::Column::Id.is_in(cancelled.iter().map(|lot| lot.id)))
            .exec(db)
            .await?;
    }
    if !left.is_empty() {
        pending_points::Entity::insert_many(
            left.into_iter()
                .cloned()
                .map(pending_points::ActiveModel::from),
        )
        .on_conflict(
            OnConflict::column(pending_points::Column::Id)
                .update_column(pending_points::Column::Points)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Up to `limit` customers with lots due by `at`, in id order (the order they are
/// locked in).
pub async fn due_customers(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    limit: u64,
) -> DomainResult<Vec<Uuid>> {
    Ok(pending_points::Entity::find()
        .select_only()
        .column(pending_points::Column::CustomerId)
        .distinct()
        .filter(pending_points::Column::AvailableAt.lte(at))
        .order_by_asc(pending_points::Column::CustomerId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// Activates the lots of `customer_ids` due by `at`: each moves from the customer's
/// pending points into its balance, and `pointsChanged` names the entry that credited
/// it. Four statements whatever the number. The caller holds the customers' locks (a
/// balance moves). Returns the points activated per customer.
pub async fn activate(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    at: DateTime<Utc>,
) -> DomainResult<HashMap<Uuid, i64>> {
    if customer_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let lots = pending_points::Entity::find()
        .filter(pending_points::Column::CustomerId.is_in(customer_ids.iter().copied()))
        .filter(pending_points::Column::AvailableAt.lte(at))
        .all(db)
        .await?;
    if lots.is_empty() {
        return Ok(HashMap::new());
    }
    pending_points::Entity::delete_many()
        .filter(pending_points::Column::Id.is_in(lots.iter().map(|lot| lot.id)))
        .exec(db)
        .await?;
    let mut activated: HashMap<Uuid, i64> = HashMap::new();
    for lot in &lots {
        *activated.entry(lot.customer_id).or_default() += lot.points;
    }
    let backend = db.get_database_backend();
    let (rows, values) = super::values::relation(
        backend,
        &["uuid", "bigint"],
        activated
            .iter()
            .map(|(id, points)| vec![(*id).into(), (*points).into()]),
        1,
    )?;
    let sql = format!(
        "WITH v (id, points) AS ({rows})
         UPDATE customer SET points_balance = customer.points_balance + v.points,
             points_pending = customer.points_pending - v.points
         FROM v WHERE customer.id = v.id"
    );
    db.execute_raw(super::raw(backend, &sql, values)).await?;
    outbox::emit_many(
        db,
        EventTopic::PointsChanged,
        lots.iter().map(|lot| (Some(lot.customer_id), lot.entry_id)),
    )
    .await?;
    Ok(activated)
}

/// A customer's pending lots, soonest available first.
pub async fn of_customer(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
) -> DomainResult<Vec<pending_points::Model>> {
    Ok(pending_points::Entity::find()
        .filter(pending_points::Column::CustomerId.eq(customer_id))
        .order_by_asc(pending_points::Column::AvailableAt)
        .order_by_asc(pending_points::Column::Id)
        .all(db)
        .await?)
}

/// `activate` for customers the caller locked and holds as models, which it brings up to
/// date. Customers with no pending points cost nothing: the common write reads no lots.
pub async fn activate_held<'a>(
    db: &impl ConnectionTrait,
    customers: impl IntoIterator<Item = &'a mut entity::customer::Model>,
    at: DateTime<Utc>,
) -> DomainResult<()> {
    let mut holding: Vec<&'a mut entity::customer::Model> = customers
        .into_iter()
        .filter(|c| c.points_pending != 0)
        .collect();
    if holding.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = holding.iter().map(|c| c.id).collect();
    let activated = activate(db, &ids, at).await?;
    for customer in holding.iter_mut() {
        if let Some(points) = activated.get(&customer.id) {
            customer.points_balance += points;
            customer.points_pending -= points;
        }
    }
    Ok(())
}
