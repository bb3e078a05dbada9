//! The sums a customer's metrics are made of, computed in SQL from its interactions.
//! One query text (`aggregate_ctes`) serves evaluation runs (everyone) and recording
//! (each input of a batch, `at_points`).

use chrono::{DateTime, Utc};
use entity::interaction;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult};

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

/// Whose sums `aggregate_ctes` computes, and as of when. Interactions are `i`; the key
/// the sums are grouped by is named `subject` in every CTE.
pub struct Scope<'a> {
    /// The FROM clause, naming interactions `i`.
    pub from: &'a str,
    pub key: &'a str,
    /// The instant interactions count up to, and the start of the scoring window.
    pub as_of: &'a str,
    pub window_start: &'a str,
}

impl Scope<'static> {
    /// Every customer's sums as of `$1`, with the window starting at `$2`.
    pub fn customers() -> Self {
        Self {
            from: "interaction i",
            key: "i.customer_id",
            as_of: "$1",
            window_start: "$2",
        }
    }
}

/// Common table expressions `agg` (sums per subject), `nps` (the latest survey in the
/// window) and `hist` (the purchase history the churn models read: repeat purchase
/// days, first and last purchase day, and the repeat days' spend), over the interactions
/// of `scope` that occurred at or before its as-of instant.
pub fn aggregate_ctes(backend: DbBackend, scope: &Scope<'_>) -> String {
    let day = day_number_sql(backend, "i.occurred_at");
    let Scope {
        from,
        key,
        as_of,
        window_start: start,
    } = scope;
    format!(
        "agg AS (
            SELECT {key} AS subject,
                MIN(CASE WHEN i.kind = 'PURCHASE' THEN i.occurred_at END) AS first_purchase_at,
                MAX(CASE WHEN i.kind = 'PURCHASE' THEN i.occurred_at END) AS last_purchase_at,
                CAST(SUM(CASE WHEN i.kind = 'PURCHASE' THEN 1 ELSE 0 END) AS BIGINT)
                    AS lifetime_purchases,
                {lifetime_spend} AS lifetime_spend,
                CAST(SUM(CASE WHEN i.kind = 'PURCHASE' AND i.occurred_at >= {start} THEN 1 ELSE 0 END)
                    AS BIGINT) AS purchases,
                {net_spend} AS net_spend,
                {purchase_sum} AS purchase_sum,
                CAST(SUM(CASE WHEN i.kind IN ({engagement}) AND i.occurred_at >= {start} THEN 1
                              ELSE 0 END) AS BIGINT) AS engagements,
                {receivable} AS receivable
            FROM {from}
            WHERE i.occurred_at <= {as_of}
            GROUP BY {key}
        ),
        nps AS (
            SELECT subject, rating FROM (
                SELECT {key} AS subject, i.rating, ROW_NUMBER() OVER (
                    PARTITION BY {key} ORDER BY i.occurred_at DESC, i.id DESC) AS position
                FROM {from}
                WHERE i.kind = 'SURVEY' AND i.occurred_at >= {start} AND i.occurred_at <= {as_of}
            ) surveys WHERE position = 1
        ),
        pday AS (
            SELECT {key} AS subject, {day} AS day, {day_spend} AS spend
            FROM {from}
            WHERE i.kind = 'PURCHASE' AND i.occurred_at <= {as_of}
            GROUP BY {key}, {day}
        ),
        pday_ranked AS (
            SELECT subject, day, spend,
                ROW_NUMBER() OVER (PARTITION BY subject ORDER BY day) AS nth
            FROM pday
        ),
        hist AS (
            SELECT subject,
                CAST(COUNT(*) - 1 AS BIGINT) AS repeat_days,
                CAST(MIN(day) AS BIGINT) AS first_day,
                CAST(MAX(day) AS BIGINT) AS last_day,
                {repeat_spend} AS repeat_spend
            FROM pday_ranked
            GROUP BY subject
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
            &format!(
                "CASE WHEN i.occurred_at < {start} THEN 0 WHEN i.kind = 'PURCHASE' THEN i.amount_e4 \
                 WHEN i.kind = 'REFUND' THEN -i.amount_e4 ELSE 0 END"
            ),
            None,
        ),
        purchase_sum = money_sum(
            backend,
            &format!(
                "CASE WHEN i.kind = 'PURCHASE' AND i.occurred_at >= {start} THEN i.amount_e4 ELSE 0 END"
            ),
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

/// An interaction a batch is about to record, at whose point its customer's sums are
/// wanted: as of `as_of`, over its customer's stored interactions and the batch's up to
/// and including this one.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    pub seq: i64,
    pub as_of: DateTime<Utc>,
    pub interaction: &'a interaction::Model,
}

/// Each point's sums, in one statement, read before the batch's interactions are
/// stored: a point sees its customer's stored interactions, and the batch's that come
/// no later than it. Each point thus sees what recording one interaction at a time would
/// have seen. A customer named n times costs n reads of its interactions, as n single
/// recordings would.
pub async fn at_points(
    db: &impl ConnectionTrait,
    points: &[Point<'_>],
    window_days: i32,
) -> DomainResult<std::collections::HashMap<i64, Aggregates>> {
    if points.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let backend = db.get_database_backend();
    let (rows, values) = super::values::relation(
        backend,
        &[
            "bigint",
            "timestamptz",
            "timestamptz",
            "uuid",
            "uuid",
            "text",
            "timestamptz",
            "bigint",
            "integer",
        ],
        points.iter().map(|p| {
            let i = p.interaction;
            vec![
                p.seq.into(),
                p.as_of.into(),
                window_start(p.as_of, window_days).into(),
                i.id.into(),
                i.customer_id.into(),
                i.kind.as_str().to_owned().into(),
                i.occurred_at.into(),
                i.amount_e4.into(),
                i.rating.into(),
            ]
        }),
        1,
    )?;
    // Each point's interactions, gathered once for the aggregates to read.
    let scoped = "scoped AS MATERIALIZED (
            SELECT p.seq AS subject, p.as_of, p.window_start,
                i.id, i.kind, i.occurred_at, i.amount_e4, i.rating
            FROM batch p JOIN interaction i
                ON i.customer_id = p.customer_id AND i.occurred_at <= p.as_of
            UNION ALL
            SELECT p.seq, p.as_of, p.window_start,
                b.id, b.kind, b.occurred_at, b.amount_e4, b.rating
            FROM batch p JOIN batch b
                ON b.customer_id = p.customer_id AND b.seq <= p.seq AND b.occurred_at <= p.as_of
        )";
    let with = format!(
        "batch (seq, as_of, window_start, id, customer_id, kind, occurred_at, amount_e4,
            rating) AS ({rows}),
        {scoped}"
    );
    sums_by_subject(db, &with, values).await
}

/// The sums of the interactions a CTE `scoped` (declared last in `with`) gathers, one
/// row per `subject`, each with its own `as_of` and `window_start`: one statement.
async fn sums_by_subject(
    db: &impl ConnectionTrait,
    with: &str,
    values: Vec<sea_orm::Value>,
) -> DomainResult<std::collections::HashMap<i64, Aggregates>> {
    let backend = db.get_database_backend();
    let scope = Scope {
        from: "scoped i",
        key: "i.subject",
        as_of: "i.as_of",
        window_start: "i.window_start",
    };
    let sql = format!(
        "WITH {with}, {aggregates}
        SELECT agg.*, nps.rating AS nps, hist.repeat_days, hist.first_day, hist.last_day,
            hist.repeat_spend
        FROM agg
        LEFT JOIN nps ON nps.subject = agg.subject
        LEFT JOIN hist ON hist.subject = agg.subject",
        aggregates = aggregate_ctes(backend, &scope),
    );
    let rows = db.query_all_raw(raw(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<i64>("", "subject")?,
                read_aggregates(row, "")?,
            ))
        })
        .collect()
}

/// Sums over stored interactions for each wanted (subject, customer, instant), in one
/// statement: a page of customers' tier progress reads its sums as of now and as of
/// each marked customer's end of grace at once.
pub async fn at_instants(
    db: &impl ConnectionTrait,
    wanted: &[(i64, uuid::Uuid, DateTime<Utc>)],
    window_days: i32,
) -> DomainResult<std::collections::HashMap<i64, Aggregates>> {
    if wanted.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let backend = db.get_database_backend();
    let (rows, values) = super::values::relation(
        backend,
        &["bigint", "uuid", "timestamptz", "timestamptz"],
        wanted.iter().map(|(subject, customer_id, as_of)| {
            vec![
                (*subject).into(),
                (*customer_id).into(),
                (*as_of).into(),
                window_start(*as_of, window_days).into(),
            ]
        }),
        1,
    )?;
    let scoped = "scoped AS MATERIALIZED (
            SELECT w.subject, w.as_of, w.window_start,
                i.id, i.kind, i.occurred_at, i.amount_e4, i.rating
            FROM wanted w JOIN interaction i
                ON i.customer_id = w.customer_id AND i.occurred_at <= w.as_of
        )";
    let with = format!("wanted (subject, customer_id, as_of, window_start) AS ({rows}), {scoped}");
    let mut found = sums_by_subject(db, &with, values).await?;
    // A customer without interactions up to the instant has no row: all sums are 0.
    for (subject, _, _) in wanted {
        found.entry(*subject).or_default();
    }
    Ok(found)
}

/// One customer's sums as of `as_of` over its stored interactions, in one statement
/// (a merge recomputes its survivor's from the interactions it now holds).
pub async fn of_customer(
    db: &impl ConnectionTrait,
    customer_id: uuid::Uuid,
    as_of: DateTime<Utc>,
    window_days: i32,
) -> DomainResult<Aggregates> {
    let backend = db.get_database_backend();
    let scope = Scope {
        from: "(SELECT * FROM interaction WHERE customer_id = $3) i",
        key: "i.customer_id",
        as_of: "$1",
        window_start: "$2",
    };
    let sql = format!(
        "WITH {aggregates}
        SELECT agg.*, nps.rating AS nps, hist.repeat_days, hist.first_day, hist.last_day,
            hist.repeat_spend
        FROM agg
        LEFT JOIN nps ON nps.subject = agg.subject
        LEFT JOIN hist ON hist.subject = agg.subject",
        aggregates = aggregate_ctes(backend, &scope),
    );
    let values = vec![
        as_of.into(),
        window_start(as_of, window_days).into(),
        customer_id.into(),
    ];
    match db.query_one_raw(raw(backend, &sql, values)).await? {
        Some(row) => read_aggregates(&row, ""),
        None => Ok(Aggregates::default()),
    }
}
