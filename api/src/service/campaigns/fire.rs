//! Firing campaigns. Two ways in, one set of rules (`domain::campaign::Book`):
//! - **Interactions** fire INTERACTION campaigns inside the recording's own transaction
//!   (`ForInteractions`): loaded and checked for the whole batch in a fixed number of
//!   statements, decided per interaction by the recording's rules (`apply`), which put
//!   the bonus in the ledger beside the points it multiplies, and written with
//!   `write_firings`.
//! - **Causes** (a tier change, a stage change, a rewarded referral, a birthday, a lot
//!   about to expire, entering a segment) fire through `fire_causes`, in transactions of
//!   their own, from the outbox consumer (`jobs::automations`), the reminders job and the
//!   evaluation job; entering a segment also fires live, in a recording's transaction
//!   (`live_segment_entries`).
//!
//! Locks are always taken in one order: customers (in id order), then what the firing
//! writes (a segment's memory), then campaign rows (in id order). Two writers firing
//! the same campaign for overlapping customers queue; none waits on the other in turn.
//!
//! Every firing is logged once per campaign, customer and cause (`campaign_firing`'s
//! unique key), under the customers' locks, so a retried write, a rerun or a second
//! replica finds it logged and does nothing. A campaign's budget is read and written
//! under its row's lock, so parallel writes queue on it and never overspend.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::campaign_segment_member as remembered;
use entity::enums::{CampaignTriggerKind, EventTopic, PointsEntryKind};
use entity::{campaign, customer, interaction, points_entry};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use serde_json::json;
use uuid::Uuid;

use super::condition_of;
use crate::domain::DomainResult;
use crate::domain::campaign::{ActionKind, Book, Firing, Given, Rules, Spent, multiplier_room};
use crate::store::program_snapshot::Program;
use crate::store::{Db, campaigns, customers, now, outbox, points, segments};

/// The INTERACTION campaigns a recording may fire, with what they are decided against.
#[derive(Debug)]
pub struct ForInteractions {
    /// Running when the batch was read, oldest first.
    campaigns: Vec<Candidate>,
    book: Book,
    zone: chrono_tz::Tz,
}

impl Default for ForInteractions {
    fn default() -> Self {
        Self {
            campaigns: Vec::new(),
            book: Book::default(),
            zone: chrono_tz::Tz::UTC,
        }
    }
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
    /// Reads the active INTERACTION campaigns that may fire for the batch's
    /// `interactions` (those whose trigger matches one of them and whose condition admits
    /// its customer: one statement per campaign with a condition, the rules' context read
    /// once), what each customer got from them (for limits), and, last, the budgets of
    /// those left (locked: parallel recordings firing one budget queue from here to
    /// their commit). A campaign whose budget ran out is not even read further.
    pub async fn load(
        txn: &impl ConnectionTrait,
        program: &Program,
        interactions: &[interaction::Model],
    ) -> DomainResult<Self> {
        let zone = program.settings.zone();
        let backend = txn.get_database_backend();
        let mut context: Option<segments::RuleContext> = None;
        let mut candidates = Vec::new();
        let running = program.campaigns_of(CampaignTriggerKind::Interaction);
        for row in running.filter(|row| row.budget_exhausted_at.is_none()) {
            let Ok(rules) = Rules::of(row)
                .inspect_err(|error| tracing::error!(%error, "a campaign is skipped"))
            else {
                continue;
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
                Some(None) => continue,
                Some(Some(rule)) => {
                    if context.is_none() {
                        context = Some(segments::RuleContext::load(txn).await?);
                    }
                    let condition = context
                        .as_ref()
                        .map(|c| c.matching(&rule, backend))
                        .unwrap_or_else(|| Expr::val(false));
                    let admitted = campaigns::matching(txn, &condition, &customers).await?;
                    if admitted.is_empty() {
                        continue;
                    }
                    Some(admitted)
                }
            };
            candidates.push(Candidate { rules, admitted });
        }
        let customers: Vec<Uuid> = interactions.iter().map(|i| i.customer_id).collect();
        let mut book = Book {
            given: given_to(txn, candidates.iter().map(|c| &c.rules), &customers).await?,
            ..Book::default()
        };
        let budgeted: Vec<Uuid> = candidates
            .iter()
            .filter(|c| c.rules.budget_points.is_some())
            .map(|c| c.rules.id)
            .collect();
        book.spent = campaigns::lock_budgets(txn, &budgeted).await?;
        Ok(Self {
            campaigns: candidates,
            book,
            zone,
        })
    }

    /// The same set for a simulation: one campaign, everyone its condition admits
    /// (`admitted`), nothing given yet.
    pub fn simulated(rules: Rules, admitted: Option<HashSet<Uuid>>, zone: chrono_tz::Tz) -> Self {
        Self {
            campaigns: vec![Candidate { rules, admitted }],
            book: Book::default(),
            zone,
        }
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
        let mut room = multiplier_room(earned);
        let mut decided = Vec::new();
        for (index, candidate) in self.campaigns.iter().enumerate() {
            let rules = &candidate.rules;
            let customer = interaction.customer_id;
            if !rules.runs_at(interaction.occurred_at)
                || !rules.open_at(at)
                || !rules.trigger.matches_interaction(interaction, self.zone)
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
                // A limit or budget may have cut the firing: the cap counts what it gave.
                room -= std::cmp::min(extra, firing.points);
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

/// What each of `customers` got so far from those of `campaigns` that have a limit.
async fn given_to<'r>(
    txn: &impl ConnectionTrait,
    campaigns: impl Iterator<Item = &'r Rules>,
    customers: &[Uuid],
) -> DomainResult<HashMap<(Uuid, Uuid), Given>> {
    let limited: Vec<Uuid> = campaigns
        .filter(|c| c.limit_per_customer.is_some())
        .map(|c| c.id)
        .collect();
    let mut customers = customers.to_vec();
    customers.sort();
    customers.dedup();
    campaigns::given(txn, &limited, &customers).await
}

/// Writes what the decided firings do besides their points (which the caller put in
/// the ledger): saves the budgets they changed, logs them, tags customers, adds them to
/// lists, and announces `automation.fired` for those that notify.
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
/// fired. Causes already logged are left out first, without locks (an hourly job that
/// finds today's birthdays again locks nobody); what is left is checked again under the
/// customers' locks, so two replicas handing over the same cause fire it once.
pub async fn fire_causes(db: &Db, campaign_id: Uuid, causes: Vec<Cause>) -> DomainResult<usize> {
    let mut fired = 0;
    for chunk in causes.chunks(CHUNK) {
        let keys: Vec<(Uuid, String)> = chunk
            .iter()
            .map(|c| (c.customer_id, c.cause.clone()))
            .collect();
        let logged = campaigns::logged_causes(db.conn(), campaign_id, &keys).await?;
        let fresh: Vec<Cause> = chunk
            .iter()
            .filter(|c| !logged.contains(&(c.customer_id, c.cause.clone())))
            .cloned()
            .collect();
        if fresh.is_empty() {
            continue;
        }
        let outcome = db
            .write(move |txn| {
                Box::pin(async move {
                    let ids: Vec<Uuid> = fresh.iter().map(|c| c.customer_id).collect();
                    let balances = customers::lock_live_balances_in_order(txn, &ids).await?;
                    fire_chunk(txn, campaign_id, &balances, &fresh).await
                })
            })
            .await?;
        match outcome {
            Some(firings) => fired += firings.len(),
            // Paused or ended meanwhile: the rest is not fired either.
            None => break,
        }
    }
    Ok(fired)
}

/// Fires one chunk of causes, for customers whose `balances` the caller read under
/// their locks (those erased are not there, and get nothing). The campaign is read
/// under its row's lock, as it is now (an operator may have paused, changed and started
/// it again since the causes were found); `None` when it no longer runs.
async fn fire_chunk(
    txn: &impl ConnectionTrait,
    campaign_id: Uuid,
    balances: &HashMap<Uuid, i64>,
    chunk: &[Cause],
) -> DomainResult<Option<Vec<Firing>>> {
    let ids: Vec<Uuid> = chunk.iter().map(|c| c.customer_id).collect();
    let keys: Vec<(Uuid, String)> = chunk
        .iter()
        .map(|c| (c.customer_id, c.cause.clone()))
        .collect();
    let logged = campaigns::logged_causes(txn, campaign_id, &keys).await?;
    let Some(current) = campaigns::find_for_update(txn, campaign_id).await? else {
        return Ok(None);
    };
    if current.status != entity::enums::CampaignStatus::Active {
        return Ok(None);
    }
    let rules = Rules::of(&current)?;
    let admitted = match condition_of(&rules) {
        None => None,
        Some(None) => Some(HashSet::new()),
        Some(Some(rule)) => {
            let context = segments::RuleContext::load(txn).await?;
            let condition = context.matching(&rule, txn.get_database_backend());
            Some(campaigns::matching(txn, &condition, &ids).await?)
        }
    };
    let mut book = Book {
        given: given_to(txn, std::iter::once(&rules), &ids).await?,
        ..Book::default()
    };
    if rules.budget_points.is_some() {
        let spent = Spent {
            points: current.budget_spent,
            exhausted_at: current.budget_exhausted_at,
        };
        book.spent.insert(rules.id, spent);
    }
    let mut firings = Vec::new();
    for cause in chunk {
        let customer = cause.customer_id;
        if !balances.contains_key(&customer)
            || logged.contains(&(customer, cause.cause.clone()))
            || admitted.as_ref().is_some_and(|a| !a.contains(&customer))
            || !rules.runs_at(cause.at)
            || !rules.open_at(now())
        {
            continue;
        }
        if let Ok(firing) = book.fire(&rules, customer, cause.cause.clone(), rules.award(), now()) {
            firings.push((&rules, firing));
        }
    }
    award(txn, balances, &firings).await?;
    write_firings(txn, &firings, &book).await?;
    Ok(Some(
        firings.into_iter().map(|(_, firing)| firing).collect(),
    ))
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
            available_at: None,
            transfer_id: None,
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
/// Returns the points each customer got.
pub async fn live_segment_entries(
    txn: &impl ConnectionTrait,
    program: &Program,
    customers: &[Uuid],
    cause: &str,
) -> DomainResult<HashMap<Uuid, i64>> {
    let mut given: HashMap<Uuid, i64> = HashMap::new();
    let watching: Vec<&campaign::Model> = program
        .campaigns_of(CampaignTriggerKind::EnteredSegment)
        .collect();
    if watching.is_empty() {
        return Ok(given);
    }
    let mut balances = customers::lock_live_balances_in_order(txn, customers).await?;
    for campaign in watching {
        let Some(members) = segment_members(txn, campaign).await? else {
            continue;
        };
        forget_who_left(txn, campaign.id, &members, Some(customers)).await?;
        let entered = remember_who_came(txn, campaign.id, &members, Some(customers)).await?;
        if entered.is_empty() {
            continue;
        }
        let fired = fire_chunk(txn, campaign.id, &balances, &causes(entered, cause)).await?;
        // The next campaign's entries chain on the balances this one left.
        for firing in fired.unwrap_or_default() {
            *balances.entry(firing.customer_id).or_default() += firing.points;
            *given.entry(firing.customer_id).or_default() += firing.points;
        }
    }
    Ok(given)
}

/// After an evaluation run (which moves what dynamic segments read), fires each
/// ENTERED_SEGMENT campaign for those who entered its segment since it last looked.
/// Those who left are forgotten first, in a transaction of their own that holds no
/// customer lock; those who came are remembered and fired in the same transactions,
/// 500 at a time, under their customers' locks, the order the live path takes them in.
/// A campaign that fails is logged and the others go on. Returns how many fired.
pub async fn segment_entries_after_run(db: &Db, run: &str) -> DomainResult<usize> {
    let mut fired = 0;
    for campaign in campaigns::active(db.conn(), CampaignTriggerKind::EnteredSegment).await? {
        match entries_of(db, &campaign, run).await {
            Ok(count) => fired += count,
            Err(error) => tracing::error!(campaign = %campaign.id, %error,
                "an ENTERED_SEGMENT campaign failed; the others go on"),
        }
    }
    Ok(fired)
}

async fn entries_of(db: &Db, campaign: &campaign::Model, run: &str) -> DomainResult<usize> {
    let Some(members) = segment_members(db.conn(), campaign).await? else {
        return Ok(0);
    };
    let id = campaign.id;
    let gone = members.clone();
    db.write(move |txn| Box::pin(async move { forget_who_left(txn, id, &gone, None).await }))
        .await?;
    let candidates = not_remembered(db.conn(), id, &members).await?;
    let mut fired = 0;
    for chunk in candidates.chunks(CHUNK) {
        let (chunk, members, cause) = (chunk.to_vec(), members.clone(), format!("entered:{run}"));
        let outcome = db
            .write(move |txn| {
                Box::pin(async move {
                    let balances = customers::lock_live_balances_in_order(txn, &chunk).await?;
                    let entered = remember_who_came(txn, id, &members, Some(&chunk)).await?;
                    fire_chunk(txn, id, &balances, &causes(entered, &cause)).await
                })
            })
            .await?;
        match outcome {
            Some(firings) => fired += firings.len(),
            None => break,
        }
    }
    Ok(fired)
}

fn causes(customers: Vec<Uuid>, cause: &str) -> Vec<Cause> {
    let at = now();
    customers
        .into_iter()
        .map(|customer_id| Cause {
            customer_id,
            cause: cause.to_owned(),
            at,
        })
        .collect()
}

/// Remembers who is in an ENTERED_SEGMENT campaign's segment now, without firing: those
/// already in it when it starts have not entered it.
pub async fn remember_segment_members(
    txn: &impl ConnectionTrait,
    campaign: &campaign::Model,
) -> DomainResult<()> {
    if let Some(members) = segment_members(txn, campaign).await? {
        forget_who_left(txn, campaign.id, &members, None).await?;
        remember_who_came(txn, campaign.id, &members, None).await?;
    }
    Ok(())
}

/// The condition on `customer` that selects the members of an ENTERED_SEGMENT
/// campaign's segment now; `None` for another trigger. A segment deleted since has none.
async fn segment_members(
    db: &impl ConnectionTrait,
    campaign: &campaign::Model,
) -> DomainResult<Option<Expr>> {
    let rules = Rules::of(campaign)?;
    let Some(segment_id) = rules.trigger.segment_id else {
        return Ok(None);
    };
    Ok(Some(match segments::find(db, segment_id).await? {
        Some(segment) => {
            let context = segments::RuleContext::load(db).await?;
            segments::members_of(&segment, db.get_database_backend(), now(), &context)?
        }
        None => Expr::val(false),
    }))
}

/// `members`, narrowed to `only` when given.
fn among(members: &Expr, only: Option<&[Uuid]>) -> Expr {
    match only {
        Some(only) => members
            .clone()
            .and(Expr::col((customer::Entity, customer::Column::Id)).is_in(only.iter().copied())),
        None => members.clone(),
    }
}

/// Whether the campaign remembers the customer of the enclosing query.
fn remembered_already(campaign_id: Uuid) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(remembered::Entity)
        .and_where(Expr::col((remembered::Entity, remembered::Column::CampaignId)).eq(campaign_id))
        .and_where(
            Expr::col((remembered::Entity, remembered::Column::CustomerId))
                .equals((customer::Entity, customer::Column::Id)),
        )
        .to_owned()
}

/// Forgets those the campaign remembers (of `only`, or all) who are no longer members.
async fn forget_who_left(
    txn: &impl ConnectionTrait,
    campaign_id: Uuid,
    members: &Expr,
    only: Option<&[Uuid]>,
) -> DomainResult<()> {
    let mut watched =
        Expr::col((remembered::Entity, remembered::Column::CampaignId)).eq(campaign_id);
    if let Some(only) = only {
        watched = watched.and(
            Expr::col((remembered::Entity, remembered::Column::CustomerId))
                .is_in(only.iter().copied()),
        );
    }
    let still_member = Query::select()
        .expr(Expr::val(1))
        .from(customer::Entity)
        .and_where(
            Expr::col((customer::Entity, customer::Column::Id))
                .equals((remembered::Entity, remembered::Column::CustomerId)),
        )
        .and_where(members.clone())
        .to_owned();
    let left = Query::delete()
        .from_table(remembered::Entity)
        .and_where(watched)
        .and_where(Expr::exists(still_member).not())
        .to_owned();
    let backend = txn.get_database_backend();
    txn.execute_raw(backend.build(&left)).await?;
    Ok(())
}

/// Remembers the members (of `only`, or all) the campaign did not remember, and returns
/// them: those who came in. A member remembered meanwhile by another writer is left to
/// it (`ON CONFLICT DO NOTHING`), so each entry is returned to one writer only.
async fn remember_who_came(
    txn: &impl ConnectionTrait,
    campaign_id: Uuid,
    members: &Expr,
    only: Option<&[Uuid]>,
) -> DomainResult<Vec<Uuid>> {
    let came = Query::insert()
        .into_table(remembered::Entity)
        .columns([
            remembered::Column::CampaignId,
            remembered::Column::CustomerId,
        ])
        .select_from(
            Query::select()
                .expr(Expr::val(campaign_id))
                .column((customer::Entity, customer::Column::Id))
                .from(customer::Entity)
                .and_where(among(members, only))
                .and_where(Expr::exists(remembered_already(campaign_id)).not())
                .to_owned(),
        )
        .map_err(|e| crate::domain::DomainError::Internal(e.into()))?
        .on_conflict(
            OnConflict::columns([
                remembered::Column::CampaignId,
                remembered::Column::CustomerId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .returning_col(remembered::Column::CustomerId)
        .to_owned();
    let backend = txn.get_database_backend();
    let rows = txn.query_all_raw(backend.build(&came)).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "customer_id")?))
        .collect()
}

/// The members the campaign does not remember (read only: the candidates of a run).
async fn not_remembered(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    members: &Expr,
) -> DomainResult<Vec<Uuid>> {
    let condition = members
        .clone()
        .and(Expr::exists(remembered_already(campaign_id)).not());
    customers::ids_where(db, condition).await
}
