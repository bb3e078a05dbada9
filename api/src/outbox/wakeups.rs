//! When a background reader should look again: on Postgres when its channel is notified
//! (or the listening connection was lost and came back: whatever was notified meanwhile
//! is unknown), on SQLite when this process committed; and on both at every poll, in case
//! a wake-up was lost or another process wrote.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgListener;
use tokio::time::{Interval, MissedTickBehavior};

/// How often to look without being woken, per backend: Postgres wakes by `NOTIFY`, so
/// its poll is only a safety net; SQLite has no `NOTIFY` across processes.
#[derive(Debug, Clone, Copy)]
pub struct Polls {
    pub postgres: Duration,
    pub sqlite: Duration,
}

pub const POLLS: Polls = Polls {
    postgres: Duration::from_secs(5),
    sqlite: Duration::from_millis(500),
};

pub struct Wakeups {
    poll: Interval,
    source: Source,
}

enum Source {
    Postgres {
        listener: PgListener,
    },
    /// This process's commits (SQLite), or nothing but the poll when `None`.
    Commits(Option<tokio::sync::watch::Receiver<u64>>),
}

impl Wakeups {
    /// Wakes on `channel` (Postgres, through a connection taken from `reader`'s pool), or
    /// on SQLite on `commits` (this process's, from `Db::commits`) when the caller cares
    /// about them; and at the backend's poll interval.
    pub async fn new(
        reader: &DatabaseConnection,
        channel: &str,
        polls: Polls,
        commits: Option<tokio::sync::watch::Receiver<u64>>,
    ) -> Self {
        match reader.get_database_backend() {
            sea_orm::DbBackend::Postgres => Self {
                poll: interval(polls.postgres),
                source: Source::Postgres {
                    listener: listen(reader, channel).await,
                },
            },
            _ => Self {
                poll: interval(polls.sqlite),
                source: Source::Commits(commits),
            },
        }
    }

    /// Waits for the next reason to look.
    pub async fn next(&mut self) {
        match &mut self.source {
            Source::Postgres { listener } => {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(_)) => {}
                        // The connection dropped; the next call reconnects and listens
                        // again. The caller reads from its position, which catches up on
                        // the gap.
                        Ok(None) => tracing::warn!("listener lost its connection; reconnecting"),
                        Err(error) => {
                            tracing::warn!(%error, "listener failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    _ = self.poll.tick() => {}
                }
            }
            Source::Commits(Some(commits)) => {
                tokio::select! {
                    changed = commits.changed() => {
                        if changed.is_err() {
                            // The database handle is gone: only the poll is left.
                            self.source = Source::Commits(None);
                        }
                    }
                    _ = self.poll.tick() => {}
                }
            }
            Source::Commits(None) => {
                self.poll.tick().await;
            }
        }
    }
}

fn interval(period: Duration) -> Interval {
    let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A reader that was busy past several ticks looks once, not once per tick missed.
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    poll
}

/// A connection listening on `channel`, retried until it is.
async fn listen(reader: &DatabaseConnection, channel: &str) -> PgListener {
    let pool = reader.get_postgres_connection_pool().clone();
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Ok(()) => return listener,
                Err(error) => tracing::warn!(%error, channel, "cannot LISTEN"),
            },
            Err(error) => tracing::warn!(%error, channel, "cannot connect the listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
