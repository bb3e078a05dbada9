//! Pending points activate by themselves: every few seconds one replica (the slot's
//! lease) moves the lots whose `available_at` has passed into their customers' balances,
//! 500 customers a transaction, locked in id order like every other balance write.
//!
//! Activation is exact however it happens: a lot is deleted in the transaction that
//! credits it, so the job and a write that activates its customer's due lots first
//! (redemptions, transfers, refunds, merges, adjustments, expiry) never both credit it.
//! A read between `available_at` and the next slot still shows the points as pending;
//! nothing can spend them in that gap without activating them first.

use chrono::{DateTime, TimeDelta, Utc};

use super::schedule::{JobContext, every_slot};
use crate::domain::DomainResult;
use crate::domain::schedule::Schedule;
use crate::store::{Db, customers, pending_points};

/// How often the job looks for due lots.
pub const EVERY_SECONDS: i64 = 5;

/// Customers activated per transaction.
const CHUNK: u64 = 500;

/// Runs until the supervisor stops it.
pub async fn activate_forever(db: Db) {
    every_slot(
        db,
        "pending activation",
        Schedule::Every(TimeDelta::seconds(EVERY_SECONDS)),
        |JobContext { db, .. }| async move {
            let points = activate_due(&db, Utc::now()).await?;
            if points > 0 {
                tracing::info!(points, "activated pending points");
            }
            Ok(())
        },
    )
    .await
}

/// Activates every lot due by `at`; returns the points activated.
pub async fn activate_due(db: &Db, at: DateTime<Utc>) -> DomainResult<i64> {
    let mut total = 0;
    loop {
        let due = pending_points::due_customers(db.conn(), at, CHUNK).await?;
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
