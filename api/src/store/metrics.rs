//! The sums a customer's metrics are made of, computed in SQL from its interactions.
//! One query text serves the write path (one customer) and evaluation runs (everyone).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};
use uuid::Uuid;

use super::raw;
use crate::domain::DomainResult;
use crate::domain::analytics::churn::History;
use crate::domain::metrics::{Aggregates, window_start};

/// `SUM(expr)` of money (ten-thousandths), or `SUM(expr) OVER (window)`, as a BIGINT that
/// cannot overflow: Postgres sums bigints exactly as numeric and the result is held to
/// the BIGINT range; SQLite's `TOTAL` sums in a double (exact below 2^53, which is 900
/// billion in the base currency per sum) and `CAST` holds it to the range. `SUM` on
/// SQLite would raise "integer overflow" and fail the whole statement: an amount stored
/// before amounts were bounded then stopped every evaluation run. A sum at the bounds is
/// out of any valid range, and the run skips its customer (`evaluation_scan::within_bounds`).
pub fn money_sum(backend: DbBackend, expr: &str, window: Option<&str>) -> String {
    let over = window.map(|w| format!(" OVER ({w})")).unwrap_or_default();
    match backend {
        DbBackend::Postgres => format!(
            "CAST(LEAST(GREATEST(COALESCE(SUM({expr}){over}, 0), -9223372036854775807), \
             9223372036854775807) AS BIGINT)"
        ),
        _ => format!("CAST(TOTAL({expr}){over} AS INTEGER)"),
    }
}

/// Common table expressions `agg` (sums per customer), `nps` (the latest survey in the
/// window) and `hist` (the purchase history the churn models read: repeat purchase
/// days, first and last purchase day, and the repeat days' spend), over interactions
/// that occurred at or before `$1`, with the window starting at `$2`. `customer_filter`
/// narrows them to one customer (`$3`) when given.
pub fn aggregate_ctes(backend: DbBackend, customer_filter: &str) -> String {
    let day = day_number_sql(backend, "i.occurred_at");
    format!(
        "agg AS (
            SELECT i.customer_id,
                MIN(CASE WHEN i.kind = 'PURCHASE' THEN i.occurred_at END) AS first_purchase_at,
                MAX(CASE WHEN i.kind = 'PURCHASE' THEN i.occurred_at END) AS last_purchase_at,
                CAST(SUM(CASE WHEN i.kind = 'PURCHASE' THEN 1 ELSE 0 END) AS BIGINT)
                    AS lifetime_purchases,
                {lifetime_spend} AS lifetime_spend,
                CAST(SUM(CASE WHEN i.kind = 'PURCHASE' AND i.occurred_at >= $2 THEN 1 ELSE 0 END)
                    AS BIGINT) AS purchases,
                {net_spend} AS net_spend,
                {purchase_sum} AS purchase_sum,
                CAST(SUM(CASE WHEN i.kind IN ({engagement}) AND i.occurred_at >= $2 THEN 1
                              ELSE 0 END) AS BIGINT) AS engagements,
                {receivable} AS receivable
            FROM interaction i
            WHERE i.occurred_at <= $1{customer_filter}
            GROUP BY i.customer_id
        ),
        nps AS (
            SELECT customer_id, rating FROM (
                SELECT i.customer_id, i.rating, ROW_NUMBER() OVER (
                    PARTITION BY i.customer_id ORDER BY i.occurred_at DESC, i.id DESC) AS position
                FROM interaction i
                WHERE i.kind = 'SURVEY' AND i.occurred_at >= $2 AND i.occurred_at <= $1{customer_filter}
            ) surveys WHERE position = 1
        ),
        pday AS (
            SELECT i.customer_id, {day} AS day, {day_spend} AS spend
            FROM interaction i
            WHERE i.kind = 'PURCHASE' AND i.occurred_at <= $1{customer_filter}
            GROUP BY i.customer_id, {day}
        ),
        pday_ranked AS (
            SELECT customer_id, day, spend,
                ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY day) AS nth
            FROM pday
        ),
        hist AS (
            SELECT customer_id,
                CAST(COUNT(*) - 1 AS BIGINT) AS repeat_days,
                CAST(MIN(day) AS BIGINT) AS first_day,
                CAST(MAX(day) AS BIGINT) AS last_day,
                {repeat_spend} AS repeat_spend
            FROM pday_ranked
            GROUP BY customer_id
        )",
        engagement = engagement_kinds(),
        lifetime_spend = money_sum(
            backend,
            "CASE WHEN i.kind = 'PURCHASE' THEN i.amount_e4 \
             WHEN i.kind = 'REFUND' THEN -i.amount_e4 ELSE 0 END",
            None,
        ),
        net_spend = money_sum(
            backend,
            "CASE WHEN i.occurred_at < $2 THEN 0 WHEN i.kind = 'PURCHASE' THEN i.amount_e4 \
             WHEN i.kind = 'REFUND' THEN -i.amount_e4 ELSE 0 END",
            None,
        ),
        purchase_sum = money_sum(
            backend,
            "CASE WHEN i.kind = 'PURCHASE' AND i.occurred_at >= $2 THEN i.amount_e4 ELSE 0 END",
            None,
        ),
        receivable = money_sum(
            backend,
            "CASE WHEN i.kind = 'SHIPMENT' THEN i.amount_e4 \
             WHEN i.kind = 'PAYMENT' THEN -i.amount_e4 ELSE 0 END",
            None,
        ),
        day_spend = money_sum(backend, "i.amount_e4", None),
        repeat_spend = money_sum(backend, "CASE WHEN nth > 1 THEN spend ELSE 0 END", None),
    )
}

/// The UTC day of a timestamp column, counted from 1970-01-01, as an integer.
fn day_number_sql(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Sqlite => format!("CAST(julianday(date({column})) - 2440587.5 AS INTEGER)"),
        _ => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 86400) AS INTEGER)"),
    }
}

fn engagement_kinds() -> String {
    crate::domain::interaction::ENGAGEMENT_KINDS
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the `agg` and `nps` columns of a row (prefixed by `prefix`); absent sums are 0.
pub fn read_aggregates(row: &QueryResult, prefix: &str) -> DomainResult<Aggregates> {
    let get_i64 = |column: &str| -> DomainResult<i64> {
        Ok(row
            .try_get::<Option<i64>>("", &format!("{prefix}{column}"))?
            .unwrap_or(0))
    };
    let get_at = |column: &str| -> DomainResult<Option<DateTime<Utc>>> {
        Ok(row.try_get::<Option<DateTime<Utc>>>("", &format!("{prefix}{column}"))?)
    };
    Ok(Aggregates {
        first_purchase_at: get_at("first_purchase_at")?,
        last_purchase_at: get_at("last_purchase_at")?,
        lifetime_purchases: get_i64("lifetime_purchases")?,
        lifetime_spend_e4: get_i64("lifetime_spend")?,
        purchases: get_i64("purchases")?,
        net_spend_e4: get_i64("net_spend")?,
        purchase_sum_e4: get_i64("purchase_sum")?,
        engagements: get_i64("engagements")?,
        latest_nps: row.try_get::<Option<i32>>("", &format!("{prefix}nps"))?,
        receivable_e4: get_i64("receivable")?,
        history: History::stored(
            get_i64("repeat_days")? as i32,
            row.try_get::<Option<i64>>("", &format!("{prefix}first_day"))?
                .map(|d| d as i32),
            row.try_get::<Option<i64>>("", &format!("{prefix}last_day"))?
                .map(|d| d as i32),
            get_i64("repeat_spend")?,
        ),
    })
}

/// One customer's sums as of `as_of`: the write path's query, which reads only that
/// customer's interactions (through the `customer_id, occurred_at` index).
pub async fn of_customer(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    as_of: DateTime<Utc>,
    window_days: i32,
) -> DomainResult<Aggregates> {
    let sql = format!(
        "WITH {} SELECT agg.*, nps.rating AS nps, hist.repeat_days, hist.first_day,
            hist.last_day, hist.repeat_spend
        FROM agg
        LEFT JOIN nps ON nps.customer_id = agg.customer_id
        LEFT JOIN hist ON hist.customer_id = agg.customer_id",
        aggregate_ctes(db.get_database_backend(), " AND i.customer_id = $3")
    );
    let values: Vec<Value> = vec![
        as_of.into(),
        window_start(as_of, window_days).into(),
        customer_id.into(),
    ];
    let row = db
        .query_one_raw(raw(db.get_database_backend(), &sql, values))
        .await?;
    match row {
        Some(row) => read_aggregates(&row, ""),
        None => Ok(Aggregates::default()),
    }
}
