//! Deletes webhook deliveries older than `WEBHOOK_RETENTION`, once an hour across
//! replicas.

use std::time::Duration;

use chrono::TimeDelta;

use super::schedule::{JobContext, every_slot};
use crate::domain::schedule::Schedule;
use crate::store::{Db, webhooks};

/// Runs until the supervisor stops it.
pub async fn prune_forever(db: Db, retention: Duration) {
    let retention = TimeDelta::from_std(retention).unwrap_or(TimeDelta::days(30));
    every_slot(
        db,
        "webhook pruning",
        Schedule::Every(TimeDelta::hours(1)),
        move |JobContext { own, .. }| async move {
            let pruned = webhooks::prune_deliveries(&own, crate::store::now() - retention).await?;
            if pruned > 0 {
                tracing::info!(pruned, "pruned old webhook deliveries");
            }
            Ok(())
        },
    )
    .await
}
