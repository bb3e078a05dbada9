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
use sea_orm::DatabaseConnection;

/// What a job runs with: the server's database, and the pool the jobs share apart from
/// the requests' (`Db::jobs`), for its claims and upkeep.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub own: DatabaseConnection,
}

/// Runs `work` at every slot of `schedule`, on every replica, until the supervisor stops
/// it; the slot's lease lets exactly one replica run each slot (`run_slot_of`). A failed
/// slot is logged and the next one runs as usual.
pub async fn every_slot<F, Fut>(db: Db, job: &'static str, schedule: Schedule, work: F)
where
    F: Fn(JobContext) -> Fut,
    Fut: std::future::Future<Output = Result<(), DomainError>>,
{
    let own = loop {
        match db.jobs().await {
            Ok(own) => break own,
            Err(error) => {
                tracing::warn!(job, %error, "scheduled job cannot connect yet");
                tokio::time::sleep(StdDuration::from_secs(1)).await;
            }
        }
    };
    let context = JobContext { db, own };
    loop {
        let now = Utc::now();
        let next = schedule.next_after(now);
        let wait = (next - now).to_std().unwrap_or(StdDuration::from_secs(1));
        tokio::time::sleep(wait).await;
        if let Err(error) = run_slot_of(&context, job, next, &work).await {
            tracing::warn!(job, %error, "scheduled job failed");
        }
    }
}

/// Runs `work` for `slot` of `job` if this replica claims the slot (`store::leases`);
/// nothing if another replica already has it.
pub async fn run_slot_of<F, Fut>(
    context: &JobContext,
    job: &str,
    slot: DateTime<Utc>,
    work: &F,
) -> Result<(), DomainError>
where
    F: Fn(JobContext) -> Fut,
    Fut: std::future::Future<Output = Result<(), DomainError>>,
{
    let holder = format!("{}:{}", hostname(), std::process::id());
    if leases::claim(&context.own, job, slot, &holder).await? {
        work(context.clone()).await?;
    }
    Ok(())
}

/// The machine's name, for the lease's holder (the logs say which replica ran a slot).
fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "tierwise".to_owned())
}

/// The evaluation schedule's lease name.
const EVALUATION_JOB: &str = "evaluation";

/// The evaluation schedule: a full evaluation run at every slot.
pub async fn run_forever(db: Db, schedule: Schedule) {
    every_slot(db, EVALUATION_JOB, schedule, scheduled_run).await
}

/// Runs the evaluation of `slot` unless some replica already claimed it.
pub async fn run_slot(db: &Db, slot: DateTime<Utc>) -> Result<(), DomainError> {
    let own = db.jobs().await.map_err(DomainError::Internal)?;
    let context = JobContext {
        db: db.clone(),
        own,
    };
    run_slot_of(&context, EVALUATION_JOB, slot, &scheduled_run).await
}

/// A full evaluation run requested by the schedule; one already running (started by
/// hand) makes the slot a no-op.
async fn scheduled_run(JobContext { db, .. }: JobContext) -> Result<(), DomainError> {
    let request = RunRequest {
        as_of: None,
        customer_ids: None,
        requested_by: "schedule".into(),
    };
    match evaluation::run(&db, request, &Quiet).await {
        Ok(run) => {
            tracing::info!(run = %run.id, status = run.status.as_str(), "scheduled evaluation run finished");
            Ok(())
        }
        Err(DomainError::Conflict(_)) => Ok(()),
        Err(error) => Err(error),
    }
}
