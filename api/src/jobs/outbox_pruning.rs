//! Deletes outbox events older than `RETENTION`, once per slot across replicas. A live
//! relay has no subscriber older than its server, and a consumer that keeps a position
//! is expected to be far younger than a day behind; one that is away longer misses what
//! is older.

use chrono::TimeDelta;

use super::schedule::{JobContext, every_slot};
use crate::domain::DomainError;
use crate::domain::schedule::Schedule;
use crate::store::{Db, outbox};

/// How long events stay in the outbox.
pub const RETENTION: TimeDelta = TimeDelta::hours(24);
const EVERY: TimeDelta = TimeDelta::minutes(10);

/// Runs until the supervisor stops it.
pub async fn prune_forever(db: Db) {
    every_slot(db, "outbox pruning", Schedule::Every(EVERY), prune).await
}

async fn prune(JobContext { own, .. }: JobContext) -> Result<(), DomainError> {
    let pruned = outbox::prune(&own, crate::store::now() - RETENTION).await?;
    if pruned > 0 {
        tracing::info!(pruned, "pruned old outbox events");
    }
    Ok(())
}
