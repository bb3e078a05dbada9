//! Bulk import: validated rows go to temporary staging tables (Postgres: `COPY`; SQLite:
//! multi-row `INSERT`s), then set-based statements check them against the database and
//! move them into place, all in one transaction.
//!
//! Postgres streams `COPY` on a connection sea-orm does not expose inside its own
//! transactions, so an import session there is a sqlx transaction; on SQLite it is a
//! sea-orm one. Everything after the load is the same SQL on both.

use sea_orm::sqlx::{self, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait, Value,
};

use super::Db;
use crate::domain::{DomainError, DomainResult};

/// One staged row, in the order of its table's columns.
pub type Row = Vec<Value>;

/// A staging table: its name and its columns with their SQL types. The type names read
/// the same on both databases (SQLite takes any name and stores what sea-orm binds).
pub struct Staging {
    pub table: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
}

impl Staging {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub const CUSTOMERS: Staging = Staging {
    table: "import_customer",
    columns: &[
        ("line", "bigint"),
        ("id", "uuid"),
        ("external_ref", "text"),
        ("name", "text"),
        ("email", "text"),
        ("phone", "text"),
        ("kind", "text"),
        ("industry", "text"),
        ("region", "text"),
        ("birthday", "date"),
        ("attributes", "jsonb"),
        ("referral_code", "text"),
        ("referred_by", "text"),
        ("referral_id", "uuid"),
        ("tier_change_id", "uuid"),
        ("created_at", "timestamptz"),
    ],
};

pub const CUSTOMER_TAGS: Staging = Staging {
    table: "import_customer_tag",
    columns: &[("customer_id", "uuid"), ("tag", "text")],
};

pub const INTERACTIONS: Staging = Staging {
    table: "import_interaction",
    columns: &[
        ("line", "bigint"),
        ("id", "uuid"),
        ("customer_ref", "text"),
        ("kind", "text"),
        ("occurred_at", "timestamptz"),
        ("amount_e4", "bigint"),
        ("currency", "text"),
        ("channel", "text"),
        ("rating", "integer"),
        ("note", "text"),
        ("order_ref", "text"),
    ],
};

pub const POINTS: Staging = Staging {
    table: "import_points",
    columns: &[
        ("line", "bigint"),
        ("id", "uuid"),
        ("customer_ref", "text"),
        ("delta", "bigint"),
        ("reason", "text"),
        ("expires_at", "timestamptz"),
        ("created_at", "timestamptz"),
    ],
};

/// Every staging table, in the order they are created.
pub const ALL: [&Staging; 4] = [&CUSTOMERS, &CUSTOMER_TAGS, &INTERACTIONS, &POINTS];

/// Rows per multi-row `INSERT` on SQLite: 16 columns × 500 stays far below its limit of
/// 32,766 bound values.
const SQLITE_ROWS_PER_INSERT: usize = 500;

/// An import's transaction.
pub struct Session {
    connection: Connection,
    /// When the import started, as an SQL literal both databases store as sea-orm would
    /// bind it: statements say `:now` for it.
    now: String,
}

enum Connection {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite {
        txn: DatabaseTransaction,
        /// This process's turn to write (see `Db::write`).
        _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    },
}

fn internal(error: impl Into<anyhow::Error>) -> DomainError {
    DomainError::Internal(error.into())
}

impl Session {
    pub async fn begin(db: &Db, now: chrono::DateTime<chrono::Utc>) -> DomainResult<Self> {
        let now = format!(
            "'{}'",
            now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        );
        let connection = match db.conn().get_database_backend() {
            DbBackend::Postgres => {
                let pool = db.conn().get_postgres_connection_pool();
                Connection::Postgres(pool.begin().await.map_err(internal)?)
            }
            _ => {
                let turn = db.writer_turn().await;
                let txn = db
                    .conn()
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..Default::default()
                    })
                    .await?;
                Connection::Sqlite { txn, _turn: turn }
            }
        };
        Ok(Self { connection, now })
    }

    /// Creates `staging` for this transaction (dropped again by `finish`).
    pub async fn create(&mut self, staging: &Staging) -> DomainResult<()> {
        let columns = staging
            .columns
            .iter()
            .map(|(name, kind)| format!("{name} {kind}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.execute(&format!("CREATE TEMP TABLE {} ({columns})", staging.table))
            .await?;
        Ok(())
    }

    /// Appends `rows` to `staging`.
    pub async fn load(&mut self, staging: &Staging, rows: &[Row]) -> DomainResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.connection {
            Connection::Postgres(txn) => {
                let data: String = rows.iter().map(copy_line).collect();
                let statement = format!(
                    "COPY {} ({}) FROM STDIN WITH (FORMAT csv)",
                    staging.table,
                    staging.column_list()
                );
                let mut copy = txn.copy_in_raw(&statement).await.map_err(internal)?;
                if let Err(error) = copy.send(data.into_bytes()).await {
                    let _ = copy.abort(error.to_string()).await;
                    return Err(internal(error));
                }
                copy.finish().await.map_err(internal)?;
            }
            Connection::Sqlite { txn, .. } => {
                let placeholders = format!("({})", vec!["?"; staging.columns.len()].join(", "));
                for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
                    let sql = format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        staging.table,
                        staging.column_list(),
                        vec![placeholders.as_str(); chunk.len()].join(", ")
                    );
                    let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
                    txn.execute_raw(Statement::from_sql_and_values(
                        DbBackend::Sqlite,
                        sql,
                        values,
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Gives the planner the staged rows' statistics: without them it takes the staging
    /// tables for empty and joins them by nested loops, quadratic in the file's size.
    pub async fn analyze(&mut self, staging: &Staging) -> DomainResult<()> {
        self.execute(&format!("ANALYZE {}", staging.table)).await?;
        Ok(())
    }

    /// Runs a statement without parameters but `:now`; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str) -> DomainResult<u64> {
        let sql = sql.replace(":now", &self.now);
        match &mut self.connection {
            Connection::Postgres(txn) => Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut **txn)
                .await
                .map_err(internal)?
                .rows_affected()),
            Connection::Sqlite { txn, .. } => {
                Ok(txn.execute_unprepared(&sql).await?.rows_affected())
            }
        }
    }

    /// Runs a query whose rows are (line, detail): the staged rows a check found at fault.
    pub async fn problems(&mut self, sql: &str) -> DomainResult<Vec<(i64, String)>> {
        match &mut self.connection {
            Connection::Postgres(txn) => {
                sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut **txn)
                    .await
                    .map_err(internal)
            }
            Connection::Sqlite { txn, .. } => {
                let rows = txn
                    .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get_by_index::<i64>(0)?,
                            row.try_get_by_index::<String>(1)?,
                        ))
                    })
                    .collect::<Result<_, sea_orm::DbErr>>()
                    .map_err(DomainError::from)
            }
        }
    }

    /// Drops the staging tables and commits.
    pub async fn finish(mut self) -> DomainResult<()> {
        for staging in ALL {
            self.execute(&format!("DROP TABLE {}", staging.table))
                .await?;
        }
        match self.connection {
            Connection::Postgres(txn) => txn.commit().await.map_err(internal),
            Connection::Sqlite { txn, .. } => Ok(txn.commit().await?),
        }
    }
}

/// `row` as one line of `COPY … (FORMAT csv)`: text always quoted (so that an empty
/// string stays one), NULL as nothing.
pub fn copy_line(row: &Row) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(128);
    let out = &mut line;
    for (index, value) in row.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = match value {
            Value::String(Some(text)) => quoted(text, out),
            Value::Json(Some(json)) => quoted(&json.to_string(), out),
            Value::BigInt(Some(number)) => write!(out, "{number}"),
            Value::Int(Some(number)) => write!(out, "{number}"),
            Value::Uuid(Some(id)) => write!(out, "{id}"),
            Value::ChronoDateTimeUtc(Some(at)) => write!(out, "{}", at.to_rfc3339()),
            Value::ChronoDate(Some(day)) => write!(out, "{day}"),
            Value::String(None)
            | Value::Json(None)
            | Value::BigInt(None)
            | Value::Int(None)
            | Value::Uuid(None)
            | Value::ChronoDateTimeUtc(None)
            | Value::ChronoDate(None) => Ok(()),
            // Rows are built by `service::import` from the staging columns' types; another
            // type here is a new column without its encoding, not bad input.
            other => unreachable!("no staging column holds {other:?}"),
        };
    }
    line.push('\n');
    line
}

fn quoted(text: &str, out: &mut String) -> std::fmt::Result {
    out.push('"');
    out.push_str(&text.replace('"', "\"\""));
    out.push('"');
    Ok(())
}

/// The checks and moves, in the order an import runs them. Each `problems` query returns
/// at most a few rows: enough to fix the file, not a flood.
pub mod sql {
    pub const CUSTOMER_EXISTS: &str = "
        SELECT s.line, s.external_ref FROM import_customer s
        WHERE EXISTS (SELECT 1 FROM customer c WHERE c.external_ref = s.external_ref)
        ORDER BY s.line LIMIT 5";

    pub const REFERRAL_CODE_TAKEN: &str = "
        SELECT s.line, s.referral_code FROM import_customer s
        WHERE EXISTS (SELECT 1 FROM customer c WHERE c.referral_code = s.referral_code)
        ORDER BY s.line";

    pub const UNKNOWN_REFERRER: &str = "
        SELECT s.line, s.referred_by FROM import_customer s
        WHERE s.referred_by IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM import_customer r WHERE r.external_ref = s.referred_by)
          AND NOT EXISTS (SELECT 1 FROM customer c
                          WHERE c.external_ref = s.referred_by AND c.erased_at IS NULL)
        ORDER BY s.line LIMIT 5";

    /// The sum of each customer's staged points.
    const STAGED_BALANCES: &str =
        "SELECT customer_ref, SUM(delta) AS delta FROM import_points GROUP BY customer_ref";

    /// New customers start as `createCustomer` makes them: lowest tier, PROSPECT, no
    /// metrics until an evaluation run reads their history. Their referrer (stored, or
    /// staged beside them: foreign keys are checked at the end of the statement) and
    /// their staged points are set here, rather than by updating a million fresh rows.
    pub fn insert_customers() -> String {
        format!(
            "INSERT INTO customer (id, external_ref, name, email, phone, kind, industry, region,
            birthday, attributes, lifecycle_stage, tier_id, referral_code, referred_by_id,
            points_balance, metrics_as_of, metrics_written_at, created_at, updated_at)
        SELECT s.id, s.external_ref, s.name, s.email, s.phone, s.kind, s.industry, s.region,
            s.birthday, s.attributes, 'PROSPECT', (SELECT id FROM tier ORDER BY rank LIMIT 1),
            s.referral_code, COALESCE(stored.id, staged.id), COALESCE(p.delta, 0),
            s.created_at, s.created_at, s.created_at, s.created_at
        FROM import_customer s
        LEFT JOIN customer stored ON stored.external_ref = s.referred_by
        LEFT JOIN import_customer staged ON staged.external_ref = s.referred_by
        LEFT JOIN ({STAGED_BALANCES}) p ON p.customer_ref = s.external_ref"
        )
    }

    pub const INSERT_TAGS: &str = "
        INSERT INTO customer_tag (customer_id, tag)
        SELECT customer_id, tag FROM import_customer_tag";

    pub const INSERT_CREATED_TIER_CHANGES: &str = "
        INSERT INTO tier_change (id, customer_id, from_tier_id, to_tier_id, reason, score,
            note, changed_at)
        SELECT s.tier_change_id, s.id, NULL, (SELECT id FROM tier ORDER BY rank LIMIT 1),
            'CREATED', 0, 'imported', s.created_at
        FROM import_customer s";

    /// Referrals start PENDING; `SETTLE_IMPORTED_REFERRALS` closes those whose referee's
    /// first purchase is in the imported history.
    pub const INSERT_REFERRALS: &str = "
        INSERT INTO referral (id, referrer_id, referee_id, code, status, referrer_points,
            referee_points, created_at)
        SELECT s.referral_id, r.id, s.id, r.referral_code, 'PENDING', 0, 0, s.created_at
        FROM import_customer s JOIN customer c ON c.id = s.id
        JOIN customer r ON r.id = c.referred_by_id";

    /// Lines of a staged `table` whose `customer_ref` is no stored (unerased) customer and
    /// no customer of this import.
    pub fn unknown_customers_in(table: &str) -> String {
        format!(
            "SELECT s.line, s.customer_ref FROM {table} s
             WHERE NOT EXISTS (SELECT 1 FROM customer c
                               WHERE c.external_ref = s.customer_ref AND c.erased_at IS NULL)
               AND NOT EXISTS (SELECT 1 FROM import_customer n
                               WHERE n.external_ref = s.customer_ref)
             ORDER BY s.line LIMIT 5"
        )
    }

    pub const INSERT_INTERACTIONS: &str = "
        INSERT INTO interaction (id, customer_id, kind, occurred_at, amount_e4, currency,
            channel, rating, note, order_ref, recorded_by, recorded_at)
        SELECT s.id, c.id, s.kind, s.occurred_at, s.amount_e4, s.currency, s.channel,
            s.rating, s.note, s.order_ref, 'import', :now
        FROM import_interaction s JOIN customer c ON c.external_ref = s.customer_ref";

    /// The old system paid the bonus of a referee who already bought there; its points
    /// arrive with the balances. Settling the referral keeps the first live purchase
    /// from paying it again.
    pub const SETTLE_IMPORTED_REFERRALS: &str = "
        UPDATE referral SET status = 'REWARDED', rewarded_at = :now
        WHERE status = 'PENDING'
          AND referee_id IN (SELECT c.id FROM import_interaction s
                             JOIN customer c ON c.external_ref = s.customer_ref
                             WHERE s.kind = 'PURCHASE')";

    /// Entries apply in time order (then file order) on top of the balance before the
    /// import: a stored customer's, or 0 for a new one (whose row already holds the sum).
    /// Checked before any customer is added, so new customers are found in staging.
    const RUNNING_BALANCES: &str = "
        SELECT s.line, s.id, COALESCE(c.id, n.id) AS customer_id, s.delta, s.reason,
            s.expires_at, s.created_at,
            CASE WHEN n.id IS NULL THEN c.points_balance ELSE 0 END + SUM(s.delta) OVER (
                PARTITION BY s.customer_ref ORDER BY s.created_at, s.line
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS balance_after
        FROM import_points s
        LEFT JOIN import_customer n ON n.external_ref = s.customer_ref
        LEFT JOIN customer c ON c.external_ref = s.customer_ref AND n.id IS NULL";

    pub fn negative_balances() -> String {
        format!(
            "SELECT line, CAST(balance_after AS TEXT) FROM ({RUNNING_BALANCES}) b
             WHERE balance_after < 0 ORDER BY line LIMIT 5"
        )
    }

    pub fn insert_points_entries() -> String {
        format!(
            "INSERT INTO points_entry (id, customer_id, delta, balance_after, kind, reason,
                 expires_at, created_by, created_at)
             SELECT id, customer_id, delta, balance_after, 'ADJUST', reason, expires_at,
                 'import', created_at
             FROM ({RUNNING_BALANCES}) b"
        )
    }

    /// Stored customers' balances (new ones got theirs when inserted).
    pub fn update_stored_balances() -> String {
        format!(
            "UPDATE customer SET points_balance = points_balance + p.delta, revision = revision + 1
        FROM ({STAGED_BALANCES}) p
        WHERE customer.external_ref = p.customer_ref
          AND NOT EXISTS (SELECT 1 FROM import_customer n WHERE n.id = customer.id)"
        )
    }
}
