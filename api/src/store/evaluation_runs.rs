//! Evaluation run records: started, heartbeat, finished.

use chrono::{DateTime, Duration, Utc};
use entity::enums::EvaluationStatus;
use entity::evaluation_run;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::{is_unique_violation, now};
use crate::domain::analytics::churn::ChurnModel;
use crate::domain::{DomainError, DomainResult};

/// A RUNNING run whose heartbeat is older than this was abandoned (its process died).
pub const ABANDONED_AFTER: Duration = Duration::minutes(10);

pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<evaluation_run::Model>> {
    Ok(evaluation_run::Entity::find_by_id(id).one(db).await?)
}

/// Records a new RUNNING run. The partial unique index on RUNNING decides between
/// replicas: a second run while one is alive gets `CONFLICT`; an abandoned one is marked
/// FAILED first so that a crash does not block runs forever.
/// The runs of these ids.
pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<Vec<evaluation_run::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    Ok(evaluation_run::Entity::find()
        .filter(evaluation_run::Column::Id.is_in(ids))
        .all(db)
        .await?)
}

pub async fn start(
    db: &impl ConnectionTrait,
    as_of: DateTime<Utc>,
    customer_ids: Option<&[Uuid]>,
    requested_by: &str,
) -> DomainResult<evaluation_run::Model> {
    let started = now();
    evaluation_run::Entity::update_many()
        .set(evaluation_run::ActiveModel {
            status: Set(EvaluationStatus::Failed),
            finished_at: Set(Some(started)),
            error: Set(Some("abandoned: its server stopped while it ran".into())),
            ..Default::default()
        })
        .filter(evaluation_run::Column::Status.eq(EvaluationStatus::Running))
        .filter(evaluation_run::Column::HeartbeatAt.lt(started - ABANDONED_AFTER))
        .exec(db)
        .await?;
    let run = evaluation_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        status: Set(EvaluationStatus::Running),
        as_of: Set(as_of),
        customer_ids: Set(customer_ids.map(|ids| serde_json::json!(ids))),
        started_at: Set(started),
        finished_at: Set(None),
        customers_evaluated: Set(0),
        upgrades: Set(0),
        downgrades: Set(0),
        points_expired: Set(0),
        churn_model: Set(None),
        churn_model_note: Set(None),
        error: Set(None),
        skipped_customers: Set(0),
        skipped_customer_ids: Set(None),
        requested_by: Set(requested_by.to_owned()),
        heartbeat_at: Set(Some(started)),
    };
    match run.insert(db).await {
        Ok(run) => Ok(run),
        Err(error) if is_unique_violation(&error) => Err(DomainError::Conflict(
            "an evaluation run is already running; wait for it to finish".into(),
        )),
        Err(error) => Err(error.into()),
    }
}

/// What a run did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub customers_evaluated: i64,
    pub upgrades: i64,
    pub downgrades: i64,
    pub points_expired: i64,
    /// Customers skipped because the run could not process their data.
    pub skipped: i64,
}

/// How many skipped customers a run names (all are counted and logged).
pub const MAX_NAMED_SKIPS: usize = 100;

/// Records progress and proves the run alive.
pub async fn heartbeat(db: &impl ConnectionTrait, id: Uuid, counts: Counts) -> DomainResult<()> {
    evaluation_run::Entity::update_many()
        .set(evaluation_run::ActiveModel {
            heartbeat_at: Set(Some(now())),
            customers_evaluated: Set(counts.customers_evaluated as i32),
            upgrades: Set(counts.upgrades as i32),
            downgrades: Set(counts.downgrades as i32),
            ..Default::default()
        })
        .filter(evaluation_run::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// What a run made of the churn models: the models it fitted, or why it fitted none.
#[derive(Debug, Clone, Default)]
pub struct ChurnOutcome {
    pub model: Option<ChurnModel>,
    pub note: Option<String>,
}

pub async fn finish(
    db: &impl ConnectionTrait,
    id: Uuid,
    counts: Counts,
    skipped_ids: &[Uuid],
    churn: ChurnOutcome,
    error: Option<String>,
) -> DomainResult<evaluation_run::Model> {
    let churn_model = churn
        .model
        .map(|model| serde_json::to_value(model).map_err(|e| DomainError::Internal(e.into())))
        .transpose()?;
    let status = match error {
        None => EvaluationStatus::Succeeded,
        Some(_) => EvaluationStatus::Failed,
    };
    evaluation_run::ActiveModel {
        id: Set(id),
        status: Set(status),
        finished_at: Set(Some(now())),
        heartbeat_at: Set(Some(now())),
        customers_evaluated: Set(counts.customers_evaluated as i32),
        upgrades: Set(counts.upgrades as i32),
        downgrades: Set(counts.downgrades as i32),
        points_expired: Set(counts.points_expired),
        churn_model: Set(churn_model),
        churn_model_note: Set(churn.note),
        error: Set(error),
        skipped_customers: Set(counts.skipped as i32),
        skipped_customer_ids: Set((!skipped_ids.is_empty()).then(|| serde_json::json!(skipped_ids))),
        ..Default::default()
    }
    .update(db)
    .await?;
    find(db, id)
        .await?
        .ok_or_else(|| DomainError::not_found("evaluation run"))
}

/// The latest successful run over everyone: customers' metrics written before it
/// started are true as of its `asOf` (it rewrote every row that differed).
pub async fn latest_full(db: &impl ConnectionTrait) -> DomainResult<Option<evaluation_run::Model>> {
    Ok(evaluation_run::Entity::find()
        .filter(evaluation_run::Column::Status.eq(EvaluationStatus::Succeeded))
        .filter(evaluation_run::Column::CustomerIds.is_null())
        .order_by_desc(evaluation_run::Column::StartedAt)
        .one(db)
        .await?)
}

/// The churn model in use: the one the latest successful run that fitted one fitted.
pub async fn current_churn_model(db: &impl ConnectionTrait) -> DomainResult<Option<ChurnModel>> {
    let run = evaluation_run::Entity::find()
        .filter(evaluation_run::Column::Status.eq(EvaluationStatus::Succeeded))
        .filter(evaluation_run::Column::ChurnModel.is_not_null())
        .order_by_desc(evaluation_run::Column::FinishedAt)
        .one(db)
        .await?;
    Ok(run.as_ref().and_then(churn_model_of))
}

/// The churn model a run fitted, if it fitted one.
pub fn churn_model_of(run: &evaluation_run::Model) -> Option<ChurnModel> {
    let json = run.churn_model.clone()?;
    match serde_json::from_value(json) {
        Ok(model) => Some(model),
        Err(error) => {
            tracing::error!(run = %run.id, %error, "unreadable churn model");
            None
        }
    }
}
