//! The outbox: an event row written in the transaction of the change it announces, so
//! that its consumers (`crate::outbox`) act on exactly what committed, in commit order.
//! An event names its subject (a ledger entry, a tier change) and, when it is about one,
//! the customer; an event about no single customer has none.

use entity::enums::EventTopic;
use entity::event_outbox;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use super::now;
use crate::domain::DomainResult;

/// Announces that `subject_id` (a ledger entry or a tier change) happened, to
/// `customer_id` when it is about one customer.
pub async fn emit(
    db: &impl ConnectionTrait,
    topic: EventTopic,
    customer_id: Option<Uuid>,
    subject_id: Uuid,
) -> DomainResult<()> {
    emit_many(db, topic, std::iter::once((customer_id, subject_id))).await
}

/// `emit` for many subjects at once (an evaluation batch), in one statement.
pub async fn emit_many(
    db: &impl ConnectionTrait,
    topic: EventTopic,
    subjects: impl IntoIterator<Item = (Option<Uuid>, Uuid)>,
) -> DomainResult<()> {
    let events: Vec<_> = subjects
        .into_iter()
        .map(|(customer_id, subject_id)| (customer_id, subject_id, None))
        .collect();
    emit_with_payloads(db, topic, events).await
}

/// Events one INSERT carries.
const EVENTS_PER_INSERT: usize = 4000;

/// `emit_many` for events that carry their own figures.
pub async fn emit_with_payloads(
    db: &impl ConnectionTrait,
    topic: EventTopic,
    events: Vec<(Option<Uuid>, Uuid, Option<serde_json::Value>)>,
) -> DomainResult<()> {
    let at = now();
    let rows: Vec<event_outbox::ActiveModel> = events
        .into_iter()
        .map(
            |(customer_id, subject_id, payload)| event_outbox::ActiveModel {
                id: Set(Uuid::now_v7()),
                topic: Set(topic),
                customer_id: Set(customer_id),
                subject_id: Set(subject_id),
                payload: Set(payload),
                created_at: Set(at),
            },
        )
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    // Six parameters a row: chunks stay far under SQLite's 32,766 and Postgres' 65,535
    // whatever a batch writes (a thousand purchases, each with its bonuses).
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<event_outbox::ActiveModel> = rows.by_ref().take(EVENTS_PER_INSERT).collect();
        event_outbox::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    notify(db).await
}

/// Announces customers' moves between lifecycle stages, `(customer, from, to)`, each with
/// its stages and the instant they were judged as of (an evaluation run's `asOf`, or now)
/// as its payload (a move to `AT_RISK` is the churn early warning partners act on).
pub async fn emit_lifecycle_changes(
    db: &impl ConnectionTrait,
    changes: &[(
        Uuid,
        entity::enums::LifecycleStage,
        entity::enums::LifecycleStage,
    )],
    as_of: chrono::DateTime<chrono::Utc>,
) -> DomainResult<()> {
    let events = changes
        .iter()
        .filter(|(_, from, to)| from != to)
        .map(|(customer, from, to)| {
            let payload =
                serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "asOf": as_of });
            (Some(*customer), *customer, Some(payload))
        })
        .collect();
    emit_with_payloads(db, EventTopic::LifecycleChanged, events).await
}

/// The channel Postgres notifies outbox readers on; the payload is empty, the outbox holds the
/// events. Postgres folds identical notifications of one transaction into one, so a
/// transaction sends one however many events it wrote.
pub const CHANNEL: &str = "tierwise_events";

/// Wakes the outbox readers once the transaction commits (Postgres; SQLite readers are
/// woken in-process by `Db::write`).
async fn notify(db: &impl ConnectionTrait) -> DomainResult<()> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_unprepared(&format!("SELECT pg_notify('{CHANNEL}', '')"))
            .await?;
    }
    Ok(())
}

/// Where a consumer is in the outbox, in commit order: Postgres `(txid, id)`, SQLite
/// `(rowid, nil)` (see the `event_positions` migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub seq: i64,
    pub id: Uuid,
}

/// An outbox row with its position.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The event's own id: what webhooks send as `webhook-id`.
    pub id: Uuid,
    pub position: Position,
    /// The topic, or the name of one this version does not know (written by a newer
    /// replica during a rolling upgrade): a reader skips it, it never guesses.
    pub topic: Result<EventTopic, String>,
    /// The customer the event is about, if it is about one.
    pub customer_id: Option<Uuid>,
    pub subject_id: Uuid,
    /// The event's own figures, when it carries them.
    pub payload: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// On Postgres, the events that can no longer be overtaken: those of transactions older
/// than every transaction still running in this database. A transaction that was
/// running when the statement's snapshot was taken and has finished since cannot be
/// placed, so it counts as ours; transactions running in other databases (a long bulk
/// load elsewhere on the cluster) cannot write our outbox and do not hold it back.
const SETTLED_POSTGRES: &str = "txid < (\
    SELECT COALESCE(min(running), pg_snapshot_xmax(pg_current_snapshot())) \
    FROM pg_snapshot_xip(pg_current_snapshot()) AS running \
    WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity AS elsewhere \
        WHERE elsewhere.backend_xid IS NOT NULL \
        AND elsewhere.datname IS DISTINCT FROM current_database() \
        AND CAST(CAST(elsewhere.backend_xid AS text) AS BIGINT) \
            = CAST(CAST(running AS text) AS BIGINT) % 4294967296))";

/// Columns and the commit-order key of each backend. On Postgres only settled
/// transactions are read, so nothing can later commit behind the position a reader has
/// reached.
fn dialect(backend: sea_orm::DbBackend) -> (&'static str, &'static str, &'static str) {
    match backend {
        sea_orm::DbBackend::Postgres => (
            "CAST(CAST(txid AS text) AS BIGINT) AS seq, id",
            SETTLED_POSTGRES,
            "txid, id",
        ),
        _ => ("rowid AS seq, id", "1 = 1", "rowid"),
    }
}

/// The commit-order key, newest first.
fn newest_first(backend: sea_orm::DbBackend) -> String {
    let (_, _, order) = dialect(backend);
    let descending: Vec<String> = order.split(", ").map(|c| format!("{c} DESC")).collect();
    descending.join(", ")
}

/// Up to `limit` committed events after `after`, in commit order.
pub async fn read_after(
    db: &impl ConnectionTrait,
    after: Position,
    limit: u64,
) -> DomainResult<Vec<Stored>> {
    let backend = db.get_database_backend();
    let (columns, settled, order) = dialect(backend);
    let (beyond, mut values): (&str, Vec<sea_orm::Value>) = match backend {
        sea_orm::DbBackend::Postgres => (
            "(txid, id) > (CAST(CAST($1 AS text) AS xid8), $2) AND",
            vec![after.seq.to_string().into(), after.id.into()],
        ),
        _ => ("rowid > $1 AND", vec![after.seq.into()]),
    };
    let sql = format!(
        "SELECT {columns}, topic, customer_id, subject_id, payload, created_at FROM event_outbox \
         WHERE {beyond} {settled} ORDER BY {order} LIMIT ${}",
        values.len() + 1
    );
    values.push((limit as i64).into());
    let rows = db.query_all_raw(super::raw(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| {
            let topic: String = row.try_get("", "topic")?;
            Ok(Stored {
                id: row.try_get("", "id")?,
                position: position(row, backend)?,
                topic: EventTopic::parse(&topic).ok_or(topic),
                customer_id: row.try_get("", "customer_id")?,
                subject_id: row.try_get("", "subject_id")?,
                payload: row.try_get("", "payload")?,
                created_at: row.try_get("", "created_at")?,
            })
        })
        .collect()
}

fn position(row: &sea_orm::QueryResult, backend: sea_orm::DbBackend) -> DomainResult<Position> {
    Ok(Position {
        seq: row.try_get("", "seq")?,
        id: match backend {
            sea_orm::DbBackend::Postgres => row.try_get("", "id")?,
            _ => Uuid::nil(),
        },
    })
}

/// The position of the newest committed event (where a consumer that starts now begins).
pub async fn head(db: &impl ConnectionTrait) -> DomainResult<Position> {
    let backend = db.get_database_backend();
    let (columns, settled, _) = dialect(backend);
    let sql = format!(
        "SELECT {columns} FROM event_outbox WHERE {settled} ORDER BY {} LIMIT 1",
        newest_first(backend)
    );
    match db.query_one_raw(super::raw(backend, &sql, vec![])).await? {
        Some(row) => position(&row, backend),
        None => Ok(Position::default()),
    }
}

/// Deletes events written before `before`, except the newest: consumers that were away
/// longer than that cannot catch up on them. The newest stays because a SQLite outbox is
/// read in `rowid` order, and SQLite numbers a row after the largest `rowid` left in the
/// table: emptied, it would count from 1 again, behind every consumer's position.
pub async fn prune(
    db: &impl ConnectionTrait,
    before: chrono::DateTime<chrono::Utc>,
) -> DomainResult<u64> {
    let backend = db.get_database_backend();
    // The newest in commit order, which is what a reader's position follows: on SQLite
    // the largest `rowid`, not the latest `created_at`.
    let sql = format!(
        "DELETE FROM event_outbox WHERE created_at < $1 AND id <> \
         (SELECT id FROM event_outbox ORDER BY {} LIMIT 1)",
        newest_first(backend)
    );
    Ok(db
        .execute_raw(super::raw(backend, &sql, vec![before.into()]))
        .await?
        .rows_affected())
}

/// The tier changes and ledger entries a batch of events is about, by id.
pub async fn subjects(
    db: &impl ConnectionTrait,
    batch: &[Stored],
) -> DomainResult<(
    std::collections::HashMap<Uuid, entity::tier_change::Model>,
    std::collections::HashMap<Uuid, entity::points_entry::Model>,
)> {
    use entity::{points_entry, tier_change};
    use sea_orm::{ColumnTrait, QueryFilter};
    let ids = |topic: EventTopic| -> Vec<Uuid> {
        batch
            .iter()
            .filter(|e| e.topic == Ok(topic))
            .map(|e| e.subject_id)
            .collect()
    };
    let changes = match ids(EventTopic::TierChanged) {
        ids if ids.is_empty() => Vec::new(),
        ids => {
            tier_change::Entity::find()
                .filter(tier_change::Column::Id.is_in(ids))
                .all(db)
                .await?
        }
    };
    let entries = match ids(EventTopic::PointsChanged) {
        ids if ids.is_empty() => Vec::new(),
        ids => {
            points_entry::Entity::find()
                .filter(points_entry::Column::Id.is_in(ids))
                .all(db)
                .await?
        }
    };
    Ok((
        changes.into_iter().map(|c| (c.id, c)).collect(),
        entries.into_iter().map(|e| (e.id, e)).collect(),
    ))
}

/// Where a durable consumer resumes: its saved position, or, the first time, the
/// outbox's head, saved (what committed before the consumer existed is not its work).
pub async fn resume_or_start(db: &impl ConnectionTrait, consumer: &str) -> DomainResult<Position> {
    match cursor(db, consumer).await? {
        Some(position) => Ok(position),
        None => {
            let head = head(db).await?;
            save_cursor(db, consumer, head).await?;
            Ok(head)
        }
    }
}

/// A durable consumer's saved position in the outbox.
pub async fn cursor(db: &impl ConnectionTrait, consumer: &str) -> DomainResult<Option<Position>> {
    let row = db
        .query_one_raw(super::raw(
            db.get_database_backend(),
            "SELECT seq, event_id FROM outbox_cursor WHERE consumer = $1",
            vec![consumer.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Some(Position {
            seq: row.try_get("", "seq")?,
            id: row.try_get("", "event_id")?,
        }),
        None => None,
    })
}

/// Saves `position` as `consumer`'s, unless it already is further on (replicas that
/// consume the same events save the same positions, in any order).
pub async fn save_cursor(
    db: &impl ConnectionTrait,
    consumer: &str,
    position: Position,
) -> DomainResult<()> {
    db.execute_raw(super::raw(
        db.get_database_backend(),
        "INSERT INTO outbox_cursor (consumer, seq, event_id, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (consumer) DO UPDATE
           SET seq = excluded.seq, event_id = excluded.event_id, updated_at = excluded.updated_at
           WHERE outbox_cursor.seq < excluded.seq
              OR (outbox_cursor.seq = excluded.seq AND outbox_cursor.event_id < excluded.event_id)",
        vec![
            consumer.into(),
            position.seq.into(),
            position.id.into(),
            now().into(),
        ],
    ))
    .await?;
    Ok(())
}
