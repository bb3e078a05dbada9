//! The set-based half of an evaluation run: one query computes, for every customer, its
//! sums as of the run's `asOf` and its place in the population (RFM ranks by window
//! counts, ABC by a running sum of lifetime spend); batched `UPDATE … FROM` a batch (`values::relation`)
//! statements write back only the customers whose state changed.

use chrono::{DateTime, Utc};
use entity::enums::{AbcClass, LifecycleStage, RfmSegment};
use futures_util::Stream;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, StreamTrait, Value};
use uuid::Uuid;

use super::metrics::{Scope, aggregate_ctes, money_sum, read_aggregates};
use super::paging::placeholders;
use super::raw;
use crate::domain::DomainResult;
use crate::domain::analytics::churn::History;
use crate::domain::metrics::{Aggregates, window_start};

/// Everything a run may change on a customer's row; a row is written only when this
/// differs from what is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerState {
    pub first_purchase_at: Option<DateTime<Utc>>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub lifetime_purchase_count: i64,
    pub purchase_count: i64,
    pub net_spend_e4: i64,
    pub lifetime_spend_e4: i64,
    pub average_order_value_e4: Option<i64>,
    pub engagement_count: i64,
    pub latest_nps: Option<i32>,
    pub outstanding_receivable_e4: i64,
    pub rfm: Option<(i16, i16, i16, RfmSegment)>,
    pub abc_class: AbcClass,
    pub score: f64,
    pub lifecycle_stage: LifecycleStage,
    pub tier_id: Uuid,
    pub downgrade_marked_at: Option<DateTime<Utc>>,
    pub tier_held: bool,
    pub history: Option<History>,
}

/// One customer as the scan sees it.
#[derive(Debug, Clone)]
pub struct ScanRow {
    pub id: Uuid,
    pub revision: i64,
    pub stored: CustomerState,
    pub aggregates: Aggregates,
    /// Customers ordered at or before this one by last purchase, window purchases and
    /// window net spend, and how many have a purchase in the window: `cume_dist() × n`,
    /// kept as integers so that quintiles are exact. `None` without a window purchase.
    pub rfm_ranks: Option<RfmRanks>,
    /// The lifetime spend of everyone ranked above this customer, and of everyone.
    pub spend_above: i64,
    pub spend_total: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmRanks {
    pub recency: i64,
    pub frequency: i64,
    pub monetary: i64,
    pub population: i64,
}

fn scan_sql(backend: DbBackend, customer_filter: &str) -> String {
    format!(
        "WITH {ctes},
        scored AS (
            SELECT c.id, c.revision, c.tier_id, c.tier_held, c.downgrade_marked_at,
                c.first_purchase_at, c.last_purchase_at, c.lifetime_purchase_count,
                c.purchase_count, c.net_spend_e4, c.lifetime_spend_e4, c.average_order_value_e4,
                c.engagement_count, c.latest_nps, c.outstanding_receivable_e4, c.rfm_recency,
                c.rfm_frequency, c.rfm_monetary, c.rfm_segment, c.abc_class, c.score,
                c.lifecycle_stage, c.repeat_purchase_days, c.first_purchase_day,
                c.last_purchase_day, c.repeat_spend_e4,
                hist.repeat_days AS a_repeat_days, hist.first_day AS a_first_day,
                hist.last_day AS a_last_day, hist.repeat_spend AS a_repeat_spend,
                agg.first_purchase_at AS a_first_purchase_at,
                agg.last_purchase_at AS a_last_purchase_at,
                COALESCE(agg.lifetime_purchases, 0) AS a_lifetime_purchases,
                COALESCE(agg.lifetime_spend, 0) AS a_lifetime_spend,
                COALESCE(agg.purchases, 0) AS a_purchases,
                COALESCE(agg.net_spend, 0) AS a_net_spend,
                COALESCE(agg.purchase_sum, 0) AS a_purchase_sum,
                COALESCE(agg.engagements, 0) AS a_engagements,
                COALESCE(agg.receivable, 0) AS a_receivable,
                nps.rating AS a_nps
            FROM customer c
            LEFT JOIN agg ON agg.subject = c.id
            LEFT JOIN nps ON nps.subject = c.id
            LEFT JOIN hist ON hist.subject = c.id
            WHERE c.merged_into_id IS NULL
        ),
        rfm AS (
            SELECT id,
                COUNT(*) OVER (ORDER BY a_last_purchase_at) AS r_rank,
                COUNT(*) OVER (ORDER BY a_purchases) AS f_rank,
                COUNT(*) OVER (ORDER BY a_net_spend) AS m_rank,
                COUNT(*) OVER () AS rfm_population
            FROM scored WHERE a_purchases > 0
        ),
        abc AS (
            SELECT id,
                {spend_above} AS spend_above,
                {spend_total} AS spend_total
            FROM scored WHERE a_lifetime_spend > 0
        )
        SELECT scored.*,
            CAST(rfm.r_rank AS BIGINT) AS r_rank, CAST(rfm.f_rank AS BIGINT) AS f_rank,
            CAST(rfm.m_rank AS BIGINT) AS m_rank,
            CAST(rfm.rfm_population AS BIGINT) AS rfm_population,
            abc.spend_above, abc.spend_total
        FROM scored
        LEFT JOIN rfm ON rfm.id = scored.id
        LEFT JOIN abc ON abc.id = scored.id{customer_filter}",
        ctes = aggregate_ctes(backend, &Scope::customers()),
        spend_above = money_sum(
            backend,
            "a_lifetime_spend",
            Some(
                "ORDER BY a_lifetime_spend DESC, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
            ),
        ),
        spend_total = money_sum(backend, "a_lifetime_spend", Some("")),
    )
}

/// The scan as one statement, for `scan` and for EXPLAIN in the benchmarks.
pub fn scan_statement(
    backend: DbBackend,
    as_of: DateTime<Utc>,
    window_days: i32,
    only: Option<&[Uuid]>,
) -> sea_orm::Statement {
    let mut values: Vec<Value> = vec![as_of.into(), window_start(as_of, window_days).into()];
    let filter = match only {
        Some(ids) => {
            let list = placeholders(3, ids.len());
            values.extend(ids.iter().map(|id| Value::from(*id)));
            format!(" WHERE scored.id IN ({list})")
        }
        None => String::new(),
    };
    raw(backend, &scan_sql(backend, &filter), values)
}

/// Streams every customer (or those in `only`) with its sums as of `as_of` and its
/// population ranks. Ranks are always computed over the whole population.
pub async fn scan<'a, C>(
    db: &'a C,
    as_of: DateTime<Utc>,
    window_days: i32,
    only: Option<&[Uuid]>,
) -> DomainResult<impl Stream<Item = Result<QueryResult, sea_orm::DbErr>> + Send + 'a>
where
    C: StreamTrait + ConnectionTrait,
{
    let backend = ConnectionTrait::get_database_backend(db);
    Ok(db
        .stream_raw(scan_statement(backend, as_of, window_days, only))
        .await?)
}

/// The customer a scanned row is about, if even that can be read.
pub fn row_id(row: &QueryResult) -> Option<Uuid> {
    row.try_get("", "id").ok()
}

/// The largest money sum taken as valid: 1.15 × 10¹⁴ in the base currency, a million
/// times any real customer's lifetime spend. `money_sum` holds a sum that overflowed at
/// the BIGINT bounds, far past this: the customer's data is out of any valid range.
const SUM_BOUND: i64 = i64::MAX / 8;

/// `row`, or an error when its sums are out of any valid range (see `SUM_BOUND`).
pub fn within_bounds(row: ScanRow) -> DomainResult<ScanRow> {
    let a = &row.aggregates;
    let sums = [
        a.lifetime_spend_e4,
        a.net_spend_e4,
        a.purchase_sum_e4,
        a.receivable_e4,
        a.history.map_or(0, |h| h.repeat_spend_e4),
    ];
    if sums.iter().any(|sum| sum.unsigned_abs() > SUM_BOUND as u64) {
        return Err(crate::domain::DomainError::Internal(anyhow::anyhow!(
            "customer {}: an amount sum is out of any valid range ({sums:?})",
            row.id
        )));
    }
    Ok(row)
}

pub fn read_row(row: &QueryResult) -> DomainResult<ScanRow> {
    let rfm = match (
        row.try_get::<Option<i16>>("", "rfm_recency")?,
        row.try_get::<Option<i16>>("", "rfm_frequency")?,
        row.try_get::<Option<i16>>("", "rfm_monetary")?,
        row.try_get::<Option<RfmSegment>>("", "rfm_segment")?,
    ) {
        (Some(r), Some(f), Some(m), Some(segment)) => Some((r, f, m, segment)),
        _ => None,
    };
    let stored = CustomerState {
        first_purchase_at: row.try_get("", "first_purchase_at")?,
        last_purchase_at: row.try_get("", "last_purchase_at")?,
        lifetime_purchase_count: row.try_get::<i32>("", "lifetime_purchase_count")?.into(),
        purchase_count: row.try_get::<i32>("", "purchase_count")?.into(),
        net_spend_e4: row.try_get("", "net_spend_e4")?,
        lifetime_spend_e4: row.try_get("", "lifetime_spend_e4")?,
        average_order_value_e4: row.try_get("", "average_order_value_e4")?,
        engagement_count: row.try_get::<i32>("", "engagement_count")?.into(),
        latest_nps: row.try_get("", "latest_nps")?,
        outstanding_receivable_e4: row.try_get("", "outstanding_receivable_e4")?,
        rfm,
        abc_class: row.try_get("", "abc_class")?,
        score: row.try_get("", "score")?,
        lifecycle_stage: row.try_get("", "lifecycle_stage")?,
        tier_id: row.try_get("", "tier_id")?,
        downgrade_marked_at: row.try_get("", "downgrade_marked_at")?,
        tier_held: row.try_get("", "tier_held")?,
        history: stored_history(row)?,
    };
    let rfm_ranks = match row.try_get::<Option<i64>>("", "rfm_population")? {
        Some(population) => Some(RfmRanks {
            recency: row.try_get("", "r_rank")?,
            frequency: row.try_get("", "f_rank")?,
            monetary: row.try_get("", "m_rank")?,
            population,
        }),
        None => None,
    };
    Ok(ScanRow {
        id: row.try_get("", "id")?,
        revision: row.try_get("", "revision")?,
        stored,
        aggregates: read_aggregates(row, "a_")?,
        rfm_ranks,
        spend_above: row.try_get::<Option<i64>>("", "spend_above")?.unwrap_or(0),
        spend_total: row.try_get::<Option<i64>>("", "spend_total")?.unwrap_or(0),
    })
}

/// The purchase history kept on a customer row (its `repeat_purchase_days`,
/// `first_purchase_day`, `last_purchase_day` and `repeat_spend_e4` columns).
fn stored_history(row: &QueryResult) -> DomainResult<Option<History>> {
    Ok(History::stored(
        row.try_get("", "repeat_purchase_days")?,
        row.try_get("", "first_purchase_day")?,
        row.try_get("", "last_purchase_day")?,
        row.try_get("", "repeat_spend_e4")?,
    ))
}

/// A customer's new state, to be written if its row is still at `revision`.
#[derive(Debug, Clone)]
pub struct StateWrite {
    pub id: Uuid,
    pub revision: i64,
    pub state: CustomerState,
    /// The stage the row had when read: a write that moves it is announced
    /// (`outbox::emit_lifecycle_changes`).
    pub previous_stage: LifecycleStage,
}

/// Columns of one written row, with the Postgres type of each (the first row of a
/// VALUES list carries casts so that Postgres knows the types of the parameters).
fn write_columns() -> Vec<(&'static str, &'static str)> {
    const REST: [(&str, &str); 17] = [
        ("rfm_recency", "smallint"),
        ("rfm_frequency", "smallint"),
        ("rfm_monetary", "smallint"),
        ("rfm_segment", "text"),
        ("abc_class", "text"),
        ("score", "double precision"),
        ("lifecycle_stage", "text"),
        ("tier_id", "uuid"),
        ("downgrade_marked_at", "timestamptz"),
        ("tier_held", "boolean"),
        ("repeat_purchase_days", "integer"),
        ("first_purchase_day", "integer"),
        ("last_purchase_day", "integer"),
        ("repeat_spend_e4", "bigint"),
        ("metrics_as_of", "timestamptz"),
        ("metrics_written_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ];
    [("id", "uuid"), ("expected_revision", "bigint")]
        .into_iter()
        .chain(super::customers::METRIC_COLUMNS)
        .chain(REST)
        .collect()
}

/// How many rows one UPDATE writes: 29 parameters a row stays under both databases'
/// parameter limits (SQLite 32766, Postgres 65535).
pub const WRITE_BATCH: usize = 1000;

fn row_values(write: &StateWrite, as_of: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Value> {
    let s = &write.state;
    let (r, f, m, segment) = match s.rfm {
        Some((r, f, m, segment)) => (Some(r), Some(f), Some(m), Some(segment.as_str())),
        None => (None, None, None, None),
    };
    vec![
        write.id.into(),
        write.revision.into(),
        s.first_purchase_at.into(),
        s.last_purchase_at.into(),
        (s.lifetime_purchase_count as i32).into(),
        (s.purchase_count as i32).into(),
        s.net_spend_e4.into(),
        s.lifetime_spend_e4.into(),
        s.average_order_value_e4.into(),
        (s.engagement_count as i32).into(),
        s.latest_nps.into(),
        s.outstanding_receivable_e4.into(),
        r.into(),
        f.into(),
        m.into(),
        segment.map(str::to_owned).into(),
        s.abc_class.as_str().to_owned().into(),
        s.score.into(),
        s.lifecycle_stage.as_str().to_owned().into(),
        s.tier_id.into(),
        s.downgrade_marked_at.into(),
        s.tier_held.into(),
        s.history.map_or(0, |h| h.repeat_days).into(),
        s.history.map(|h| h.first_day).into(),
        s.history.map(|h| h.last_day).into(),
        s.history.map_or(0, |h| h.repeat_spend_e4).into(),
        as_of.into(),
        now.into(),
        now.into(),
    ]
}

/// Writes a batch of new states, each only if its row's revision is still the one the
/// scan read (a live interaction that landed meanwhile wins: its values are newer).
/// Returns the ids actually written.
pub async fn write_states(
    db: &impl ConnectionTrait,
    writes: &[StateWrite],
    as_of: DateTime<Utc>,
) -> DomainResult<Vec<Uuid>> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let now = super::now();
    let columns = write_columns();
    let types: Vec<&str> = columns.iter().map(|(_, pg_type)| *pg_type).collect();
    let (rows, values) = super::values::relation(
        backend,
        &types,
        writes.iter().map(|write| row_values(write, as_of, now)),
        1,
    )?;
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let assignments: Vec<String> = names
        .iter()
        .skip(2)
        .map(|name| format!("{name} = v.{name}"))
        .collect();
    let sql = format!(
        "WITH v ({names}) AS ({rows})
         UPDATE customer SET {assignments}, revision = customer.revision + 1
         FROM v WHERE customer.id = v.id AND customer.revision = v.expected_revision
         RETURNING customer.id",
        names = names.join(", "),
        assignments = assignments.join(", "),
    );
    let written = db.query_all_raw(raw(backend, &sql, values)).await?;
    written
        .iter()
        .map(|row| Ok(row.try_get_by_index::<Uuid>(0)?))
        .collect()
}

/// A customer whose stage a new churn model may change: one with repeat purchases (the
/// model gives everyone else a pAlive of 1).
#[derive(Debug, Clone)]
pub struct StageCandidate {
    pub id: Uuid,
    pub revision: i64,
    pub stage: LifecycleStage,
    pub lifetime_purchase_count: i64,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub history: Option<History>,
}

/// Streams the customers with repeat purchases, with what their stage depends on.
pub async fn stage_candidates<'a, C>(
    db: &'a C,
) -> DomainResult<impl Stream<Item = DomainResult<StageCandidate>> + Send + 'a>
where
    C: StreamTrait + ConnectionTrait,
{
    use futures_util::StreamExt;
    let sql = "SELECT id, revision, lifecycle_stage, lifetime_purchase_count, last_purchase_at,
            repeat_purchase_days, first_purchase_day, last_purchase_day, repeat_spend_e4
        FROM customer WHERE repeat_purchase_days > 0 AND erased_at IS NULL \
        AND merged_into_id IS NULL";
    let backend = ConnectionTrait::get_database_backend(db);
    let rows = db.stream_raw(raw(backend, sql, Vec::new())).await?;
    Ok(rows.map(|row| {
        let row = row?;
        Ok(StageCandidate {
            id: row.try_get("", "id")?,
            revision: row.try_get("", "revision")?,
            stage: row.try_get("", "lifecycle_stage")?,
            lifetime_purchase_count: row.try_get::<i32>("", "lifetime_purchase_count")?.into(),
            last_purchase_at: row.try_get("", "last_purchase_at")?,
            history: stored_history(&row)?,
        })
    }))
}

/// Writes new lifecycle stages, each only if its row is still at the revision read;
/// returns the ids written.
pub async fn write_stages(
    db: &impl ConnectionTrait,
    stages: &[(Uuid, i64, LifecycleStage)],
) -> DomainResult<Vec<Uuid>> {
    if stages.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let (rows, stage_values) = super::values::relation(
        backend,
        &["uuid", "bigint", "text"],
        stages.iter().map(|(id, revision, stage)| {
            vec![
                (*id).into(),
                (*revision).into(),
                stage.as_str().to_owned().into(),
            ]
        }),
        2,
    )?;
    let mut values: Vec<Value> = vec![super::now().into()];
    values.extend(stage_values);
    let sql = format!(
        "WITH v (id, expected_revision, lifecycle_stage) AS ({rows})
         UPDATE customer SET lifecycle_stage = v.lifecycle_stage,
            revision = customer.revision + 1, updated_at = $1
         FROM v WHERE customer.id = v.id AND customer.revision = v.expected_revision
         RETURNING customer.id"
    );
    let rows = db.query_all_raw(raw(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}
