//! Automations: the outbox consumer that fires campaigns on what committed — a tier
//! change (TIER_CHANGED), a move between lifecycle stages (LIFECYCLE_CHANGED: `AT_RISK`
//! is the win-back trigger; a customer's moves into one stage fire once a day), a rewarded
//! referral (REFERRAL_REWARDED, for its referrer). Tier changes and stage moves that a
//! run as of a past date found replay the past: they are not news and fire nothing.
//!
//! It keeps its position in `outbox_cursor`, so a restart resumes where it stopped and
//! events that committed while no server ran still fire. Every replica runs one; the
//! firing log's unique key makes their work idempotent. A batch that fails (the database
//! away) is read again; a campaign whose stored rules cannot be read is skipped, with a
//! log line, so that it cannot hold the others back.

use std::collections::HashMap;

use entity::enums::{CampaignTriggerKind, EventTopic, LifecycleStage};
use entity::tier_change;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::domain::DomainResult;
use crate::domain::campaign::Rules;
use crate::outbox::Consumer;
use crate::service::campaigns::fire::{self, Cause, fires_on_tier_change};
use crate::store::outbox::{self, Position, Stored};
use crate::store::{Db, campaigns, evaluation_runs, referrals, tiers};

/// The consumer's name in `outbox_cursor`.
pub const CONSUMER: &str = "automations";

/// The triggers this consumer serves.
const KINDS: [CampaignTriggerKind; 3] = [
    CampaignTriggerKind::TierChanged,
    CampaignTriggerKind::LifecycleChanged,
    CampaignTriggerKind::ReferralRewarded,
];

pub struct Automations {
    /// Firings are written through it (on SQLite, in the process's turn to write).
    db: Db,
}

impl Automations {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Consumer for Automations {
    fn name(&self) -> &'static str {
        "automations"
    }

    /// Where the last run stopped; the head the first time.
    async fn start(&mut self, db: &DatabaseConnection) -> DomainResult<Position> {
        outbox::resume_or_start(db, CONSUMER).await
    }

    async fn consume(&mut self, db: &DatabaseConnection, batch: &[Stored]) -> DomainResult<()> {
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(());
        };
        let relevant = batch.iter().any(|e| {
            matches!(
                e.topic,
                Ok(EventTopic::TierChanged
                    | EventTopic::LifecycleChanged
                    | EventTopic::ReferralRewarded)
            )
        });
        if relevant {
            let running: Vec<_> = campaigns::all_active(db)
                .await?
                .into_iter()
                .filter(|c| KINDS.contains(&c.trigger_kind))
                .collect();
            if !running.is_empty() {
                let causes = Causes::read(db, batch).await?;
                // Every campaign gets its turn; a failure is returned after, so the batch
                // comes again (what did fire is logged and does not fire twice).
                let mut failed = None;
                for campaign in &running {
                    let Ok(rules) = Rules::of(campaign).inspect_err(|error| {
                        tracing::error!(%error, "a campaign is skipped");
                    }) else {
                        continue;
                    };
                    let mine = causes.of(&rules);
                    if mine.is_empty() {
                        continue;
                    }
                    if let Err(error) = fire::fire_causes(&self.db, campaign.id, mine).await {
                        tracing::warn!(campaign = %campaign.id, %error, "a campaign failed to fire; the batch will be read again");
                        failed = Some(error);
                    }
                }
                if let Some(error) = failed {
                    return Err(error);
                }
            }
        }
        outbox::save_cursor(db, CONSUMER, last).await
    }
}

/// The batch's events, with what the triggers compare.
struct Causes {
    tier_changes: Vec<tier_change::Model>,
    tier_keys: HashMap<Uuid, String>,
    /// `(customer, stage moved to, the day it was judged as of, when)`.
    stage_moves: Vec<(
        Uuid,
        LifecycleStage,
        chrono::NaiveDate,
        chrono::DateTime<chrono::Utc>,
    )>,
    /// `(referrer, referral id, when rewarded)`.
    referrals: Vec<(Uuid, Uuid, chrono::DateTime<chrono::Utc>)>,
}

impl Causes {
    async fn read(db: &DatabaseConnection, batch: &[Stored]) -> DomainResult<Self> {
        let (changes, _) = outbox::subjects(db, batch).await?;
        let mut tier_changes: Vec<tier_change::Model> = changes.into_values().collect();
        tier_changes.sort_by_key(|c| (c.changed_at, c.id));
        // Changes a run as of a past date made replay the past: not news (as stage moves).
        let runs: Vec<Uuid> = tier_changes
            .iter()
            .filter_map(|c| c.evaluation_run_id)
            .collect();
        let backdated: std::collections::HashSet<Uuid> = evaluation_runs::find_many(db, &runs)
            .await?
            .into_iter()
            .filter(|run| run.as_of < run.started_at - chrono::TimeDelta::days(1))
            .map(|run| run.id)
            .collect();
        tier_changes.retain(|c| {
            c.evaluation_run_id
                .is_none_or(|run| !backdated.contains(&run))
        });
        let tier_keys = tiers::all(db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.key))
            .collect();
        let stage_moves = batch
            .iter()
            .filter(|e| e.topic == Ok(EventTopic::LifecycleChanged))
            .filter_map(|e| {
                let payload = e.payload.as_ref()?;
                let to = LifecycleStage::parse(payload.get("to")?.as_str()?)?;
                // Events written before moves carried their instant were judged now.
                let as_of = payload
                    .get("asOf")
                    .and_then(|t| {
                        serde_json::from_value::<chrono::DateTime<chrono::Utc>>(t.clone()).ok()
                    })
                    .unwrap_or(e.created_at);
                // A run as of a past date replays the past: what it finds is not news,
                // and flipping a stage back and forth between past and present runs must
                // not pay a win-back each time.
                if as_of < e.created_at - chrono::TimeDelta::days(1) {
                    return None;
                }
                Some((e.customer_id?, to, as_of.date_naive(), e.created_at))
            })
            .collect();
        let referral_ids: Vec<Uuid> = batch
            .iter()
            .filter(|e| e.topic == Ok(EventTopic::ReferralRewarded))
            .map(|e| e.subject_id)
            .collect();
        let referrals = referrals::by_ids(db, &referral_ids)
            .await?
            .into_iter()
            .filter_map(|r| Some((r.referrer_id, r.id, r.rewarded_at?)))
            .collect();
        Ok(Self {
            tier_changes,
            tier_keys,
            stage_moves,
            referrals,
        })
    }

    /// The causes that fire `campaign`'s trigger.
    fn of(&self, campaign: &Rules) -> Vec<Cause> {
        let trigger = &campaign.trigger;
        match trigger.kind() {
            CampaignTriggerKind::TierChanged => self
                .tier_changes
                .iter()
                .filter(|change| fires_on_tier_change(change))
                .filter(|change| {
                    trigger
                        .to_tier_key
                        .as_ref()
                        .is_none_or(|key| self.tier_keys.get(&change.to_tier_id) == Some(key))
                })
                .map(|change| Cause {
                    customer_id: change.customer_id,
                    cause: format!("tier:{}", change.id),
                    at: change.changed_at,
                })
                .collect(),
            CampaignTriggerKind::LifecycleChanged => self
                .stage_moves
                .iter()
                .filter(|(_, to, ..)| Some(*to) == trigger.to_stage)
                .map(|(customer, to, day, at)| Cause {
                    customer_id: *customer,
                    // One move into a stage a day: runs that flip it back and forth
                    // within a day fire once.
                    cause: format!("stage:{}:{day}", to.as_str()),
                    at: *at,
                })
                .collect(),
            CampaignTriggerKind::ReferralRewarded => self
                .referrals
                .iter()
                .map(|(referrer, referral, at)| Cause {
                    customer_id: *referrer,
                    cause: format!("referral:{referral}"),
                    at: *at,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}
