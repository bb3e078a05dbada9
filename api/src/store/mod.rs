//! Data access: the connection pool, transactions, and sea-orm queries, one module per
//! aggregate. Functions take `&impl ConnectionTrait` so they compose inside a transaction.

pub mod campaigns;
pub mod customers;
pub mod demo;
pub mod evaluation_runs;
pub mod evaluation_scan;
pub mod idempotency;
pub mod import;
pub mod interactions;
pub mod leases;
pub mod markers;
pub mod merges;
pub mod metrics;
pub mod outbox;
pub mod paging;
pub mod pending_points;
pub mod persisted;
pub mod points;
pub mod profiles;
pub mod program;
pub mod program_snapshot;
pub mod referrals;
pub mod rewards;
pub mod segment_sql;
pub mod segments;
mod sqlite_math;
pub mod tier_changes;
pub mod tiers;
pub mod transfers;
pub mod values;
pub mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use migration::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::Mutex;

use crate::domain::DomainResult;

/// A unit of work run inside one transaction.
pub type TxWork<'c, T> = Pin<Box<dyn Future<Output = DomainResult<T>> + Send + 'c>>;

/// The database: a pool, plus what it takes to write safely on either backend.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite allows one writer at a time. Queueing writers here, inside the one process
    /// that owns the file, means they wait their turn instead of failing with "database is
    /// locked"; `BEGIN IMMEDIATE` and the busy timeout cover other processes (the CLI).
    /// Postgres needs no such lock: row locks and constraints decide there.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    statements: Arc<AtomicU64>,
    /// Counts the commits of `write`: wakes SQLite's outbox consumers, which have no
    /// `NOTIFY` to wait for. A watch, so that each consumer sees every change, however
    /// many there are and whenever it next looks.
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// This process's snapshot of the program, shared by its requests and jobs.
    programs: Arc<program_snapshot::Snapshots>,
    /// The pool the periodic jobs and the webhook dispatcher share (`jobs`), made on
    /// first use.
    jobs: Arc<tokio::sync::OnceCell<DatabaseConnection>>,
    url: String,
}

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://path`), creating a SQLite file
    /// when it does not exist.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30));
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            options.max_connections(8).map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
            });
            options.map_sqlx_sqlite_pool_opts(sqlite_math::on_connect);
        } else {
            options.max_connections(32).min_connections(1);
        }
        let mut conn = Database::connect(options)
            .await
            .with_context(|| format!("cannot connect to the database at {}", redact(url)))?;
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let system = if sqlite { "sqlite" } else { "postgresql" };
        conn.set_metric_callback(move |info| {
            counter.fetch_add(1, Ordering::Relaxed);
            if crate::telemetry::enabled() {
                crate::telemetry::record_statement(
                    &info.statement.sql,
                    system,
                    info.elapsed,
                    info.failed,
                );
            }
        });
        Ok(Self {
            conn,
            sqlite_writer: sqlite.then(|| Arc::new(Mutex::new(()))),
            statements,
            commits: Arc::new(tokio::sync::watch::Sender::new(0)),
            programs: Arc::default(),
            jobs: Arc::default(),
            url: url.to_owned(),
        })
    }

    /// A small pool of its own on the same database, for a background reader that holds
    /// a connection of its own (an outbox consumer's or the program follower's `LISTEN`)
    /// and should neither take connections from requests nor count in `statement_count`.
    pub async fn background(&self) -> anyhow::Result<DatabaseConnection> {
        self.pool_apart(2).await
    }

    /// The one pool, apart from the requests', that the periodic jobs and the webhook
    /// dispatcher share: a replica holds a few connections for them all, not a pool
    /// each.
    pub async fn jobs(&self) -> anyhow::Result<DatabaseConnection> {
        self.jobs
            .get_or_try_init(|| self.pool_apart(4))
            .await
            .cloned()
    }

    async fn pool_apart(&self, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
        let mut options = ConnectOptions::new(self.url.clone());
        options
            .sqlx_logging(false)
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10));
        if self.sqlite_writer.is_some() {
            options.map_sqlx_sqlite_opts(|opts| opts.busy_timeout(Duration::from_secs(30)));
            options.map_sqlx_sqlite_pool_opts(sqlite_math::on_connect);
        }
        Database::connect(options)
            .await
            .with_context(|| format!("cannot connect to the database at {}", redact(&self.url)))
    }

    /// Changes after each committed `write`: a receiver's `changed()` returns once per
    /// batch of commits since it last looked.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The program's rules, cached for this process (see `program_snapshot`).
    pub fn programs(&self) -> &Arc<program_snapshot::Snapshots> {
        &self.programs
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// How many SQL statements this pool has run; tests use it to catch N+1 queries.
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        migration::Migrator::up(&self.conn, None)
            .await
            .context("applying migrations")
    }

    /// On SQLite, waits for this process's turn to write and holds it until dropped;
    /// `None` on Postgres. For writers that cannot go through `write` (bulk import).
    pub async fn writer_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
    }

    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Runs `work` in one transaction: committed when it returns `Ok`, rolled back
    /// otherwise, so that no mutation ever leaves half a write.
    pub async fn write<T, F>(&self, work: F) -> DomainResult<T>
    where
        T: Send,
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> TxWork<'c, T> + Send,
    {
        let _turn = match &self.sqlite_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let txn = self
            .conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        match work(&txn).await {
            Ok(value) => {
                txn.commit().await?;
                self.commits
                    .send_modify(|count| *count = count.wrapping_add(1));
                Ok(value)
            }
            Err(error) => {
                txn.rollback().await?;
                Err(error)
            }
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (address.find("://"), address.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &address[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => {
                    format!("{}{}:***{}", &address[..scheme + 3], user, &address[at..])
                }
                None => address.to_owned(),
            }
        }
        _ => address.to_owned(),
    };
    // A password can also travel as a parameter (`?password=…`, `?sslpassword=…`).
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// Whether a database error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A hand-written statement, for what sea-query cannot say well (window functions, CTEs,
/// UPDATE … FROM a batch). It is written with Postgres placeholders (`$1`); SQLite reads
/// the same numbered placeholders as `?1`.
pub fn raw(
    backend: sea_orm::DbBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

/// Now, truncated to microseconds: what both databases store, so that a timestamp read
/// back equals the one written (cursors depend on it).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact("sqlite://./tierwise.db"),
            "sqlite://./tierwise.db"
        );
        assert_eq!(
            super::redact("postgres://u@h/db?sslmode=require&password=secret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            super::redact("postgres://u:p@h/db?sslpassword=x"),
            "postgres://u:***@h/db?sslpassword=***"
        );
    }
}
