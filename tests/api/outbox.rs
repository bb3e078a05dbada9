//! The outbox reader every consumer of committed changes uses (`outbox::follow`): a
//! consumer gets each committed event in commit order, whatever its topic or subject;
//! a batch it fails on comes again; a consumer that keeps a position starts from it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;
use tierwise_api::domain::{DomainError, DomainResult};
use tierwise_api::outbox::{Consumer, follow};
use tierwise_api::store::outbox::{self, Position, Stored};
use tierwise_api::store::raw;
use uuid::Uuid;

use crate::helpers::{TestApp, on_both};

/// What the test consumer saw, as (topic or unknown name, customer, subject).
type Seen = Arc<Mutex<Vec<(String, Option<Uuid>, Uuid)>>>;

struct Recorder {
    start: Position,
    seen: Seen,
    /// Batches still to refuse, as a consumer whose destination is down would.
    refusals: usize,
    refused: Arc<Mutex<usize>>,
}

impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        "test recorder"
    }

    async fn start(&mut self, _outbox: &DatabaseConnection) -> DomainResult<Position> {
        Ok(self.start)
    }

    async fn consume(
        &mut self,
        _outbox: &DatabaseConnection,
        batch: &[Stored],
    ) -> DomainResult<()> {
        if self.refusals > 0 {
            self.refusals -= 1;
            *self.refused.lock().unwrap() += 1;
            return Err(DomainError::Internal(anyhow::anyhow!(
                "the destination is down"
            )));
        }
        self.seen.lock().unwrap().extend(batch.iter().map(|e| {
            let topic = match &e.topic {
                Ok(topic) => topic.as_str().to_owned(),
                Err(unknown) => format!("unknown {unknown}"),
            };
            (topic, e.customer_id, e.subject_id)
        }));
        Ok(())
    }
}

async fn seen_becomes(seen: &Seen, count: usize) -> Vec<(String, Option<Uuid>, Uuid)> {
    // Up to 15 s: longer than either backend's poll.
    for _ in 0..600 {
        if seen.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen.lock().unwrap().clone()
}

async fn a_consumer_reads_every_event_in_commit_order_and_again_after_a_failure(app: TestApp) {
    let db = app.db.conn();
    let start = outbox::head(db).await.unwrap();
    let seen = Seen::default();
    let refused = Arc::new(Mutex::new(0));
    let (task, ready) = follow(
        app.db.clone(),
        Recorder {
            start,
            seen: seen.clone(),
            refusals: 1,
            refused: refused.clone(),
        },
    );
    let task = tokio::spawn(task);
    ready.await.expect("the consumer started");

    // A customer's event, an event about no single customer, and one of a topic this
    // version does not know: each reaches the consumer as it is.
    let customer = app.create_customer(json!({ "name": "Consumed" })).await;
    let customer = Uuid::parse_str(&customer).unwrap();
    let program_wide = Uuid::now_v7();
    app.db
        .write(move |txn| {
            Box::pin(async move {
                outbox::emit(
                    txn,
                    entity::enums::EventTopic::PointsChanged,
                    None,
                    program_wide,
                )
                .await
            })
        })
        .await
        .unwrap();
    let newer = Uuid::now_v7();
    db.execute_raw(raw(
        db.get_database_backend(),
        "INSERT INTO event_outbox (id, topic, customer_id, subject_id, created_at) \
         VALUES ($1, 'CAMPAIGN_FIRED', NULL, $2, $3)",
        vec![
            Uuid::now_v7().into(),
            newer.into(),
            chrono::Utc::now().into(),
        ],
    ))
    .await
    .unwrap();
    // A raw insert wakes nobody by itself: on Postgres notify as a writer does (on
    // SQLite the poll finds it).
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_unprepared(&format!("SELECT pg_notify('{}', '')", outbox::CHANNEL))
            .await
            .unwrap();
    }
    let got = seen_becomes(&seen, 3).await;
    assert!(*refused.lock().unwrap() >= 1, "the first batch was refused");
    let topics: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        ["TIER_CHANGED", "POINTS_CHANGED", "unknown CAMPAIGN_FIRED"],
        "every event once, in commit order, the refused one again: {got:?}"
    );
    assert_eq!(got[0].1, Some(customer), "the customer's first tier");
    assert_eq!(got[1], ("POINTS_CHANGED".into(), None, program_wide));
    assert_eq!(got[2].2, newer);

    // A consumer that keeps a position starts after it: only what followed.
    let middle = outbox::read_after(db, start, 10).await.unwrap()[1].position;
    let resumed = Seen::default();
    let (again, ready) = follow(
        app.db.clone(),
        Recorder {
            start: middle,
            seen: resumed.clone(),
            refusals: 0,
            refused: Arc::default(),
        },
    );
    let again = tokio::spawn(again);
    ready.await.unwrap();
    let got = seen_becomes(&resumed, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, newer);
    task.abort();
    again.abort();
}

on_both!(a_consumer_reads_every_event_in_commit_order_and_again_after_a_failure);
