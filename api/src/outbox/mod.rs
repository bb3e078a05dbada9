//! Outbox consumers: everything that acts on committed changes after the fact (the live
//! events of this server's subscribers, the partner webhooks' fan-out) reads the outbox
//! through one reader, `follow`.
//!
//! Writers put an event row in the outbox in the transaction of the change
//! (`store::outbox`), so a consumer sees exactly what committed, in commit order, once
//! per position. The reader owns what every consumer needs and none should write again:
//! its own connections apart from the requests', a position in commit order, batches of
//! at most `BATCH` events, and wake-ups (Postgres `NOTIFY`, one per committed transaction,
//! or on SQLite the commit itself, plus a poll in case a wake-up was lost). A consumer
//! says where it starts and what it does with a batch; a batch it fails on is read again
//! from the same position at the next wake-up, so delivery is at least once.
//!
//! A new consumer implements [`Consumer`] and is started by `Application` through the
//! supervisor: `supervisor.spawn(name, outbox::follow(db, consumer).0)`.

pub mod wakeups;

use std::future::Future;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::domain::DomainResult;
use crate::store::Db;
use crate::store::outbox::{self, Position, Stored};
use wakeups::Wakeups;

/// Events read per query, and so at most per batch handed to a consumer.
pub const BATCH: u64 = 500;

/// Something that acts on committed events, batch by batch, in commit order.
pub trait Consumer: Send + 'static {
    /// What the logs and metrics call it.
    fn name(&self) -> &'static str;

    /// Where reading begins: the outbox's head for a consumer that only wants what
    /// commits from now on (`outbox::head`), or a position it saved.
    fn start(
        &mut self,
        outbox: &DatabaseConnection,
    ) -> impl Future<Output = DomainResult<Position>> + Send;

    /// Acts on `batch` (at most `BATCH` events, in commit order, of any topic: a
    /// consumer decides per topic what it does, and skips an unknown one). An error
    /// leaves the reader where it was: the same events come again.
    fn consume(
        &mut self,
        outbox: &DatabaseConnection,
        batch: &[Stored],
    ) -> impl Future<Output = DomainResult<()>> + Send;
}

/// The task that feeds `consumer` for as long as it runs, for the supervisor to own. The
/// receiver fires once the consumer's start position is known: a server should not
/// accept the consumer's own clients before (a subscriber would take a change committed
/// in between for old).
pub fn follow<C: Consumer>(
    db: Db,
    mut consumer: C,
) -> (
    impl Future<Output = ()> + Send + 'static,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (ready, on_ready) = tokio::sync::oneshot::channel();
    let task = async move {
        let name = consumer.name();
        let (reader, position) = loop {
            let started = async {
                let reader = db.background().await?;
                let position = consumer.start(&reader).await?;
                anyhow::Ok((reader, position))
            };
            match started.await {
                Ok(started) => break started,
                Err(error) => {
                    tracing::warn!(consumer = name, %error, "cannot read the outbox yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let _ = ready.send(());
        let mut wakeups =
            Wakeups::new(&reader, outbox::CHANNEL, wakeups::POLLS, Some(db.commits())).await;
        let mut reading = Reading {
            reader,
            position,
            consumer,
        };
        loop {
            // Whatever committed before the first wait, and after each wake-up.
            reading.catch_up().await;
            wakeups.next().await;
        }
    };
    (task, on_ready)
}

struct Reading<C> {
    reader: DatabaseConnection,
    position: Position,
    consumer: C,
}

impl<C: Consumer> Reading<C> {
    /// Hands over everything that committed after our position; an error is logged and
    /// retried at the next wake-up, from the same position.
    async fn catch_up(&mut self) {
        if let Err(error) = self.consume_pending().await {
            tracing::warn!(consumer = self.consumer.name(), %error, "outbox consumer failed a batch; it will be read again");
        }
    }

    async fn consume_pending(&mut self) -> DomainResult<()> {
        let name = self.consumer.name();
        loop {
            let batch = outbox::read_after(&self.reader, self.position, BATCH).await?;
            tracing::debug!(consumer = name, position = ?self.position, read = batch.len(), "read the outbox");
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(());
            };
            self.consumer.consume(&self.reader, &batch).await?;
            metrics::counter!("tierwise_outbox_events_consumed_total", "consumer" => name)
                .increment(batch.len() as u64);
            self.position = last;
            if (batch.len() as u64) < BATCH {
                return Ok(());
            }
        }
    }
}
