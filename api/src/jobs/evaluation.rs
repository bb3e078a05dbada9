//! Evaluation runs (CONTRACT.md, "Evaluation runs"): recompute, as of `asOf`, every
//! customer's metrics, score, RFM, ABC, lifecycle stage and tier.
//!
//! The population is read by one set-based query (`store::evaluation_scan`), the rules are
//! applied per row by the same pure functions the write path uses, and only rows whose
//! state changed are written back, a thousand per statement, each batch in its own short
//! transaction so that the API keeps writing meanwhile. A batch writes a row only if its
//! revision is the one the scan read: a live interaction recorded during the run wins.
//!
//! While rows stream by, a full run also gathers every customer's purchase history;
//! once the scan is done it fits the churn and spend models to them, keeps them with the
//! run, and revises the stages the new model moves (`restage`). A run whose data cannot
//! support a fit keeps the model in use and records why.

use chrono::{DateTime, SubsecRound, Utc};
use entity::enums::TierChangeReason;
use entity::{evaluation_run, tier_change};
use futures_util::TryStreamExt;
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use uuid::Uuid;

use super::points_upkeep;
use crate::domain::analytics::churn::{ChurnModel, Population, day_number};
use crate::domain::analytics::{abc, rfm};
use crate::domain::interaction::MAX_CLOCK_SKEW;
use crate::domain::lifecycle::{self, LifecycleFacts};
use crate::domain::tiering::Move;
use crate::domain::{DomainError, DomainResult};
use crate::domain::{metrics, scoring};
use crate::store::evaluation_runs::{self, ChurnOutcome, Counts};
use crate::store::evaluation_scan::{self, CustomerState, ScanRow, StateWrite, WRITE_BATCH};
use crate::store::program_snapshot::Program;
use crate::store::{Db, customers, now, tier_changes};

/// Memory Postgres may use per sort or hash while scanning: enough to group a million
/// customers' interactions in memory instead of spilling to disk (the default is 4 MB).
const SCAN_WORK_MEM: &str = "256MB";

/// The most customers one run may be limited to by id.
pub const MAX_CUSTOMER_IDS: usize = 10_000;

/// Receives a run's progress (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    fn started(&self, _customers: u64) {}
    fn advanced(&self, _customers: u64) {}
}

/// For callers that do not show progress.
pub struct Quiet;

impl Progress for Quiet {}

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub as_of: Option<DateTime<Utc>>,
    pub customer_ids: Option<Vec<Uuid>>,
    pub requested_by: String,
}

/// Validates the request and records the run as RUNNING (`CONFLICT` while another runs).
#[tracing::instrument(name = "evaluation::start", skip_all)]
pub async fn start(db: &Db, request: RunRequest) -> DomainResult<evaluation_run::Model> {
    let at = now();
    let as_of = request.as_of.map_or(at, |as_of| as_of.trunc_subsecs(6));
    if as_of > at + MAX_CLOCK_SKEW {
        return Err(DomainError::bad_input("asOf", "must not be in the future"));
    }
    let customer_ids = match request.customer_ids {
        Some(mut ids) => {
            ids.sort();
            ids.dedup();
            if ids.len() > MAX_CUSTOMER_IDS {
                return Err(DomainError::bad_input(
                    "customerIds",
                    format!("at most {MAX_CUSTOMER_IDS} customers per run"),
                ));
            }
            let found = customers::find_many(db.conn(), &ids).await?;
            if let Some(missing) = ids.iter().find(|id| !found.iter().any(|c| c.id == **id)) {
                return Err(DomainError::not_found(format!("customer {missing}")));
            }
            Some(ids)
        }
        None => None,
    };
    let requested_by = request.requested_by;
    db.write(move |txn| {
        Box::pin(async move {
            evaluation_runs::start(txn, as_of, customer_ids.as_deref(), &requested_by).await
        })
    })
    .await
}

/// Does the work of a started run and records how it ended. A failure is recorded on the
/// run (status FAILED) and logged; it is not an error of the caller's request.
#[tracing::instrument(name = "evaluation::execute", skip_all)]
pub async fn execute(
    db: &Db,
    run: evaluation_run::Model,
    progress: &dyn Progress,
) -> DomainResult<evaluation_run::Model> {
    let mut counts = Counts::default();
    let mut skipped_ids = Vec::new();
    let outcome = work(db, &run, progress, &mut counts, &mut skipped_ids).await;
    let (churn, error) = match outcome {
        Ok(churn) => {
            // Dynamic segments read what the run wrote: who entered one fires its
            // ENTERED_SEGMENT campaigns (a failure there is logged, not the run's).
            if let Err(error) =
                crate::service::campaigns::fire::segment_entries_after_run(db, &run.id.to_string())
                    .await
            {
                tracing::error!(run = %run.id, %error, "ENTERED_SEGMENT campaigns were not fired");
            }
            (churn, None)
        }
        Err(error) => {
            tracing::error!(run = %run.id, error = ?error, "evaluation run failed");
            let error = match error {
                DomainError::Internal(_) => "internal error; see the server log".to_owned(),
                other => other.to_string(),
            };
            (ChurnOutcome::default(), Some(error))
        }
    };
    let id = run.id;
    db.write(move |txn| {
        Box::pin(async move {
            evaluation_runs::finish(txn, id, counts, &skipped_ids, churn, error).await
        })
    })
    .await
}

/// Starts a run and waits for it.
#[tracing::instrument(name = "evaluation::run", skip_all)]
pub async fn run(
    db: &Db,
    request: RunRequest,
    progress: &dyn Progress,
) -> DomainResult<evaluation_run::Model> {
    let run = start(db, request).await?;
    execute(db, run, progress).await
}

async fn work(
    db: &Db,
    run: &evaluation_run::Model,
    progress: &dyn Progress,
    counts: &mut Counts,
    skipped_ids: &mut Vec<Uuid>,
) -> DomainResult<ChurnOutcome> {
    // Stages are decided with the churn model in use, then revised once this run's is
    // fitted.
    let program = Program::load(db.conn()).await?;
    let only: Option<Vec<Uuid>> = match &run.customer_ids {
        Some(ids) => Some(
            serde_json::from_value(ids.clone())
                .map_err(|e| DomainError::Internal(anyhow::anyhow!("run customer ids: {e}")))?,
        ),
        None => None,
    };
    let population = match &only {
        Some(ids) => ids.len() as u64,
        None => customers::count_all(db.conn()).await?,
    };
    progress.started(population);

    let reader = scan_reader(db).await?;
    let rows = evaluation_scan::scan(
        &reader,
        run.as_of,
        program.model.window_days,
        only.as_deref(),
    )
    .await?;
    let mut rows = Box::pin(rows);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut moves = Vec::new();
    // Only a run over everyone fits the models: they describe the whole customer base.
    let mut histories = only.is_none().then(|| Population::sampling(population));
    let as_of_day = day_number(run.as_of);
    while let Some(row) = rows.try_next().await? {
        // One customer's data the run cannot process is skipped, counted, named and
        // logged; the rest of the program is evaluated.
        let row = match evaluation_scan::read_row(&row).and_then(evaluation_scan::within_bounds) {
            Ok(row) => row,
            Err(error) => {
                let id = evaluation_scan::row_id(&row);
                tracing::error!(run = %run.id, customer = ?id, ?error, "a customer was skipped");
                counts.skipped += 1;
                if let Some(id) = id
                    && skipped_ids.len() < evaluation_runs::MAX_NAMED_SKIPS
                {
                    skipped_ids.push(id);
                }
                continue;
            }
        };
        counts.customers_evaluated += 1;
        if let (Some(histories), Some(history)) = (&mut histories, row.aggregates.history) {
            histories.add(&history, as_of_day);
        }
        // A run limited to some customers writes each of them, so that their metrics say
        // they are as of this run; a full run writes only what changed.
        let decided = decide(&program, &row, run.as_of, only.is_some());
        if let Some((write, change)) = decided {
            moves.extend(change);
            batch.push(write);
        }
        if batch.len() >= WRITE_BATCH {
            flush(db, run, &mut batch, &mut moves, counts).await?;
        }
        if counts.customers_evaluated % 1000 == 0 {
            progress.advanced(1000);
        }
    }
    drop(rows);
    reader.commit().await?;
    flush(db, run, &mut batch, &mut moves, counts).await?;
    progress.advanced(counts.customers_evaluated as u64 % 1000);
    counts.points_expired = points_upkeep::expire_points(db, run.as_of, only.as_deref()).await?;
    points_upkeep::birthday_bonuses(
        db,
        run.as_of,
        only.as_deref(),
        program.settings.birthday_bonus,
    )
    .await?;
    let Some(histories) = histories else {
        return Ok(ChurnOutcome {
            model: None,
            note: Some(
                "a run limited to some customers fits no model; the current one stays".into(),
            ),
        });
    };
    let as_of = run.as_of;
    let started = std::time::Instant::now();
    let fitted = tokio::task::spawn_blocking(move || histories.fit(as_of))
        .await
        .map_err(|e| DomainError::Internal(e.into()))?;
    tracing::info!(run = %run.id, took = ?started.elapsed(), "churn models fitted");
    if let Some(model) = &fitted.model {
        let started = std::time::Instant::now();
        let restaged = restage(db, &program, model, run.as_of).await?;
        tracing::info!(run = %run.id, took = ?started.elapsed(), restaged, "stages revised");
    } else if let Some(note) = &fitted.note {
        tracing::warn!(run = %run.id, "{note}");
    }
    Ok(ChurnOutcome {
        model: fitted.model,
        note: fitted.note,
    })
}

/// Revises the lifecycle stage of the customers a newly fitted model may move into or
/// out of AT_RISK: those with repeat purchases (the model gives everyone else a pAlive
/// of 1). It reads their stored rows, which the scan has just brought up to date, and
/// writes only the stages that change.
async fn restage(
    db: &Db,
    program: &Program,
    model: &ChurnModel,
    as_of: DateTime<Utc>,
) -> DomainResult<u64> {
    let reader = db.conn().begin().await?;
    let mut candidates = Box::pin(evaluation_scan::stage_candidates(&reader).await?);
    let mut changed = Vec::new();
    while let Some(candidate) = candidates.try_next().await? {
        let stage = lifecycle::stage(&LifecycleFacts {
            purchases: candidate.lifetime_purchase_count,
            days_since_last_purchase: candidate
                .last_purchase_at
                .map(|at| metrics::whole_days(at, as_of)),
            p_alive: candidate.history.map(|history| model.p_alive(&history)),
            at_risk_days: program.settings.at_risk_days,
            churn_days: program.settings.churn_days,
        });
        if stage != candidate.stage {
            changed.push((candidate.id, candidate.revision, candidate.stage, stage));
        }
    }
    drop(candidates);
    reader.commit().await?;
    let mut written = 0;
    for chunk in changed.chunks(WRITE_BATCH) {
        let chunk = chunk.to_vec();
        written += db
            .write(move |txn| {
                Box::pin(async move {
                    let stages: Vec<_> = chunk
                        .iter()
                        .map(|(id, revision, _, to)| (*id, *revision, *to))
                        .collect();
                    let written = evaluation_scan::write_stages(txn, &stages).await?;
                    let moves: Vec<_> = chunk
                        .iter()
                        .filter(|(id, ..)| written.contains(id))
                        .map(|(id, _, from, to)| (*id, *from, *to))
                        .collect();
                    crate::store::outbox::emit_lifecycle_changes(txn, &moves, as_of).await?;
                    Ok(written.len() as u64)
                })
            })
            .await?;
    }
    Ok(written)
}

/// The transaction the scan reads in: its own, where Postgres may use more memory for
/// grouping and sorting than the server's default allows.
pub async fn scan_reader(db: &Db) -> DomainResult<sea_orm::DatabaseTransaction> {
    let reader = db.conn().begin().await?;
    if reader.get_database_backend() == DbBackend::Postgres {
        reader
            .execute_unprepared(&format!("SET LOCAL work_mem = '{SCAN_WORK_MEM}'"))
            .await?;
    }
    Ok(reader)
}

/// A tier move a run decided, written with the customer's new state.
struct PendingMove {
    customer_id: Uuid,
    from: Uuid,
    direction: Move,
    /// How the score that decided it was made (`tier_change.breakdown`).
    breakdown: Option<serde_json::Value>,
}

/// A customer's new state as of `as_of`, and its tier move, when anything changed.
fn decide(
    program: &Program,
    row: &ScanRow,
    as_of: DateTime<Utc>,
    always: bool,
) -> Option<(StateWrite, Option<PendingMove>)> {
    let evaluated = metrics::evaluate(
        row.aggregates,
        as_of,
        &program.model,
        &program.settings,
        program.churn.as_ref(),
    );
    let decision = program.ladder.evaluate(
        row.stored.tier_id,
        evaluated.score,
        row.stored.downgrade_marked_at,
        as_of,
        program.model.downgrade_grace_days,
    );
    let rfm = row.rfm_ranks.map(|ranks| {
        let r = rfm::quintile(ranks.recency, ranks.population);
        let f = rfm::quintile(ranks.frequency, ranks.population);
        let m = rfm::quintile(ranks.monetary, ranks.population);
        (r, f, m, rfm::segment(r, f))
    });
    let a = evaluated.aggregates;
    let state = CustomerState {
        first_purchase_at: a.first_purchase_at,
        last_purchase_at: a.last_purchase_at,
        lifetime_purchase_count: a.lifetime_purchases,
        purchase_count: a.purchases,
        net_spend_e4: a.net_spend_e4,
        lifetime_spend_e4: a.lifetime_spend_e4,
        average_order_value_e4: evaluated.average_order_value_e4,
        engagement_count: a.engagements,
        latest_nps: a.latest_nps,
        outstanding_receivable_e4: a.receivable_e4,
        rfm,
        abc_class: abc::class(a.lifetime_spend_e4, row.spend_above, row.spend_total),
        score: evaluated.score,
        lifecycle_stage: evaluated.stage,
        tier_id: decision.tier,
        downgrade_marked_at: decision.mark,
        // The run applies the rules again, so a manual tier no longer holds.
        tier_held: false,
        history: a.history,
    };
    (always || state != row.stored).then_some((
        StateWrite {
            id: row.id,
            revision: row.revision,
            state,
            previous_stage: row.stored.lifecycle_stage,
        },
        decision.change.map(|direction| PendingMove {
            customer_id: row.id,
            from: row.stored.tier_id,
            direction,
            breakdown: tier_changes::breakdown_json(&scoring::breakdown(
                &program.model,
                &evaluated.indicators,
            )),
        }),
    ))
}

/// Writes a batch in one transaction, with the tier changes of the rows it wrote.
async fn flush(
    db: &Db,
    run: &evaluation_run::Model,
    batch: &mut Vec<StateWrite>,
    moves: &mut Vec<PendingMove>,
    counts: &mut Counts,
) -> DomainResult<()> {
    let writes = std::mem::take(batch);
    let pending_moves = std::mem::take(moves);
    let (run_id, as_of) = (run.id, run.as_of);
    let snapshot = *counts;
    let (ups, downs) = db
        .write(move |txn| {
            Box::pin(async move {
                if txn.get_database_backend() == DbBackend::Postgres {
                    // A batch lost to a crash is redone by the next run; not waiting for
                    // each batch's WAL flush keeps a large run fast.
                    txn.execute_unprepared("SET LOCAL synchronous_commit = off")
                        .await?;
                }
                let written: std::collections::HashSet<Uuid> =
                    evaluation_scan::write_states(txn, &writes, as_of)
                        .await?
                        .into_iter()
                        .collect();
                let stage_moves: Vec<_> = writes
                    .iter()
                    .filter(|w| written.contains(&w.id))
                    .map(|w| (w.id, w.previous_stage, w.state.lifecycle_stage))
                    .collect();
                crate::store::outbox::emit_lifecycle_changes(txn, &stage_moves, as_of).await?;
                let scores: std::collections::HashMap<Uuid, (Uuid, f64)> = writes
                    .iter()
                    .map(|w| (w.id, (w.state.tier_id, w.state.score)))
                    .collect();
                let changed_at = now();
                let (mut ups, mut downs) = (0, 0);
                let mut changes = Vec::new();
                for PendingMove {
                    customer_id,
                    from,
                    direction,
                    breakdown,
                } in pending_moves
                {
                    if !written.contains(&customer_id) {
                        continue;
                    }
                    let Some(&(to, score)) = scores.get(&customer_id) else {
                        continue;
                    };
                    match direction {
                        Move::Up => ups += 1,
                        Move::Down => downs += 1,
                    }
                    changes.push(tier_change::Model {
                        id: Uuid::now_v7(),
                        customer_id,
                        from_tier_id: Some(from),
                        to_tier_id: to,
                        reason: TierChangeReason::Evaluation,
                        score,
                        note: None,
                        evaluation_run_id: Some(run_id),
                        changed_at,
                        breakdown,
                    });
                }
                tier_changes::insert_many(txn, changes).await?;
                let counts = Counts {
                    upgrades: snapshot.upgrades + ups,
                    downgrades: snapshot.downgrades + downs,
                    ..snapshot
                };
                evaluation_runs::heartbeat(txn, run_id, counts).await?;
                Ok((ups, downs))
            })
        })
        .await?;
    counts.upgrades += ups;
    counts.downgrades += downs;
    Ok(())
}
