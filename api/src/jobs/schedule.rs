//! Periodic jobs across replicas (`every_slot`), and the optional evaluation schedule
//! (`EVALUATION_SCHEDULE`): `daily HH:MM` (UTC) or `every <duration>` (`every 6h`).
//! Every replica runs every schedule; the slot's lease in the database (`store::leases`)
//! decides which one runs it. A new periodic job is one more `every_slot` started by
//! `Application` through the supervisor. A scheduled evaluation that finds a run already
//! RUNNING (started by hand) ignores the `CONFLICT`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::evaluation::{self, Quiet, RunRequest};
use crate::domain::DomainError;
use crate::store::{Db, leases};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this time, UTC.
    Daily(NaiveTime),
    /// At this interval, counted from the Unix epoch (so replicas agree on the slots).
    Every(Duration),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(time) = text.strip_prefix("daily ") {
            let time = NaiveTime::parse_from_str(time.trim(), "%H:%M")
                .map_err(|_| format!("`{text}`: expected `daily HH:MM` (UTC)"))?;
            return Ok(Self::Daily(time));
        }
        if let Some(interval) = text.strip_prefix("every ") {
            let interval =
                humantime::parse_duration(interval.trim()).map_err(|e| format!("`{text}`: {e}"))?;
            let interval = Duration::from_std(interval).map_err(|e| e.to_string())?;
            if interval < Duration::minutes(1) {
                return Err(format!("`{text}`: the interval must be at least a minute"));
            }
            return Ok(Self::Every(interval));
        }
        Err(format!(
            "`{text}`: expected `daily HH:MM` (UTC) or `every <duration>`, e.g. `every 6h`"
        ))
    }

    /// The latest slot at or before `now`.
    pub fn slot_at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Self::Daily(time) => {
                let today = now.date_naive().and_time(time).and_utc();
                if today <= now {
                    today
                } else {
                    today - Duration::days(1)
                }
            }
            Self::Every(interval) => {
                let step = interval.num_seconds().max(60);
                let slot = now.timestamp().div_euclid(step) * step;
                DateTime::from_timestamp(slot, 0).unwrap_or(now)
            }
        }
    }

    /// The first slot after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Self::Daily(_) => self.slot_at_or_before(now) + Duration::days(1),
            Self::Every(interval) => self.slot_at_or_before(now) + interval,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_parse_and_find_their_slots() {
        let daily = Schedule::parse("daily 02:00").unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-23T01:00:00Z")),
            at("2026-11-23T02:00:00Z")
        );
        assert_eq!(
            daily.next_after(at("2026-11-23T02:00:00Z")),
            at("2026-11-24T02:00:00Z")
        );
        let every = Schedule::parse("every 6h").unwrap();
        assert_eq!(
            every.next_after(at("2026-11-23T13:10:00Z")),
            at("2026-11-23T18:00:00Z")
        );
        assert!(Schedule::parse("hourly").is_err());
        assert!(Schedule::parse("daily 25:00").is_err());
        assert!(Schedule::parse("every 10s").is_err());
    }
}
