//! The relay: reads committed events from the outbox in commit order and publishes them
//! on this server's bus. One per server; every replica runs its own and sees every
//! event, whichever replica wrote it.
//!
//! It wakes on Postgres `NOTIFY` (one per committed transaction, not per row) or, on
//! SQLite, on the commit itself; and also every few seconds, in case a wake-up was lost.
//! It remembers its position in the outbox, so after a lost database connection it
//! catches up on everything that committed meanwhile.
//!
//! It also keeps this replica's program snapshot current: a change to the program
//! notifies a channel of its own (`program_snapshot::CHANNEL`), and the relay then reads
//! the program's revision (also on every poll, and after a lost connection).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::enums::EventTopic;
use sea_orm::DbBackend;

use super::bus::{Event, EventBus};
use crate::domain::DomainResult;
use crate::store::events::{self, Position, Stored};
use crate::store::{Db, customers, program_snapshot, tiers};

/// Events read per query, and so at most per batch on the bus.
const BATCH: u64 = 500;
/// How often the relay looks without being woken. Postgres wakes it by `NOTIFY`, so
/// this is only a safety net there.
const POSTGRES_POLL: Duration = Duration::from_secs(5);
const SQLITE_POLL: Duration = Duration::from_millis(500);
/// How long events stay in the outbox: a replica away for longer misses what is older.
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The relay for this server, as a task for the supervisor to run. The receiver fires
/// once the relay knows where the outbox ends: a server should not accept subscribers
/// before, or a change committed in between would be taken for old.
pub fn relay(
    db: Db,
    bus: EventBus,
) -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (ready, on_ready) = tokio::sync::oneshot::channel();
    let task = async move {
        let mut relay = loop {
            let started = async {
                let reader = db.background().await?;
                let position = events::head(&reader).await?;
                anyhow::Ok((reader, position))
            };
            match started.await {
                Ok((reader, position)) => {
                    break Relay {
                        db: db.clone(),
                        reader,
                        bus: bus.clone(),
                        position,
                        pruned_at: Instant::now(),
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "event relay cannot read the outbox yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let _ = ready.send(());
        match db.conn().get_database_backend() {
            DbBackend::Postgres => relay.listen_to_postgres().await,
            _ => relay.follow_commits().await,
        }
    };
    (task, on_ready)
}

struct Relay {
    /// The server's database: its commits wake the relay on SQLite.
    db: Db,
    /// The relay's own connections, apart from the requests'.
    reader: sea_orm::DatabaseConnection,
    bus: EventBus,
    position: Position,
    pruned_at: Instant,
}

impl Relay {
    async fn listen_to_postgres(&mut self) {
        use sea_orm::sqlx::postgres::PgListener;
        let pool = self.reader.get_postgres_connection_pool().clone();
        let mut listener = loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener
                    .listen_all([events::CHANNEL, program_snapshot::CHANNEL])
                    .await
                {
                    Ok(()) => break listener,
                    Err(error) => tracing::warn!(%error, "cannot LISTEN for events"),
                },
                Err(error) => tracing::warn!(%error, "cannot connect the event listener"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Events, and a program change, that committed while the listener was being
        // set up.
        self.deliver().await;
        self.follow_program().await;
        let mut poll = tokio::time::interval(POSTGRES_POLL);
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) if notification.channel() == program_snapshot::CHANNEL => {
                        self.follow_program().await;
                        continue;
                    }
                    Ok(Some(_)) => {}
                    // The connection dropped; the next call reconnects and listens
                    // again, and reading from our position catches up on the gap (and
                    // on a program change missed meanwhile).
                    Ok(None) => {
                        tracing::warn!("event listener lost its connection; reconnecting");
                        self.follow_program().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = poll.tick() => self.follow_program().await,
            }
            self.deliver().await;
        }
    }

    /// SQLite has no `NOTIFY`: commits of this process wake the relay, and a change to
    /// the program made by another process (the CLI) is found by the poll. This process's
    /// own program changes move its snapshot themselves (`service::program`).
    async fn follow_commits(&mut self) {
        let mut poll = tokio::time::interval(SQLITE_POLL);
        loop {
            tokio::select! {
                _ = self.db.commits().notified() => {}
                _ = poll.tick() => self.follow_program().await,
            }
            self.deliver().await;
        }
    }

    /// Reads the program's revision, so that requests on this replica stop reading a
    /// snapshot of the program from before a change made elsewhere.
    async fn follow_program(&self) {
        match program_snapshot::revision(&self.reader).await {
            Ok(revision) => self.db.programs().saw(revision),
            Err(error) => {
                tracing::warn!(%error, "event relay could not read the program's revision")
            }
        }
    }

    /// Publishes everything that committed after our position; errors are logged and
    /// retried on the next wake-up, from the same position.
    async fn deliver(&mut self) {
        if let Err(error) = self.deliver_pending().await {
            tracing::warn!(%error, "event relay could not read the outbox");
        }
        if self.pruned_at.elapsed() >= PRUNE_EVERY {
            self.pruned_at = Instant::now();
            let before = crate::store::now() - RETENTION;
            match events::prune(&self.reader, before).await {
                Ok(pruned) if pruned > 0 => tracing::info!(pruned, "pruned old events"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not prune old events"),
            }
        }
    }

    async fn deliver_pending(&mut self) -> DomainResult<()> {
        loop {
            let batch = events::read_after(&self.reader, self.position, BATCH).await?;
            tracing::debug!(position = ?self.position, read = batch.len(), "relay read the outbox");
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(());
            };
            let full = batch.len() as u64 == BATCH;
            self.bus.publish(self.load(&batch).await?);
            metrics::counter!("tierwise_events_relayed_total").increment(batch.len() as u64);
            self.position = last;
            if !full {
                return Ok(());
            }
        }
    }

    /// The batch's changes with their customers and the tiers, in three queries.
    async fn load(&self, batch: &[Stored]) -> DomainResult<Vec<Event>> {
        let db = &self.reader;
        let (changes, entries) = events::subjects(db, batch).await?;
        let customer_ids: Vec<_> = batch.iter().map(|e| e.customer_id).collect();
        let customers: HashMap<_, _> = customers::find_many(db, &customer_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let tiers = Arc::new(
            tiers::all(db)
                .await?
                .into_iter()
                .map(|t| (t.id, t))
                .collect::<HashMap<_, _>>(),
        );
        Ok(batch
            .iter()
            .filter_map(|stored| {
                let topic = match &stored.topic {
                    Ok(topic) => *topic,
                    Err(unknown) => {
                        tracing::warn!(
                            topic = %unknown,
                            position = ?stored.position,
                            "event relay skipped an event of a topic it does not know"
                        );
                        return None;
                    }
                };
                let customer = customers.get(&stored.customer_id)?.clone();
                let tiers = tiers.clone();
                match topic {
                    EventTopic::TierChanged => {
                        changes
                            .get(&stored.subject_id)
                            .map(|change| Event::TierChanged {
                                change: change.clone(),
                                customer,
                                tiers,
                            })
                    }
                    EventTopic::PointsChanged => {
                        entries
                            .get(&stored.subject_id)
                            .map(|entry| Event::PointsChanged {
                                entry: entry.clone(),
                                customer,
                                tiers,
                            })
                    }
                }
            })
            .collect())
    }
}
