//! Periodic jobs across replicas (`every_slot`), and the optional evaluation schedule
//! (`EVALUATION_SCHEDULE`): `daily HH:MM` (UTC) or `every <duration>` (`every 6h`).
//! Every replica runs every schedule; the slot's lease in the database (`store::leases`)
//! decides which one runs it. A new periodic job is one more `every_slot` started by
//! `Application` through the supervisor. A scheduled evaluation that finds a run already
//! RUNNING (started by hand) ignores the `CONFLICT`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::evaluation::{self, Quiet, RunRequest};
use crate::domain::DomainError;
use crate::domain::schedule::Schedule;
use crate::store::{Db, leases};

/// Runs `job` at every slot of `schedule` until the supervisor stops it, on every
/// replica; the slot's lease (`store::leases`) lets exactly one replica run each slot.
/// A failed slot is logged and the next one runs as usual.
pub async fn every_slot<F, Fut>(db: Db, job: &'static str, schedule: Schedule, work: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = Result<(), DomainError>>,
{
    let holder = format!("{}:{}", hostname(), std::process::id());
    loop {
        let now = Utc::now();
        let next = schedule.next_after(now);
        let wait = (next - now).to_std().unwrap_or(StdDuration::from_secs(1));
        tokio::time::sleep(wait).await;
        match leases::claim(db.conn(), job, next, &holder).await {
            Ok(true) => {
                if let Err(error) = work(db.clone()).await {
                    tracing::warn!(job, %error, "scheduled job failed");
                }
            }
            Ok(false) => {} // another replica took this slot
            Err(error) => tracing::warn!(job, %error, "could not claim the job's slot"),
        }
    }
}

/// The machine's name, for the lease's holder (the logs say which replica ran a slot).
fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "tierwise".to_owned())
}

/// The evaluation schedule: a full evaluation run at every slot.
pub async fn run_forever(db: Db, schedule: Schedule) {
    every_slot(db, EVALUATION_JOB, schedule, |db| async move {
        scheduled_run(&db).await
    })
    .await
}

/// The evaluation schedule's lease name.
pub const EVALUATION_JOB: &str = "evaluation";

/// Runs the evaluation of `slot` unless some replica already claimed it.
pub async fn run_slot(db: &Db, slot: DateTime<Utc>) -> Result<(), DomainError> {
    if !leases::claim(db.conn(), EVALUATION_JOB, slot, "run_slot").await? {
        return Ok(()); // another replica took this slot
    }
    scheduled_run(db).await
}

/// A full evaluation run requested by the schedule; one already running (started by
/// hand) makes the slot a no-op.
async fn scheduled_run(db: &Db) -> Result<(), DomainError> {
    let request = RunRequest {
        as_of: None,
        customer_ids: None,
        requested_by: "schedule".into(),
    };
    match evaluation::run(db, request, &Quiet).await {
        Ok(run) => {
            tracing::info!(run = %run.id, status = run.status.as_str(), "scheduled evaluation run finished");
            Ok(())
        }
        Err(DomainError::Conflict(_)) => Ok(()),
        Err(error) => Err(error),
    }
}
