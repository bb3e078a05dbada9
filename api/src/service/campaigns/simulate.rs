//! `simulateCampaign`: the recorded history between two instants replayed through a
//! campaign that is not saved, by the rules the live paths use (`ForInteractions::decide`,
//! `Book::fire`), writing nothing.
//!
//! What is replayed, per trigger:
//! - INTERACTION: the recorded interactions in time order, read in pages that the
//!   trigger's kinds, channels and minimum amount narrow in SQL; a multiplier multiplies
//!   the points each purchase earned then (its `EARN` entries).
//! - TIER_CHANGED: the tier history; REFERRAL_REWARDED: the rewarded referrals (their
//!   referrer); BIRTHDAY: each customer's birthday inside the period.
//! - LIFECYCLE_CHANGED, ENTERED_SEGMENT and POINTS_EXPIRING depend on states Tierwise does
//!   not keep a history of (stages and segment memberships over time, reminders sent);
//!   they are refused with a message saying so.
//!
//! The condition is matched against customers as they are now: the segment language
//! reads current state, and no past state of every field is kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use entity::enums::{
    CampaignTriggerKind, Channel, InteractionKind, PointsEntryKind, ReferralStatus,
};
use entity::{customer, interaction, referral, tier_change};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::condition_of;
use super::fire::ForInteractions;
use crate::domain::campaign::{Book, Draft, Firing, Held, Rules};
use crate::domain::{DomainError, DomainResult};
use crate::store::program_snapshot::Program;
use crate::store::{Db, campaigns, customers, points, program, segments, tiers};

/// The longest period one simulation replays.
pub const MAX_DAYS: i64 = 366;

/// What a campaign would have done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Simulation {
    pub times_fired: i64,
    pub points_awarded: i64,
    pub budget_exhausted_at: Option<DateTime<Utc>>,
    /// Per day in the program's time zone, in order: firings and points.
    pub by_day: Vec<(NaiveDate, i64, i64)>,
    /// Every customer reached, in the order first reached.
    pub customers: Vec<Uuid>,
}

#[derive(Default)]
struct Tally {
    times_fired: i64,
    points_awarded: i64,
    by_day: BTreeMap<NaiveDate, (i64, i64)>,
    seen: HashSet<Uuid>,
    customers: Vec<Uuid>,
}

impl Tally {
    fn count(&mut self, firing: &Firing, zone: chrono_tz::Tz) {
        self.times_fired += 1;
        self.points_awarded += firing.points;
        let day = firing.at.with_timezone(&zone).date_naive();
        let slot = self.by_day.entry(day).or_default();
        slot.0 += 1;
        slot.1 += firing.points;
        if self.seen.insert(firing.customer_id) {
            self.customers.push(firing.customer_id);
        }
    }

    fn finish(self, exhausted_at: Option<DateTime<Utc>>) -> Simulation {
        Simulation {
            times_fired: self.times_fired,
            points_awarded: self.points_awarded,
            budget_exhausted_at: exhausted_at,
            by_day: self
                .by_day
                .into_iter()
                .map(|(day, (fired, points))| (day, fired, points))
                .collect(),
            customers: self.customers,
        }
    }
}

/// Simulations one process runs at once; more wait their turn (each reads up to a
/// year of history).
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// How long one simulation may run before it stops with an error.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Refuses a period that is empty, longer than `MAX_DAYS` or in the future (there is no
/// history there to replay), before any work.
pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> DomainResult<()> {
    if to <= from {
        return Err(DomainError::bad_input("to", "must be after from"));
    }
    if to > Utc::now() + TimeDelta::minutes(5) {
        return Err(DomainError::bad_input(
            "to",
            "a simulation replays recorded history: must not be in the future",
        ));
    }
    if to - from > TimeDelta::days(MAX_DAYS) {
        return Err(DomainError::bad_input(
            "to",
            format!("a simulation replays at most {MAX_DAYS} days"),
        ));
    }
    Ok(())
}

/// Replays `[from, to)` through `draft`.
#[tracing::instrument(name = "campaigns::simulate", skip_all)]
pub async fn simulate(
    db: &Db,
    draft: Draft,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Simulation> {
    check_period(from, to)?;
    let _turn = RUNNING
        .acquire()
        .await
        .map_err(|e| DomainError::Internal(e.into()))?;
    match tokio::time::timeout(TIME_LIMIT, replay(db, draft, from, to)).await {
        Ok(simulation) => simulation,
        Err(_) => Err(DomainError::bad_input(
            "to",
            format!(
                "the simulation ran longer than {} s: simulate a shorter period",
                TIME_LIMIT.as_secs()
            ),
        )),
    }
}

async fn replay(
    db: &Db,
    draft: Draft,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Simulation> {
    let conn = db.conn();
    let zone = program::settings(conn).await?.zone();
    let rules = Rules::of_draft(&draft);
    let admitted = admitted_condition(conn, &rules).await?;
    match rules.trigger.kind() {
        CampaignTriggerKind::Interaction => {
            // Read once, so that a page of history is matched in memory rather than
            // the condition run again for every page: who the condition admits, or,
            // without one, who was erased since (few), as the other triggers leave out.
            let admitted = match condition_of(&rules) {
                None => Admitted::AllBut(customers::ids_where(conn, erased()).await?),
                Some(_) => Admitted::Only(customers::ids_where(conn, admitted).await?),
            };
            let program = db.programs().current(conn).await?;
            interactions(conn, &program, rules, admitted, zone, from, to).await
        }
        CampaignTriggerKind::TierChanged => {
            let causes = tier_changes(conn, &rules, from, to).await?;
            replay_causes(conn, &rules, admitted, causes, zone).await
        }
        CampaignTriggerKind::ReferralRewarded => {
            let causes = rewarded_referrals(conn, from, to).await?;
            replay_causes(conn, &rules, admitted, causes, zone).await
        }
        CampaignTriggerKind::Birthday => {
            let causes = birthdays(conn, from, to).await?;
            replay_causes(conn, &rules, admitted, causes, zone).await
        }
        kind @ (CampaignTriggerKind::LifecycleChanged
        | CampaignTriggerKind::EnteredSegment
        | CampaignTriggerKind::PointsExpiring) => Err(DomainError::bad_input(
            "input.trigger.kind",
            format!(
                "{} campaigns cannot be simulated: Tierwise keeps no history of {}",
                kind.as_str(),
                match kind {
                    CampaignTriggerKind::LifecycleChanged => "lifecycle stages over time",
                    CampaignTriggerKind::EnteredSegment => "segment memberships over time",
                    _ => "the reminders of expiring lots",
                }
            ),
        )),
    }
}

/// The condition on `customer` that admits the campaign's customers (live ones, matching
/// its condition), for the history's queries to filter on.
async fn admitted_condition(db: &impl ConnectionTrait, rules: &Rules) -> DomainResult<Expr> {
    let live = Expr::col((customer::Entity, customer::Column::ErasedAt)).is_null();
    Ok(match condition_of(rules) {
        None => live,
        Some(None) => Expr::val(false),
        Some(Some(rule)) => segments::condition(db, &segments::Membership::Rule(rule)).await?,
    })
}

fn erased() -> Expr {
    Expr::col((customer::Entity, customer::Column::ErasedAt)).is_not_null()
}

/// Whose interactions a simulation replays.
enum Admitted {
    /// These customers' (the condition's).
    Only(HashSet<Uuid>),
    /// Everyone's but these (erased since).
    AllBut(HashSet<Uuid>),
}

/// An interaction as the replay reads it: what a trigger compares.
#[derive(Debug, FromQueryResult)]
struct Replayed {
    id: Uuid,
    customer_id: Uuid,
    kind: InteractionKind,
    occurred_at: DateTime<Utc>,
    amount_e4: Option<i64>,
    channel: Option<Channel>,
}

impl Replayed {
    fn interaction(self) -> interaction::Model {
        interaction::Model {
            id: self.id,
            customer_id: self.customer_id,
            kind: self.kind,
            occurred_at: self.occurred_at,
            amount_e4: self.amount_e4,
            currency: None,
            channel: self.channel,
            rating: None,
            note: None,
            order_ref: None,
            recorded_by: String::new(),
            recorded_at: self.occurred_at,
        }
    }
}

/// Interactions decided per batch: what a multiplier needs (the points each earned) is
/// read once per batch.
const BATCH: usize = 5000;

/// Replays the interactions of `[from, to)` in one pass, in the order they occurred,
/// narrowed in SQL by the trigger's kinds, channels and minimum amount.
///
/// A multiplier multiplies what each purchase earned: its `EARN` entries when Tierwise
/// recorded it, and, for history imported without them (`tierwise import` brings
/// balances, not per-purchase points), what the program as it is now would earn for it
/// at the customer's current tier.
async fn interactions(
    db: &sea_orm::DatabaseConnection,
    program: &Program,
    rules: Rules,
    admitted: Admitted,
    zone: chrono_tz::Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Simulation> {
    use futures_util::StreamExt;
    let trigger = rules.trigger.clone();
    let multiplies = rules.multiplier().is_some();
    let (only, erased) = match admitted {
        Admitted::Only(ids) => (Some(ids), HashSet::new()),
        Admitted::AllBut(ids) => (None, ids),
    };
    let mut campaign = ForInteractions::simulated(rules, only, zone);
    let mut tally = Tally::default();
    let mut query = interaction::Entity::find()
        .select_only()
        .columns([
            interaction::Column::Id,
            interaction::Column::CustomerId,
            interaction::Column::Kind,
            interaction::Column::OccurredAt,
            interaction::Column::AmountE4,
            interaction::Column::Channel,
        ])
        .filter(interaction::Column::OccurredAt.gte(from))
        .filter(interaction::Column::OccurredAt.lt(to));
    if let Some(kinds) = &trigger.interaction_kinds {
        query = query.filter(interaction::Column::Kind.is_in(kinds.iter().copied()));
    }
    if let Some(channels) = &trigger.channels {
        query = query.filter(interaction::Column::Channel.is_in(channels.iter().copied()));
    }
    if let Some(minimum) = trigger.min_amount_e4 {
        query = query.filter(interaction::Column::AmountE4.gte(minimum));
    }
    let mut rows = query
        .order_by_asc(interaction::Column::OccurredAt)
        .order_by_asc(interaction::Column::Id)
        .into_model::<Replayed>()
        .stream(db)
        .await?;
    let mut batch: Vec<interaction::Model> = Vec::with_capacity(BATCH);
    loop {
        let row = rows.next().await.transpose()?;
        let done = row.is_none();
        if let Some(row) = row.filter(|r| !erased.contains(&r.customer_id)) {
            batch.push(row.interaction());
        }
        if batch.len() < BATCH && !done {
            continue;
        }
        let earned = if multiplies {
            earned_by(db, program, &batch).await?
        } else {
            HashMap::new()
        };
        for interaction in batch.drain(..) {
            let points = earned.get(&interaction.id).copied().unwrap_or(0);
            for decided in campaign.decide(&interaction, points, interaction.occurred_at) {
                tally.count(&decided.firing, zone);
            }
        }
        if done {
            break;
        }
    }
    let exhausted = campaign.book().spent.values().find_map(|s| s.exhausted_at);
    Ok(tally.finish(exhausted))
}

/// What each purchase of `batch` earned: its `EARN` entries, or, without any, what the
/// program now earns for it at its customer's current tier.
async fn earned_by(
    db: &sea_orm::DatabaseConnection,
    program: &Program,
    batch: &[interaction::Model],
) -> DomainResult<HashMap<Uuid, i64>> {
    let purchases: Vec<&interaction::Model> = batch
        .iter()
        .filter(|i| i.kind == InteractionKind::Purchase)
        .collect();
    let ids: Vec<Uuid> = purchases.iter().map(|i| i.id).collect();
    let mut earned: HashMap<Uuid, i64> = points::sums_by_interaction(db, &ids)
        .await?
        .into_iter()
        .filter(|(_, kind, _)| *kind == PointsEntryKind::Earn)
        .map(|(id, _, points)| (id, points))
        .collect();
    let unrecorded: Vec<&&interaction::Model> = purchases
        .iter()
        .filter(|i| !earned.contains_key(&i.id))
        .collect();
    if unrecorded.is_empty() {
        return Ok(earned);
    }
    let owners: Vec<Uuid> = unrecorded.iter().map(|i| i.customer_id).collect();
    let tiers = customers::tiers_of(db, &owners).await?;
    for purchase in unrecorded {
        let multiplier = tiers
            .get(&purchase.customer_id)
            .map_or(10_000, |tier| program.multiplier_e4(*tier));
        let points = crate::domain::points::earned(
            purchase.amount_e4.unwrap_or(0),
            program.settings.points_per_currency_unit_e4,
            multiplier,
        )
        .unwrap_or(0);
        let points = std::cmp::max(points, 0);
        earned.insert(purchase.id, points);
    }
    Ok(earned)
}

/// A cause of the history: who, which cause key (the live path's), when.
type HistoricCause = (Uuid, String, DateTime<Utc>);

/// Replays causes in time order through the campaign's limit and budget, keeping those
/// of customers its condition admits.
async fn replay_causes(
    db: &impl ConnectionTrait,
    rules: &Rules,
    admitted: Expr,
    mut causes: Vec<HistoricCause>,
    zone: chrono_tz::Tz,
) -> DomainResult<Simulation> {
    causes.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    let mut candidates: Vec<Uuid> = causes.iter().map(|c| c.0).collect();
    candidates.sort();
    candidates.dedup();
    let allowed = campaigns::matching(db, &admitted, &candidates).await?;
    let mut book = Book::default();
    let mut tally = Tally::default();
    for (customer, cause, at) in causes {
        if !allowed.contains(&customer) || !rules.runs_at(at) {
            continue;
        }
        match book.fire(rules, customer, cause, rules.award(), at) {
            Ok(firing) => tally.count(&firing, zone),
            Err(Held::Limit | Held::Budget | Held::Nothing) => {}
        }
    }
    let exhausted = book.spent.values().find_map(|s| s.exhausted_at);
    Ok(tally.finish(exhausted))
}

async fn tier_changes(
    db: &impl ConnectionTrait,
    rules: &Rules,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Vec<HistoricCause>> {
    let mut query = tier_change::Entity::find()
        .filter(tier_change::Column::ChangedAt.gte(from))
        .filter(tier_change::Column::ChangedAt.lt(to));
    if let Some(key) = &rules.trigger.to_tier_key {
        let Some(tier) = tiers::by_key(db, key).await? else {
            return Ok(Vec::new());
        };
        query = query.filter(tier_change::Column::ToTierId.eq(tier.id));
    }
    let rows = query.all(db).await?;
    Ok(rows
        .into_iter()
        .filter(super::fire::fires_on_tier_change)
        .map(|change| {
            (
                change.customer_id,
                format!("tier:{}", change.id),
                change.changed_at,
            )
        })
        .collect())
}

async fn rewarded_referrals(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Vec<HistoricCause>> {
    let rows = referral::Entity::find()
        .filter(referral::Column::Status.eq(ReferralStatus::Rewarded))
        .filter(referral::Column::RewardedAt.gte(from))
        .filter(referral::Column::RewardedAt.lt(to))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.referrer_id, format!("referral:{}", r.id), r.rewarded_at?)))
        .collect())
}

/// Each customer's birthday inside the period, on the live path's day (the UTC date, the
/// 29th of February on the 1st of March in other years), read in one pass over the
/// customers who have a birthday.
async fn birthdays(
    db: &sea_orm::DatabaseConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DomainResult<Vec<HistoricCause>> {
    use futures_util::StreamExt;
    let mut causes = Vec::new();
    let mut born = customers::birthdays(db).await?;
    while let Some(row) = born.next().await {
        let (customer, birthday) = row?;
        for year in from.year()..=to.year() {
            let Some(day) = birthday_in(birthday, year) else {
                continue;
            };
            let Some(start) = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) else {
                continue;
            };
            // The day counts when it starts inside the period.
            if start >= from && start < to {
                causes.push((customer, format!("birthday:{year}"), start));
            }
        }
    }
    Ok(causes)
}

/// The day of `year` a customer born on `birthday` has its birthday.
fn birthday_in(birthday: NaiveDate, year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
}
