//! The webhook fan-out: an outbox consumer that keeps its position in the database
//! (`outbox_cursor`), so that a restart resumes where the last run stopped rather than at
//! the head. Every replica runs one; the deliveries' unique key (endpoint, event) makes
//! their work idempotent, and positions only move forward.

use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{Wakeup, payload};
use crate::domain::DomainResult;
use crate::domain::webhooks::subscribed;
use crate::outbox::Consumer;
use crate::store::outbox::{self, Position, Stored};
use crate::store::webhooks::{self, NewDelivery};

/// The fan-out's name in `outbox_cursor`.
pub const CONSUMER: &str = "webhooks";

pub struct Fanout {
    wakeup: Wakeup,
}

impl Fanout {
    pub fn new(wakeup: Wakeup) -> Self {
        Self { wakeup }
    }
}

impl Consumer for Fanout {
    fn name(&self) -> &'static str {
        "webhook fan-out"
    }

    /// Where the last run stopped; the head the first time (events from before webhooks
    /// existed are not delivered).
    async fn start(&mut self, db: &DatabaseConnection) -> DomainResult<Position> {
        outbox::resume_or_start(db, CONSUMER).await
    }

    async fn consume(&mut self, db: &DatabaseConnection, batch: &[Stored]) -> DomainResult<()> {
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(());
        };
        let endpoints = webhooks::enabled_endpoints(db).await?;
        let mut deliveries = Vec::new();
        if !endpoints.is_empty() {
            let subscriptions: Vec<Vec<String>> = endpoints
                .iter()
                .map(|e| serde_json::from_value(e.events.clone()).unwrap_or_default())
                .collect();
            for event in payload::prepare(db, batch).await? {
                for (endpoint, types) in endpoints.iter().zip(&subscriptions) {
                    // An endpoint gets what happened since it was registered, as partners
                    // expect, even when the fan-out is behind.
                    if endpoint.created_at <= event.written_at
                        && subscribed(types, event.event_type)
                    {
                        deliveries.push(NewDelivery {
                            endpoint_id: endpoint.id,
                            event_id: event.event_id,
                            event_type: event.event_type.to_owned(),
                            payload: event.data_for(endpoint.owner_reads_customers).clone(),
                            occurred_at: event.occurred_at,
                        });
                    }
                }
            }
        }
        let made = deliveries.len();
        // The deliveries and the position move together: a crash in between repeats the
        // batch, and the unique key absorbs the repeat.
        let txn = db.begin().await?;
        for chunk in chunked(deliveries, 500) {
            webhooks::insert_deliveries(&txn, chunk).await?;
        }
        outbox::save_cursor(&txn, CONSUMER, last).await?;
        txn.commit().await?;
        if made > 0 {
            metrics::counter!("tierwise_webhook_deliveries_created_total").increment(made as u64);
            self.wakeup.wake();
        }
        Ok(())
    }
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(size).collect());
    }
    chunks
}
