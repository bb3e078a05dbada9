//! The program's rules as one snapshot, cached per process and checked against the
//! revision the database keeps (`program_revision`, bumped by triggers on every table the
//! program is read from).
//!
//! Two ways to ask, for two needs:
//! - [`Snapshots::current`] reads the revision (one statement) and reloads only when it
//!   moved: exact, for transactions that act on the rules (recording a purchase earns at
//!   the multiplier that holds when it commits, whichever replica changed it).
//! - [`Snapshots::recent`] costs no statement while the snapshot is of the newest
//!   revision this process knows of, for reads (a tier's name on a screen). This
//!   process learns of a change at once when it made it, and from its program
//!   follower (`jobs::program_follower`, woken by the trigger's `NOTIFY`, or by its poll) when another replica did.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use entity::tier;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use uuid::Uuid;

use super::{evaluation_runs, program, tiers};
use crate::domain::DomainResult;
use crate::domain::analytics::churn::ChurnModel;
use crate::domain::program::{ScoringModel, Settings};
use crate::domain::tiering::{Ladder, TierLevel};

/// A snapshot of the program's rules.
#[derive(Debug, Clone)]
pub struct Program {
    pub model: ScoringModel,
    pub settings: Settings,
    pub ladder: Ladder,
    pub tiers: HashMap<Uuid, tier::Model>,
    /// The churn model in use, if a run has fitted one.
    pub churn: Option<ChurnModel>,
    /// The ACTIVE campaigns, oldest first. What each has spent is not part of the
    /// snapshot: the writes that spend read it under the campaign's row lock.
    pub campaigns: Vec<entity::campaign::Model>,
}

impl Program {
    /// Reads the rules (five statements); most callers want [`Snapshots`] instead.
    pub async fn load(db: &impl ConnectionTrait) -> DomainResult<Self> {
        let tiers = tiers::all(db).await?;
        let ladder = Ladder::new(
            tiers
                .iter()
                .map(|t| TierLevel {
                    id: t.id,
                    rank: t.rank,
                    min_score: t.min_score,
                })
                .collect(),
        );
        Ok(Self {
            model: program::scoring_model(db).await?,
            settings: program::settings(db).await?,
            ladder,
            tiers: tiers.into_iter().map(|t| (t.id, t)).collect(),
            churn: evaluation_runs::current_churn_model(db).await?,
            campaigns: super::campaigns::all_active(db).await?,
        })
    }

    /// The points multiplier of a tier, in ten-thousandths (1.0 for an unknown tier).
    /// The active campaigns of one trigger kind, oldest first.
    pub fn campaigns_of(
        &self,
        kind: entity::enums::CampaignTriggerKind,
    ) -> impl Iterator<Item = &entity::campaign::Model> {
        self.campaigns
            .iter()
            .filter(move |c| c.trigger_kind == kind)
    }

    pub fn multiplier_e4(&self, tier_id: Uuid) -> i64 {
        self.tiers
            .get(&tier_id)
            .map_or(10_000, |t| t.points_multiplier_e4)
    }
}

/// The Postgres channel the revision's trigger notifies on (named in the migration that
/// created it, `m20261130_000006_program_revision`).
pub const CHANNEL: &str = "tierwise_program";

/// The program's revision as `db` sees it.
pub async fn revision(db: &impl ConnectionTrait) -> DomainResult<i64> {
    #[derive(FromQueryResult)]
    struct Row {
        revision: i64,
    }
    let row = Row::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT revision FROM program_revision WHERE id = 1",
    ))
    .one(db)
    .await?;
    Ok(row.map_or(0, |r| r.revision))
}

/// This process's snapshot and the newest revision it knows of.
#[derive(Default)]
pub struct Snapshots {
    /// The snapshot and the revision it was read at (or after: the revision is read
    /// first, so a snapshot is never labelled newer than it is).
    held: RwLock<Option<(i64, Arc<Program>)>>,
    newest: AtomicI64,
}

impl Snapshots {
    /// The program as of now on `db` (inside a transaction: as that transaction sees it).
    pub async fn current(&self, db: &impl ConnectionTrait) -> DomainResult<Arc<Program>> {
        let revision = revision(db).await?;
        self.saw(revision);
        if let Some(program) = self.held_at(|held| held == revision) {
            return Ok(program);
        }
        let program = Arc::new(Program::load(db).await?);
        if let Ok(mut held) = self.held.write()
            && held.as_ref().is_none_or(|(at, _)| *at <= revision)
        {
            *held = Some((revision, program.clone()));
        }
        Ok(program)
    }

    /// The snapshot of the newest revision this process knows of: no statement while it
    /// holds, and [`current`](Self::current) when it does not.
    pub async fn recent(&self, db: &impl ConnectionTrait) -> DomainResult<Arc<Program>> {
        let newest = self.newest.load(Ordering::Acquire);
        match self.held_at(|held| held >= newest) {
            Some(program) => Ok(program),
            None => self.current(db).await,
        }
    }

    /// Records that the database's program is at `revision` (or later): snapshots read
    /// before it are no longer served by [`recent`](Self::recent).
    pub fn saw(&self, revision: i64) {
        self.newest.fetch_max(revision, Ordering::AcqRel);
    }

    fn held_at(&self, fits: impl Fn(i64) -> bool) -> Option<Arc<Program>> {
        let held = self.held.read().ok()?;
        let (at, program) = held.as_ref()?;
        fits(*at).then(|| program.clone())
    }
}
