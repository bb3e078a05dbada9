//! The points ledger: append-only entries whose running balance is kept on the customer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::{EventTopic, PointsEntryKind};
use entity::{customer, points_entry};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::paging::{self, ChildList, Page, PageRequest, time_cursor};
use super::{now, outbox};
use crate::domain::points::{LedgerItem, may_overdraw};
use crate::domain::{DomainError, DomainResult};

pub struct NewEntry<'a> {
    /// The entry's id, when the caller needs it beforehand (an idempotency key names it).
    pub id: Option<Uuid>,
    pub customer_id: Uuid,
    pub delta: i64,
    pub kind: PointsEntryKind,
    pub reason: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub interaction_id: Option<Uuid>,
    /// The campaign a `CAMPAIGN_BONUS` came from.
    pub campaign_id: Option<Uuid>,
    /// The transfer a `TRANSFER_OUT` or `TRANSFER_IN` belongs to.
    pub transfer_id: Option<Uuid>,
    pub created_by: &'a str,
}

/// Appends an entry and moves the customer's balance by its delta, in the caller's
/// transaction, and announces it (`POINTS_CHANGED`). The ledger guards its own invariant:
/// an entry that may not overdraw (`may_overdraw`) is refused with `INSUFFICIENT_POINTS`
/// when the balance would go below zero, by the update itself, so that it holds whether
/// or not the caller locked the customer; a customer that does not exist is `NOT_FOUND`.
/// `balanceAfter` is the balance the update returned.
pub async fn append(
    db: &impl ConnectionTrait,
    entry: NewEntry<'_>,
) -> DomainResult<points_entry::Model> {
    let mut update = customer::Entity::update_many()
        .col_expr(
            customer::Column::PointsBalance,
            Expr::col(customer::Column::PointsBalance).add(entry.delta),
        )
        .filter(customer::Column::Id.eq(entry.customer_id));
    let guarded = entry.delta < 0 && !may_overdraw(entry.kind);
    if guarded {
        update = update.filter(customer::Column::PointsBalance.gte(-entry.delta));
    }
    let balance_after = match update.exec_with_returning(db).await?.into_iter().next() {
        Some(updated) => updated.points_balance,
        None => {
            return Err(
                match customer::Entity::find_by_id(entry.customer_id)
                    .one(db)
                    .await?
                {
                    Some(customer) => DomainError::InsufficientPoints {
                        balance: Some(customer.points_balance),
                        needed: -entry.delta,
                    },
                    None => DomainError::not_found("customer"),
                },
            );
        }
    };
    let entry = points_entry::ActiveModel {
        id: Set(entry.id.unwrap_or_else(Uuid::now_v7)),
        customer_id: Set(entry.customer_id),
        delta: Set(entry.delta),
        balance_after: Set(balance_after),
        kind: Set(entry.kind),
        reason: Set(entry.reason.map(str::to_owned)),
        expires_at: Set(entry.expires_at),
        interaction_id: Set(entry.interaction_id),
        campaign_id: Set(entry.campaign_id),
        available_at: Set(None),
        transfer_id: Set(entry.transfer_id),
        created_by: Set(entry.created_by.to_owned()),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    outbox::emit(
        db,
        EventTopic::PointsChanged,
        Some(entry.customer_id),
        entry.id,
    )
    .await?;
    Ok(entry)
}

/// `append` for one entry on each of many customers, in three statements whatever
/// their number (`add_to_balances`, `insert_entries`, and their events). `locked` are
/// the customers' balances as read under their locks (`customers::lock_in_order`), which
/// is what makes each `balanceAfter` their balance plus the delta, as `append` would
/// have found it. An evaluation run expiring every customer's points on one night wrote
/// one entry per round trip. A customer twice, or one not locked, is refused: its
/// `balanceAfter` could not chain.
pub async fn append_to_each(
    db: &impl ConnectionTrait,
    locked: &HashMap<Uuid, i64>,
    entries: &[NewEntry<'_>],
) -> DomainResult<Vec<points_entry::Model>> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for entry in entries {
        let Some(&balance) = locked.get(&entry.customer_id) else {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "customer {} is not locked",
                entry.customer_id
            )));
        };
        if !seen.insert(entry.customer_id) {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "customer {} has two entries in one append_to_each",
                entry.customer_id
            )));
        }
        if entry.delta < 0 && !may_overdraw(entry.kind) && balance + entry.delta < 0 {
            return Err(DomainError::InsufficientPoints {
                balance: Some(balance),
                needed: -entry.delta,
            });
        }
    }
    let at = now();
    let models: Vec<points_entry::Model> = entries
        .iter()
        .map(|entry| points_entry::Model {
            id: entry.id.unwrap_or_else(Uuid::now_v7),
            customer_id: entry.customer_id,
            delta: entry.delta,
            balance_after: locked[&entry.customer_id] + entry.delta,
            kind: entry.kind,
            reason: entry.reason.map(str::to_owned),
            expires_at: entry.expires_at,
            interaction_id: entry.interaction_id,
            campaign_id: entry.campaign_id,
            available_at: None,
            transfer_id: entry.transfer_id,
            created_by: entry.created_by.to_owned(),
            created_at: at,
        })
        .collect();
    let deltas: Vec<(Uuid, i64)> = models.iter().map(|m| (m.customer_id, m.delta)).collect();
    add_to_balances(db, &deltas).await?;
    insert_entries(db, &models).await?;
    Ok(models)
}

/// Moves each customer's balance by its delta, in one `UPDATE … FROM` a batch (`values::relation`). A
/// customer given twice moves by the sum of its deltas.
pub async fn add_to_balances(
    db: &impl ConnectionTrait,
    deltas: &[(Uuid, i64)],
) -> DomainResult<()> {
    let mut totals: HashMap<Uuid, i64> = HashMap::with_capacity(deltas.len());
    for (customer_id, delta) in deltas {
        *totals.entry(*customer_id).or_default() += delta;
    }
    totals.retain(|_, delta| *delta != 0);
    if totals.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let (rows, values) = super::values::relation(
        backend,
        &["uuid", "bigint"],
        totals
            .into_iter()
            .map(|(id, delta)| vec![id.into(), delta.into()]),
        1,
    )?;
    let sql = format!(
        "WITH v (id, delta) AS ({rows})
         UPDATE customer SET points_balance = customer.points_balance + v.delta
         FROM v WHERE customer.id = v.id"
    );
    db.execute_raw(super::raw(backend, &sql, values)).await?;
    Ok(())
}

/// Entries one INSERT carries: ten parameters each stays under SQLite's 32,766 per
/// statement (a batch of 1,000 purchases can write 3,000: its earnings and two referral
/// bonuses for each first purchase).
const ENTRIES_PER_INSERT: usize = 2000;

/// Inserts ledger entries whose `balanceAfter` the caller worked out (from balances read
/// under the customers' locks), `ENTRIES_PER_INSERT` a statement, and announces them
/// (`POINTS_CHANGED`) in one more.
pub async fn insert_entries(
    db: &impl ConnectionTrait,
    entries: &[points_entry::Model],
) -> DomainResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        points_entry::Entity::insert_many(
            chunk.iter().cloned().map(points_entry::ActiveModel::from),
        )
        .exec_without_returning(db)
        .await?;
    }
    outbox::emit_many(
        db,
        EventTopic::PointsChanged,
        entries.iter().map(|m| (Some(m.customer_id), m.id)),
    )
    .await
}

/// The order the ledger is listed in: newest first.
pub const ORDER: &str = "CREATED_AT_DESC";

pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<points_entry::Model>> {
    Ok(points_entry::Entity::find_by_id(id).one(db).await?)
}

pub fn cursor(entry: &points_entry::Model) -> String {
    time_cursor(ORDER, entry.created_at, entry.id)
}

/// A page of one customer's ledger, newest first.
pub async fn page_of(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    page: &PageRequest,
) -> DomainResult<Page<points_entry::Model>> {
    paging::newest_first::<points_entry::Entity>(
        db,
        Condition::all().add(points_entry::Column::CustomerId.eq(customer_id)),
        points_entry::Column::CreatedAt,
        points_entry::Column::Id,
        page,
    )
    .await
}

/// The first page of each customer's ledger, in two statements whatever their number.
pub async fn first_pages(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    page: &PageRequest,
) -> DomainResult<HashMap<Uuid, Page<points_entry::Model>>> {
    let list = ChildList {
        table: "points_entry",
        time_column: "created_at",
        any_of: None,
    };
    paging::first_pages::<points_entry::Entity>(db, list, customer_ids, page, |e| e.customer_id)
        .await
}

/// The customers with credits that expire after `from` and at or before `to`.
pub async fn customers_with_credits_expiring(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Vec<Uuid>> {
    Ok(points_entry::Entity::find()
        .select_only()
        .column(points_entry::Column::CustomerId)
        .distinct()
        .filter(points_entry::Column::ExpiresAt.gt(from))
        .filter(points_entry::Column::ExpiresAt.lte(to))
        .filter(points_entry::Column::Delta.gt(0))
        .into_tuple::<Uuid>()
        .all(db)
        .await?)
}

/// Each customer's ledger of spendable points, in the order its points became
/// spendable, as lot accounting needs it: only each entry's delta and expiry (an expiry
/// night reads the ledgers of every customer holding points, ten million entries at a
/// million customers). Entries still pending are left out, and a pending entry counts
/// from its `available_at`: a spend made while it was pending could not have used it.
pub async fn ledgers_of(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<LedgerItem>>> {
    let rows: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = points_entry::Entity::find()
        .select_only()
        .column(points_entry::Column::CustomerId)
        .column(points_entry::Column::Delta)
        .column(points_entry::Column::ExpiresAt)
        .filter(points_entry::Column::CustomerId.is_in(customer_ids.iter().copied()))
        .filter(
            Condition::any()
                .add(points_entry::Column::AvailableAt.is_null())
                .add(points_entry::Column::AvailableAt.lte(now())),
        )
        .order_by_asc(points_entry::Column::CustomerId)
        .order_by(
            Expr::cust("COALESCE(available_at, created_at)"),
            sea_orm::Order::Asc,
        )
        .order_by_asc(points_entry::Column::CreatedAt)
        .order_by_asc(points_entry::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut ledgers: HashMap<Uuid, Vec<LedgerItem>> =
        customer_ids.iter().map(|id| (*id, Vec::new())).collect();
    for (customer_id, delta, expires_at) in rows {
        ledgers
            .entry(customer_id)
            .or_default()
            .push(LedgerItem { delta, expires_at });
    }
    Ok(ledgers)
}

/// Since when a run may look only at what changed: the `asOf` of the last full run
/// whose expiry wrote off everything due by then, and when it started.
#[derive(Debug, Clone, Copy)]
pub struct ExpiredUpTo {
    pub as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// Customers holding points with a lot dated to expire by `at` (whether or not it was
/// spent: lot accounting decides that). After a full run that expired everything due by
/// `since.as_of`, only two kinds of customer can owe more: those with a lot falling due
/// in `(since.as_of, at]`, and those whose ledger changed since that run started (a
/// purchase backdated past `since.as_of`, a redemption or a reversal that changes which
/// lots were spent) and who hold a lot due by `at`. Everyone else's ledger is the one
/// that run wrote off, and owes nothing more: a steady-state run reads only them, not
/// everyone who ever held an expiring lot.
pub async fn expiry_candidates(
    db: &impl ConnectionTrait,
    at: DateTime<Utc>,
    since: Option<ExpiredUpTo>,
) -> DomainResult<Vec<Uuid>> {
    let backend = db.get_database_backend();
    let expire = PointsEntryKind::Expire.as_str();
    let (owing, values): (String, Vec<sea_orm::Value>) = match since {
        Some(since) if since.as_of <= at => (
            format!(
                "SELECT e.customer_id FROM points_entry e
                 WHERE e.delta > 0 AND e.expires_at > $2 AND e.expires_at <= $1
                 UNION
                 SELECT e.customer_id FROM points_entry e
                 WHERE e.created_at >= $3 AND e.kind <> '{expire}' AND EXISTS (
                     SELECT 1 FROM points_entry lot WHERE lot.customer_id = e.customer_id
                     AND lot.delta > 0 AND lot.expires_at <= $1)"
            ),
            vec![at.into(), since.as_of.into(), since.started_at.into()],
        ),
        _ => (
            "SELECT e.customer_id FROM points_entry e
             WHERE e.delta > 0 AND e.expires_at <= $1"
                .to_owned(),
            vec![at.into()],
        ),
    };
    let sql =
        format!("SELECT id FROM customer WHERE points_balance > 0 AND id IN ({owing}) ORDER BY id");
    let rows = db.query_all_raw(super::raw(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| Ok(row.try_get_by_index::<Uuid>(0)?))
        .collect()
}

/// Which of `customer_ids` already have an entry of `kind` with this `reason`.
pub async fn having_entry(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    kind: PointsEntryKind,
    reason: &str,
) -> DomainResult<Vec<Uuid>> {
    Ok(points_entry::Entity::find()
        .select_only()
        .column(points_entry::Column::CustomerId)
        .filter(points_entry::Column::CustomerId.is_in(customer_ids.iter().copied()))
        .filter(points_entry::Column::Kind.eq(kind))
        .filter(points_entry::Column::Reason.eq(reason))
        .into_tuple()
        .all(db)
        .await?)
}

/// The points each of `interaction_ids` caused, per entry kind, in one statement.
pub async fn sums_by_interaction(
    db: &impl ConnectionTrait,
    interaction_ids: &[Uuid],
) -> DomainResult<Vec<(Uuid, PointsEntryKind, i64)>> {
    if interaction_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(points_entry::Entity::find()
        .select_only()
        .column(points_entry::Column::InteractionId)
        .column(points_entry::Column::Kind)
        .column_as(Expr::cust("CAST(SUM(delta) AS BIGINT)"), "total")
        .filter(points_entry::Column::InteractionId.is_in(interaction_ids.iter().copied()))
        .group_by(points_entry::Column::InteractionId)
        .group_by(points_entry::Column::Kind)
        .into_tuple()
        .all(db)
        .await?)
}
