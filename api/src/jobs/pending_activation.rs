//! Pending points activate by themselves: every few seconds every replica moves the lots
//! whose `available_at` has passed into their customers' balances, 500 customers a
//! transaction, locked in id order like every other balance write. No lease: two
//! replicas that find the same lots queue on the customers' locks, and the second finds
//! them gone (the look itself is one indexed query).
//!
//! Activation is exact however it happens: a lot is deleted in the transaction that
//! credits it, so the job and a write that activates its customer's due lots first
//! (redemptions, transfers, refunds, merges, adjustments, expiry) never both credit it.
//! A read between `available_at` and the next slot still shows the points as pending;
//! nothing can spend them in that gap without activating them first.

use chrono::{DateTime, Utc};

use crate::domain::DomainResult;
use crate::store::{Db, customers, pending_points};

/// How often the job looks for due lots.
pub const EVERY_SECONDS: u64 = 5;

/// Customers activated per transaction.
const CHUNK: u64 = 500;

/// Runs until the supervisor stops it. The look for due lots, every few seconds, uses
/// the jobs' pool (`Db::jobs`): it takes no connection from requests and does not count
/// in their statements.
pub async fn activate_forever(db: Db) {
    let look = loop {
        match db.jobs().await {
            Ok(own) => break own,
            Err(error) => {
                tracing::warn!(%error, "pending activation cannot connect yet");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(EVERY_SECONDS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match activate_due_looking_with(&db, &look, Utc::now()).await {
            Ok(0) => {}
            Ok(points) => tracing::info!(points, "activated pending points"),
            Err(error) => tracing::warn!(%error, "activating pending points failed"),
        }
    }
}

/// Activates every lot due by `at`; returns the points activated.
pub async fn activate_due(db: &Db, at: DateTime<Utc>) -> DomainResult<i64> {
    activate_due_looking_with(db, db.conn(), at).await
}

/// `activate_due`, looking for due lots on `look`.
async fn activate_due_looking_with(
    db: &Db,
    look: &sea_orm::DatabaseConnection,
    at: DateTime<Utc>,
) -> DomainResult<i64> {
    let mut total = 0;
    loop {
        let due = pending_points::due_customers(look, at, CHUNK).await?;
        if due.is_empty() {
            return Ok(total);
        }
        total += db
            .write(move |txn| {
                Box::pin(async move {
                    customers::lock_balances_in_order(txn, &due).await?;
                    let activated = pending_points::activate(txn, &due, at).await?;
                    Ok(activated.values().sum::<i64>())
                })
            })
            .await?;
    }
}
