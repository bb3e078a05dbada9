//! Webhook endpoints and deliveries, and the outbox positions of durable consumers.
//!
//! Deliveries are claimed for an attempt with one conditional update (on Postgres over
//! `FOR UPDATE SKIP LOCKED`), so replicas never send the same attempt at once; a claim
//! lapses after `claimed_until`, so an attempt of a replica that died is made again.

use chrono::{DateTime, Utc};
use entity::enums::WebhookDeliveryStatus;
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::paging::{Page, PageRequest};
use super::{now, raw};
use crate::domain::DomainResult;

/// A new endpoint, validated.
pub struct NewEndpoint {
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    pub owner: String,
    pub owner_role: String,
    pub owner_reads_customers: bool,
    pub secret: String,
}

pub async fn insert_endpoint(
    db: &impl ConnectionTrait,
    new: NewEndpoint,
) -> DomainResult<webhook_endpoint::Model> {
    let at = now();
    Ok(webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        url: Set(new.url),
        description: Set(new.description),
        events: Set(serde_json::json!(new.events)),
        enabled: Set(new.enabled),
        disabled_reason: Set(None),
        owner: Set(new.owner),
        owner_role: Set(new.owner_role),
        owner_reads_customers: Set(new.owner_reads_customers),
        secret: Set(new.secret),
        previous_secret: Set(None),
        previous_secret_until: Set(None),
        failing_since: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?)
}

pub async fn find_endpoint(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find_by_id(id).one(db).await?)
}

/// The endpoints of `ids` that exist, in one query.
pub async fn endpoints_by_ids(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> DomainResult<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids))
        .all(db)
        .await?)
}

/// Endpoints oldest first: all of them, or those of `(owner, role)`.
pub async fn endpoints(
    db: &impl ConnectionTrait,
    owner: Option<(&str, &str)>,
) -> DomainResult<Vec<webhook_endpoint::Model>> {
    let mut query = webhook_endpoint::Entity::find();
    if let Some((owner, role)) = owner {
        query = query
            .filter(webhook_endpoint::Column::Owner.eq(owner))
            .filter(webhook_endpoint::Column::OwnerRole.eq(role));
    }
    Ok(query
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db)
        .await?)
}

/// The endpoints that receive events now.
pub async fn enabled_endpoints(
    db: &impl ConnectionTrait,
) -> DomainResult<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?)
}

/// How many endpoints `(owner, role)` has.
pub async fn count_endpoints(
    db: &impl ConnectionTrait,
    owner: &str,
    role: &str,
) -> DomainResult<u64> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Owner.eq(owner))
        .filter(webhook_endpoint::Column::OwnerRole.eq(role))
        .count(db)
        .await?)
}

/// What an update changes (validated); `None` leaves a field as it is.
#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// Whether payloads may keep carrying personal data: only ever lowered.
    pub reads_customers: bool,
}

pub async fn update_endpoint(
    db: &impl ConnectionTrait,
    existing: webhook_endpoint::Model,
    changes: EndpointChanges,
) -> DomainResult<webhook_endpoint::Model> {
    let reads_customers = existing.owner_reads_customers && changes.reads_customers;
    let mut endpoint: webhook_endpoint::ActiveModel = existing.into();
    endpoint.owner_reads_customers = Set(reads_customers);
    if let Some(url) = changes.url {
        endpoint.url = Set(url);
    }
    if let Some(description) = changes.description {
        endpoint.description = Set(description);
    }
    if let Some(events) = changes.events {
        endpoint.events = Set(serde_json::json!(events));
    }
    if let Some(enabled) = changes.enabled {
        endpoint.enabled = Set(enabled);
        // Enabled again by hand: the failure streak that disabled it is forgiven.
        endpoint.disabled_reason = Set(None);
        endpoint.failing_since = Set(None);
    }
    endpoint.updated_at = Set(now());
    Ok(endpoint.update(db).await?)
}

/// Deletes the endpoint, and with it (the foreign key cascades) its deliveries; whether
/// it existed.
pub async fn delete_endpoint(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<bool> {
    Ok(webhook_endpoint::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

/// Makes `secret` the endpoint's signing secret; the current one keeps signing until
/// `overlap_until`.
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    existing: webhook_endpoint::Model,
    secret: String,
    overlap_until: DateTime<Utc>,
    reads_customers: bool,
) -> DomainResult<webhook_endpoint::Model> {
    let previous = existing.secret.clone();
    let reads_customers = existing.owner_reads_customers && reads_customers;
    let mut endpoint: webhook_endpoint::ActiveModel = existing.into();
    endpoint.owner_reads_customers = Set(reads_customers);
    endpoint.secret = Set(secret);
    endpoint.previous_secret = Set(Some(previous));
    endpoint.previous_secret_until = Set(Some(overlap_until));
    endpoint.updated_at = Set(now());
    Ok(endpoint.update(db).await?)
}

/// A delivery to create: one event for one endpoint.
pub struct NewDelivery {
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// Creates deliveries due now, in one statement; one that exists already (the same event
/// fanned out by another replica) is left as it is.
pub async fn insert_deliveries(
    db: &impl ConnectionTrait,
    deliveries: Vec<NewDelivery>,
) -> DomainResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows = deliveries
        .into_iter()
        .map(|d| webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            endpoint_id: Set(d.endpoint_id),
            event_id: Set(d.event_id),
            event_type: Set(d.event_type),
            payload: Set(d.payload),
            occurred_at: Set(d.occurred_at),
            status: Set(WebhookDeliveryStatus::Pending),
            attempts: Set(0),
            last_status_code: Set(None),
            last_error: Set(None),
            next_attempt_at: Set(Some(at)),
            claimed_until: Set(None),
            created_at: Set(at),
            delivered_at: Set(None),
        });
    webhook_delivery::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([
            webhook_delivery::Column::EndpointId,
            webhook_delivery::Column::EventId,
        ])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Creates one delivery and returns it (a test event: its id is new).
pub async fn insert_delivery(
    db: &impl ConnectionTrait,
    new: NewDelivery,
) -> DomainResult<webhook_delivery::Model> {
    let event_id = new.event_id;
    let endpoint_id = new.endpoint_id;
    insert_deliveries(db, vec![new]).await?;
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .filter(webhook_delivery::Column::EventId.eq(event_id))
        .one(db)
        .await?
        .ok_or_else(|| crate::domain::DomainError::not_found("delivery"))
}

pub async fn find_delivery(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<webhook_delivery::Model>> {
    Ok(webhook_delivery::Entity::find_by_id(id).one(db).await?)
}

/// The order deliveries are listed in.
pub const ORDER: &str = "CREATED_AT_DESC";

/// An endpoint's deliveries, newest first, of one status or all.
pub async fn deliveries_page(
    db: &impl ConnectionTrait,
    endpoint_id: Uuid,
    status: Option<WebhookDeliveryStatus>,
    request: &PageRequest,
) -> DomainResult<Page<webhook_delivery::Model>> {
    let mut condition = Condition::all().add(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = status {
        condition = condition.add(webhook_delivery::Column::Status.eq(status));
    }
    super::paging::newest_first::<webhook_delivery::Entity>(
        db,
        condition,
        webhook_delivery::Column::CreatedAt,
        webhook_delivery::Column::Id,
        request,
    )
    .await
}

/// Claims up to `limit` deliveries due at `at` for one attempt each, until
/// `claimed_until`; returns their ids. Replicas that claim at once get different ones.
///
/// Fair between owners: none of `busy` (owners, as `role:sub`, that have as many
/// attempts in flight as they may) is claimed for, and no owner gets more than
/// `per_owner` in one claim, so one partner's slow or dead endpoints cannot take every
/// attempt slot. The oldest due deliveries come first among the rest.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    claimed_until: DateTime<Utc>,
    limit: u64,
    per_owner: u64,
    busy: &[String],
) -> DomainResult<Vec<Uuid>> {
    let backend = db.get_database_backend();
    // A read first: an idle dispatcher (the usual case) writes nothing, which on SQLite
    // would take the database's one write lock at every poll.
    let probe = "SELECT id FROM webhook_delivery WHERE status = 'PENDING' AND next_attempt_at <= $1 \
                 AND (claimed_until IS NULL OR claimed_until < $1) LIMIT 1";
    if db
        .query_one_raw(raw(backend, probe, vec![at.into()]))
        .await?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let mut values: Vec<sea_orm::Value> = vec![
        claimed_until.into(),
        at.into(),
        (limit as i64).into(),
        (per_owner as i64).into(),
    ];
    let not_busy = if busy.is_empty() {
        String::new()
    } else {
        let first = values.len() + 1;
        values.extend(busy.iter().map(|who| who.clone().into()));
        format!(
            "AND e.owner_role || ':' || e.owner NOT IN ({})",
            super::paging::placeholders(first, busy.len())
        )
    };
    // The candidates are the oldest 200 due (an index range), ranked per owner; the
    // update claims them only if still unclaimed, so racing replicas split them.
    let sql = format!(
        "WITH due AS (
           SELECT d.id, d.next_attempt_at, e.owner_role || ':' || e.owner AS who
           FROM webhook_delivery d JOIN webhook_endpoint e ON e.id = d.endpoint_id
           WHERE d.status = 'PENDING' AND d.next_attempt_at <= $2
             AND (d.claimed_until IS NULL OR d.claimed_until < $2) {not_busy}
           ORDER BY d.next_attempt_at LIMIT 200),
         ranked AS (
           SELECT id, next_attempt_at,
             ROW_NUMBER() OVER (PARTITION BY who ORDER BY next_attempt_at) AS turn
           FROM due),
         chosen AS (
           SELECT id FROM ranked WHERE turn <= $4 ORDER BY next_attempt_at LIMIT $3)
         UPDATE webhook_delivery SET claimed_until = $1
         WHERE id IN (SELECT id FROM chosen) AND status = 'PENDING'
           AND (claimed_until IS NULL OR claimed_until < $2)
         RETURNING id"
    );
    let rows = db.query_all_raw(raw(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// The deliveries with these ids.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<Vec<webhook_delivery::Model>> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// What one attempt came to.
pub struct AttemptResult {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// SUCCEEDED, PENDING (with the next attempt's time) or FAILED.
    pub status: WebhookDeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// Records an attempt of a claimed delivery.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    id: Uuid,
    result: &AttemptResult,
) -> DomainResult<()> {
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Attempts,
            Expr::col(webhook_delivery::Column::Attempts).add(1),
        )
        .col_expr(webhook_delivery::Column::Status, Expr::value(result.status))
        .col_expr(
            webhook_delivery::Column::LastStatusCode,
            Expr::value(result.status_code),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(result.error.clone()),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(result.next_attempt_at),
        )
        .col_expr(
            webhook_delivery::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::DeliveredAt,
            Expr::value((result.status == WebhookDeliveryStatus::Succeeded).then_some(result.at)),
        )
        .filter(webhook_delivery::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records an endpoint's success: its failure streak ends.
pub async fn endpoint_succeeded(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<()> {
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::FailingSince,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::FailingSince.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Records an endpoint's failure at `at`; disables it with `reason` when it has failed
/// without a success since before `disable_if_failing_since`. Returns whether this
/// disabled it.
pub async fn endpoint_failed(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
    disable_if_failing_since: DateTime<Utc>,
    reason: &str,
) -> DomainResult<bool> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(at))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::FailingSince.is_null())
        .exec(db)
        .await?;
    let disabled = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
        .col_expr(
            webhook_endpoint::Column::DisabledReason,
            Expr::value(reason.to_owned()),
        )
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(at))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .filter(webhook_endpoint::Column::FailingSince.lte(disable_if_failing_since))
        .exec(db)
        .await?;
    Ok(disabled.rows_affected > 0)
}

/// Makes a delivery due again now (`redeliverWebhook`).
pub async fn make_due(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
) -> DomainResult<webhook_delivery::Model> {
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(WebhookDeliveryStatus::Pending),
        )
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at))
        .col_expr(
            webhook_delivery::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_delivery::Column::Id.eq(id))
        .exec(db)
        .await?;
    find_delivery(db, id)
        .await?
        .ok_or_else(|| crate::domain::DomainError::not_found("delivery"))
}

/// How many deliveries wait for an attempt.
pub async fn pending_count(db: &impl ConnectionTrait) -> DomainResult<u64> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(WebhookDeliveryStatus::Pending))
        .count(db)
        .await?)
}

/// Deletes deliveries created before `before`.
pub async fn prune_deliveries(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> DomainResult<u64> {
    Ok(webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
