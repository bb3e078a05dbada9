//! Leases of periodic jobs across replicas: "run this slot of this job once, whichever
//! replica wakes first". A slot is claimed by one conditional upsert of the job's row
//! (`job_lease`): it succeeds only if the row names an earlier slot (or none), so of the
//! replicas that race for a slot exactly one gets it, and a slot once passed cannot be
//! claimed again.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::domain::DomainResult;

/// Claims `slot` of `job` for `holder` (a name for the logs). Returns whether this caller
/// got it: false when some replica already claimed this slot or a later one.
pub async fn claim(
    db: &impl ConnectionTrait,
    job: &str,
    slot: DateTime<Utc>,
    holder: &str,
) -> DomainResult<bool> {
    let backend = db.get_database_backend();
    let claimed = db
        .query_one_raw(super::raw(
            backend,
            "INSERT INTO job_lease (job, slot, holder, claimed_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job) DO UPDATE
               SET slot = excluded.slot, holder = excluded.holder, claimed_at = excluded.claimed_at
               WHERE job_lease.slot < excluded.slot
             RETURNING job",
            vec![
                job.into(),
                slot.timestamp().into(),
                holder.into(),
                Utc::now().timestamp().into(),
            ],
        ))
        .await?;
    Ok(claimed.is_some())
}
