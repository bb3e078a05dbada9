//! Firing campaigns. Two ways in, one set of rules (`domain::campaign::Book`):
//! - **Interactions** fire INTERACTION campaigns inside the recording's own transaction
//!   (`ForInteractions`): loaded and checked for the whole batch in a fixed number of
//!   statements, decided per interaction by the recording's rules (`apply`), which put
//!   the bonus in the ledger beside the points it multiplies, and written with
//!   `write_firings`.
//! - **Causes** (a tier change, a stage change, a rewarded referral, a birthday, a lot
//!   about to expire, entering a segment) fire through `fire_causes`, in a transaction of
//!   their own, from the outbox consumer (`jobs::automations`), the reminders job and the
//!   evaluation job.
//!
//! Every firing is logged once per campaign, customer and cause (`campaign_firing`'s
//! unique key), under the customers' locks, so a retried write, a rerun or a second
//! replica finds it logged and does nothing. A campaign's budget is read and written
//! under its row's lock, so parallel writes queue on it and never overspend.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::enums::{CampaignTriggerKind, EventTopic, PointsEntryKind};
use entity::{campaign, interaction, points_entry};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use super::condition_of;
use crate::domain::DomainResult;
use crate::domain::campaign::{ActionKind, Book, Firing, Rules, multiplier_room};
use crate::store::program_snapshot::Program;
use crate::store::{Db, campaigns, customers, now, outbox, points, segments};

/// The INTERACTION campaigns a recording may fire, with what they are decided against.
#[derive(Debug, Default)]
pub struct ForInteractions {
    /// Running when the batch was read, oldest first.
    campaigns: Vec<Candidate>,
    book: Book,
    zone: Option<chrono_tz::Tz>,
}

#[derive(Debug)]
struct Candidate {
    rules: Rules,
    /// The customers its condition admits; `None` when it has none.
    admitted: Option<HashSet<Uuid>>,
}

/// One decided firing of an interaction, and the campaign's index in its set.
#[derive(Debug, Clone)]
pub struct Decided {
    pub campaign: usize,
    pub firing: Firing,
}

impl ForInteractions {
    /// Reads the active INTERACTION campaigns and, for the batch's `interactions`, the
    /// customers each one's condition admits (one statement per campaign with a
    /// condition), the firings each customer had (for limits) and the budgets (locked).
    pub async fn load(
        txn: &impl ConnectionTrait,
        program: &Program,
        interactions: &[&interaction::Model],
    ) -> DomainResult<Self> {
        let rows = campaigns::active(txn, CampaignTriggerKind::Interaction).await?;
        let zone = program.settings.zone();
        let mut candidates = Vec::new();
        for row in &rows {
            let rules = match Rules::of(row) {
                Ok(rules) => rules,
                Err(error) => {
                    tracing::error!(%error, "a campaign is skipped");
                    continue;
                }
            };
            let customers: Vec<Uuid> = interactions
                .iter()
                .filter(|i| {
                    rules.runs_at(i.occurred_at) && rules.trigger.matches_interaction(i, zone)
                })
                .map(|i| i.customer_id)
                .collect();
            if customers.is_empty() {
                continue;
            }
            let admitted = match condition_of(&rules) {
                None => None,
                Some(None) => Some(HashSet::new()),
                Some(Some(rule)) => Some(campaigns::matching(txn, &rule, &customers).await?),
            };
            candidates.push(Candidate { rules, admitted });
        }
        let book = book_for(
            txn,
            candidates.iter().map(|c| &c.rules),
            interactions.iter().map(|i| i.customer_id),
        )
        .await?;
        Ok(Self {
            campaigns: candidates,
            book,
            zone: Some(zone),
        })
    }

    /// The same set for a simulation: one campaign, everyone its condition admits
    /// (`admitted`), nothing fired yet.
    pub fn simulated(rules: Rules, admitted: Option<HashSet<Uuid>>, zone: chrono_tz::Tz) -> Self {
        Self {
            campaigns: vec![Candidate { rules, admitted }],
            book: Book::default(),
            zone: Some(zone),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.campaigns.is_empty()
    }

    /// The firings `interaction` causes, which earned `earned` points itself, in the
    /// campaigns' order: each campaign that runs when it occurred, whose trigger matches
    /// it and whose condition admits its customer, within its limit and budget. The
    /// multipliers' extras share one cap (`MAX_MULTIPLIER`).
    pub fn decide(
        &mut self,
        interaction: &interaction::Model,
        earned: i64,
        at: DateTime<Utc>,
    ) -> Vec<Decided> {
        let Some(zone) = self.zone else {
            return Vec::new();
        };
        let mut room = multiplier_room(earned);
        let mut decided = Vec::new();
        for (index, candidate) in self.campaigns.iter().enumerate() {
            let rules = &candidate.rules;
            let customer = interaction.customer_id;
            if !rules.runs_at(interaction.occurred_at)
                || !rules.trigger.matches_interaction(interaction, zone)
                || candidate
                    .admitted
                    .as_ref()
                    .is_some_and(|admitted| !admitted.contains(&customer))
            {
                continue;
            }
            let extra = rules.extra(earned, room);
            let cause = format!("interaction:{}", interaction.id);
            if let Ok(firing) = self
                .book
                .fire(rules, customer, cause, rules.award() + extra, at)
            {
                room -= extra;
                decided.push(Decided {
                    campaign: index,
                    firing,
                });
            }
        }
        decided
    }

    pub fn rules(&self, index: usize) -> &Rules {
        &self.campaigns[index].rules
    }

    /// What the budgets' campaigns have spent after the decisions.
    pub fn book(&self) -> &Book {
        &self.book
    }
}

/// Reads what firings of `campaigns` for `customers` are decided against: what each
/// customer got so far (for campaigns with a limit) and each budget, locked.
async fn book_for<'r>(
    txn: &impl ConnectionTrait,
    campaigns: impl Iterator<Item = &'r Rules>,
    customers: impl Iterator<Item = Uuid>,
) -> DomainResult<Book> {
    let campaigns: Vec<&Rules> = campaigns.collect();
    let limited: Vec<Uuid> = campaigns
        .iter()
        .filter(|c| c.limit_per_customer.is_some())
        .map(|c| c.id)
        .collect();
    let budgeted: Vec<Uuid> = campaigns
        .iter()
        .filter(|c| c.budget_points.is_some())
        .map(|c| c.id)
        .collect();
    let customers: Vec<Uuid> = customers.collect::<HashSet<_>>().into_iter().collect();
    Ok(Book {
        given: campaigns::given(txn, &limited, &customers).await?,
        spent: campaigns::lock_budgets(txn, &budgeted).await?,
        changed: HashSet::new(),
    })
}

/// Writes what the decided firings do besides their points (which the caller put in
/// the ledger): saves the budgets they changed, logs them, tags customers, adds them to lists, and
/// announces `automation.fired` for those that notify.
pub async fn write_firings(
    txn: &impl ConnectionTrait,
    firings: &[(&Rules, Firing)],
    book: &Book,
) -> DomainResult<()> {
    // A budget that ran out changed without a firing: it is saved all the same.
    let spent = book
        .spent
        .iter()
        .filter(|(id, _)| book.changed.contains(id))
        .map(|(id, spent)| (*id, *spent))
        .collect();
    campaigns::save_spent(txn, &spent).await?;
    if firings.is_empty() {
        return Ok(());
    }
    let plain: Vec<Firing> = firings.iter().map(|(_, f)| f.clone()).collect();
    campaigns::log_firings(txn, &plain).await?;
    act(txn, firings).await
}

/// The actions other than points, for each firing.
async fn act(txn: &impl ConnectionTrait, firings: &[(&Rules, Firing)]) -> DomainResult<()> {
    let mut tags: Vec<(Uuid, String)> = Vec::new();
    let mut lists: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut notices = Vec::new();
    for (rules, firing) in firings {
        for action in &rules.actions {
            match action.kind {
                ActionKind::AddTag => {
                    if let Some(tag) = &action.tag {
                        tags.push((firing.customer_id, tag.clone()));
                    }
                }
                ActionKind::AddToSegment => {
                    if let Some(segment) = action.segment_id {
                        lists.entry(segment).or_default().push(firing.customer_id);
                    }
                }
                ActionKind::Notify => {
                    let payload = json!({
                        "campaign": { "id": rules.id, "name": rules.name },
                        "message": action.message,
                        "cause": firing.cause,
                        "points": firing.points,
                        "firedAt": firing.at,
                    });
                    notices.push((Some(firing.customer_id), rules.id, Some(payload)));
                }
                ActionKind::AwardPoints | ActionKind::MultiplyPoints => {}
            }
        }
    }
    customers::add_tags(txn, &tags).await?;
    for (segment, members) in lists {
        // A list deleted since the campaign was saved is simply not added to.
        if segments::find(txn, segment).await?.is_some() {
            segments::add_members(txn, segment, &members).await?;
        }
    }
    outbox::emit_with_payloads(txn, EventTopic::AutomationFired, notices).await
}

/// Whether a tier change is one TIER_CHANGED campaigns fire on: every move but a new
/// customer's first tier.
pub fn fires_on_tier_change(change: &entity::tier_change::Model) -> bool {
    change.reason != entity::enums::TierChangeReason::Created
}

/// Something that happened to a customer and may fire a campaign: a tier change, a
/// birthday, a lot about to expire…
#[derive(Debug, Clone)]
pub struct Cause {
    pub customer_id: Uuid,
    /// Unique per campaign and customer: the same cause never fires twice.
    pub cause: String,
    pub at: DateTime<Utc>,
}

/// Causes handled per transaction.
const CHUNK: usize = 500;

/// Fires `campaign` for each of `causes` that its condition, limit and budget allow and
/// that did not fire it before, in transactions of `CHUNK` causes; returns how many
/// fired. The customers are locked in id order, and what fired is read again under
/// their locks, so two replicas handing over the same cause fire it once.
pub async fn fire_causes(
    db: &Db,
    campaign: &campaign::Model,
    causes: Vec<Cause>,
) -> DomainResult<usize> {
    let rules = Rules::of(campaign)?;
    let mut fired = 0;
    for chunk in causes.chunks(CHUNK) {
        let (rules, chunk) = (rules.clone(), chunk.to_vec());
        let outcome = db
            .write(move |txn| Box::pin(async move { fire_chunk(txn, &rules, &chunk).await }))
            .await?;
        match outcome {
            Some(count) => fired += count,
            // Paused or ended meanwhile: the rest is not fired either.
            None => break,
        }
    }
    Ok(fired)
}

/// One transaction of `fire_causes`; `None` when the campaign no longer runs.
async fn fire_chunk(
    txn: &impl ConnectionTrait,
    rules: &Rules,
    chunk: &[Cause],
) -> DomainResult<Option<usize>> {
    let ids: Vec<Uuid> = chunk.iter().map(|c| c.customer_id).collect();
    let balances = customers::lock_live_balances_in_order(txn, &ids).await?;
    let keys: Vec<(Uuid, String)> = chunk
        .iter()
        .map(|c| (c.customer_id, c.cause.clone()))
        .collect();
    let logged = campaigns::logged_causes(txn, rules.id, &keys).await?;
    let admitted = match condition_of(rules) {
        None => None,
        Some(None) => Some(HashSet::new()),
        Some(Some(rule)) => Some(campaigns::matching(txn, &rule, &ids).await?),
    };
    // The campaign may have been paused or ended since the cause was read.
    let current = campaigns::find_for_update(txn, rules.id).await?;
    if current.is_none_or(|c| c.status != entity::enums::CampaignStatus::Active) {
        return Ok(None);
    }
    let mut book = book_for(txn, std::iter::once(rules), ids.iter().copied()).await?;
    let mut firings = Vec::new();
    for cause in chunk {
        let customer = cause.customer_id;
        if !balances.contains_key(&customer)
            || logged.contains(&(customer, cause.cause.clone()))
            || admitted.as_ref().is_some_and(|a| !a.contains(&customer))
            || !rules.runs_at(cause.at)
        {
            continue;
        }
        if let Ok(firing) = book.fire(rules, customer, cause.cause.clone(), rules.award(), now()) {
            firings.push((rules, firing));
        }
    }
    award(txn, &balances, &firings).await?;
    write_firings(txn, &firings, &book).await?;
    Ok(Some(firings.len()))
}

/// The `CAMPAIGN_BONUS` entries of firings outside an interaction, chained on the
/// balances read under the customers' locks.
async fn award(
    txn: &impl ConnectionTrait,
    balances: &HashMap<Uuid, i64>,
    firings: &[(&Rules, Firing)],
) -> DomainResult<()> {
    let at = now();
    let mut running = balances.clone();
    let mut entries = Vec::new();
    for (rules, firing) in firings.iter().filter(|(_, f)| f.points > 0) {
        let balance = running.entry(firing.customer_id).or_default();
        *balance += firing.points;
        entries.push(points_entry::Model {
            id: Uuid::now_v7(),
            customer_id: firing.customer_id,
            delta: firing.points,
            balance_after: *balance,
            kind: PointsEntryKind::CampaignBonus,
            reason: Some(format!("campaign {}", rules.name)),
            expires_at: None,
            interaction_id: None,
            campaign_id: Some(rules.id),
            created_by: "campaign".to_owned(),
            created_at: at,
        });
    }
    let deltas: Vec<(Uuid, i64)> = entries.iter().map(|e| (e.customer_id, e.delta)).collect();
    points::add_to_balances(txn, &deltas).await?;
    points::insert_entries(txn, &entries).await
}

/// Fires the ENTERED_SEGMENT campaigns for those of `customers` (a recording's, locked by
/// it) who entered their segments with what the recording wrote: the live half of the
/// trigger, whose other half runs after evaluation runs. `cause` names the recording.
pub async fn live_segment_entries(
    txn: &impl ConnectionTrait,
    customers: &[Uuid],
    cause: &str,
) -> DomainResult<()> {
    for campaign in campaigns::active(txn, CampaignTriggerKind::EnteredSegment).await? {
        let Ok(rules) = Rules::of(&campaign)
            .inspect_err(|error| tracing::error!(%error, "a campaign is skipped"))
        else {
            continue;
        };
        let entered = segment_entries(txn, &campaign, Some(customers)).await?;
        if entered.is_empty() {
            continue;
        }
        let at = now();
        let causes: Vec<Cause> = entered
            .into_iter()
            .map(|customer_id| Cause {
                customer_id,
                cause: cause.to_owned(),
                at,
            })
            .collect();
        fire_chunk(txn, &rules, &causes).await?;
    }
    Ok(())
}

/// Remembers who is in an ENTERED_SEGMENT campaign's segment now, without firing: those
/// already in it when it starts have not entered it.
pub async fn remember_segment_members(
    txn: &impl ConnectionTrait,
    campaign: &campaign::Model,
) -> DomainResult<()> {
    segment_entries(txn, campaign, None).await.map(|_| ())
}

/// Brings an ENTERED_SEGMENT campaign's memory of its segment up to date, for every
/// customer or `only` these: forgets those who left, remembers those who came in, and
/// returns the latter (two statements, anti-joins that scale with the segment).
pub async fn segment_entries(
    txn: &impl ConnectionTrait,
    campaign: &campaign::Model,
    only: Option<&[Uuid]>,
) -> DomainResult<Vec<Uuid>> {
    use entity::campaign_segment_member as remembered;
    use entity::customer;
    let rules = Rules::of(campaign)?;
    let Some(segment_id) = rules.trigger.segment_id else {
        return Ok(Vec::new());
    };
    let backend = txn.get_database_backend();
    let mut members = match segments::find(txn, segment_id).await? {
        Some(segment) => {
            let context = segments::RuleContext::load(txn).await?;
            segments::members_of(&segment, backend, now(), &context)?
        }
        None => Expr::val(false),
    };
    let mut watched = Expr::col((remembered::Entity, remembered::Column::CampaignId)).eq(campaign.id);
    if let Some(only) = only {
        members = members.and(Expr::col((customer::Entity, customer::Column::Id)).is_in(only.iter().copied()));
        watched = watched.and(
            Expr::col((remembered::Entity, remembered::Column::CustomerId)).is_in(only.iter().copied()),
        );
    }
    let is_member = |id: Expr| {
        Query::select()
            .expr(Expr::val(1))
            .from(customer::Entity)
            .and_where(Expr::col((customer::Entity, customer::Column::Id)).eq(id))
            .and_where(members.clone())
            .to_owned()
    };
    let left = Query::delete()
        .from_table(remembered::Entity)
        .and_where(watched)
        .and_where(
            Expr::exists(is_member(Expr::col((remembered::Entity, remembered::Column::CustomerId))))
                .not(),
        )
        .to_owned();
    txn.execute_raw(backend.build(&left)).await?;
    let remembered_already = Query::select()
        .expr(Expr::val(1))
        .from(remembered::Entity)
        .and_where(Expr::col((remembered::Entity, remembered::Column::CampaignId)).eq(campaign.id))
        .and_where(
            Expr::col((remembered::Entity, remembered::Column::CustomerId))
                .equals((customer::Entity, customer::Column::Id)),
        )
        .to_owned();
    let came = Query::insert()
        .into_table(remembered::Entity)
        .columns([remembered::Column::CampaignId, remembered::Column::CustomerId])
        .select_from(
            Query::select()
                .expr(Expr::val(campaign.id))
                .column((customer::Entity, customer::Column::Id))
                .from(customer::Entity)
                .and_where(members.clone())
                .and_where(Expr::exists(remembered_already).not())
                .to_owned(),
        )
        .map_err(|e| crate::domain::DomainError::Internal(e.into()))?
        .returning_col(remembered::Column::CustomerId)
        .to_owned();
    let rows = txn.query_all_raw(backend.build(&came)).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "customer_id")?))
        .collect()
}
