//! `Campaign`, its trigger and actions, their inputs, and `CampaignSimulation`.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use entity::campaign;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use uuid::Uuid;

use super::customer::Customer;
use super::enums::{InteractionKind, LifecycleStage};
use crate::auth::{Allow, Anyone, Permission};
use crate::domain::DomainResult;
use crate::domain::campaign::{self as rules, ActionKind, Input, RawAction, RawTrigger};
use crate::domain::money::{decimal_to_e4, e4_to_decimal};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::loaders::{CampaignStats, RequestLoader};
use crate::graphql::scalars::{Date, DateTime};
use crate::service::campaigns::simulate::Simulation;

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::CampaignStatus")]
pub enum CampaignStatus {
    /// Saved, not running; it can still be changed.
    Draft,
    Active,
    /// Stopped for now; it can be changed and started again.
    Paused,
    /// Stopped for good.
    Ended,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::CampaignTriggerKind")]
pub enum CampaignTriggerKind {
    /// A matching interaction is recorded (fired in the recording's transaction).
    Interaction,
    /// The customer's tier changes (to `toTierKey`, or to any tier).
    TierChanged,
    /// The customer enters the DYNAMIC segment `segmentId` (seen by evaluation runs).
    EnteredSegment,
    /// The customer moves to the lifecycle stage `toStage` (`AT_RISK`: win-back).
    LifecycleChanged,
    /// A lot of the customer's points expires within `withinDays` (once per lot).
    PointsExpiring,
    /// The customer's birthday (UTC day, once a year).
    Birthday,
    /// A referral the customer made is rewarded (fires for the referrer).
    ReferralRewarded,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum CampaignActionKind {
    /// Adds `points` (`CAMPAIGN_BONUS`).
    AwardPoints,
    /// Multiplies the points a purchase earns by `multiplier` (INTERACTION only). The
    /// extras of several active multipliers add up (×2 and ×1.5 make ×2.5), capped at
    /// ×10 in all; the campaign created first takes its share first.
    MultiplyPoints,
    /// Tags the customer (unless it has 50 tags already).
    AddTag,
    /// Adds the customer to the STATIC segment `segmentId`.
    AddToSegment,
    /// Sends `automation.fired` (webhook event and `campaignFired` subscription) with
    /// `message`.
    Notify,
}

impl From<CampaignActionKind> for ActionKind {
    fn from(kind: CampaignActionKind) -> Self {
        match kind {
            CampaignActionKind::AwardPoints => Self::AwardPoints,
            CampaignActionKind::MultiplyPoints => Self::MultiplyPoints,
            CampaignActionKind::AddTag => Self::AddTag,
            CampaignActionKind::AddToSegment => Self::AddToSegment,
            CampaignActionKind::Notify => Self::Notify,
        }
    }
}

impl From<ActionKind> for CampaignActionKind {
    fn from(kind: ActionKind) -> Self {
        match kind {
            ActionKind::AwardPoints => Self::AwardPoints,
            ActionKind::MultiplyPoints => Self::MultiplyPoints,
            ActionKind::AddTag => Self::AddTag,
            ActionKind::AddToSegment => Self::AddToSegment,
            ActionKind::Notify => Self::Notify,
        }
    }
}

/// What fires a campaign. Each field beyond `kind` belongs to one trigger kind.
#[derive(SimpleObject)]
pub struct CampaignTrigger {
    kind: CampaignTriggerKind,
    interaction_kinds: Option<Vec<InteractionKind>>,
    channels: Option<Vec<String>>,
    min_amount: Option<Decimal>,
    /// 1 (Monday) to 7 (Sunday), in `programSettings.timeZone`.
    days_of_week: Option<Vec<i32>>,
    to_tier_key: Option<String>,
    segment_id: Option<ID>,
    to_stage: Option<LifecycleStage>,
    within_days: Option<i32>,
}

impl From<rules::Trigger> for CampaignTrigger {
    fn from(t: rules::Trigger) -> Self {
        Self {
            kind: t.kind().into(),
            interaction_kinds: t
                .interaction_kinds
                .map(|kinds| kinds.into_iter().map(Into::into).collect()),
            channels: t.channels.map(|channels| {
                channels
                    .into_iter()
                    .map(|c| c.as_str().to_owned())
                    .collect()
            }),
            min_amount: t.min_amount_e4.map(e4_to_decimal),
            days_of_week: t
                .days_of_week
                .map(|days| days.into_iter().map(|d| d as i32).collect()),
            to_tier_key: t.to_tier_key,
            segment_id: t.segment_id.map(|id| ID(id.to_string())),
            to_stage: t.to_stage.map(Into::into),
            within_days: t.within_days,
        }
    }
}

/// What a campaign does when it fires.
#[derive(SimpleObject)]
pub struct CampaignAction {
    kind: CampaignActionKind,
    points: Option<i64>,
    multiplier: Option<f64>,
    tag: Option<String>,
    segment_id: Option<ID>,
    message: Option<String>,
}

impl From<rules::Action> for CampaignAction {
    fn from(a: rules::Action) -> Self {
        Self {
            kind: a.kind.into(),
            points: a.points,
            multiplier: a.multiplier.and_then(|m| m.to_f64()),
            tag: a.tag,
            segment_id: a.segment_id.map(|id| ID(id.to_string())),
            message: a.message,
        }
    }
}

/// An earning rule or automation. Its id and name are public (a customer sees them on
/// the ledger entries it paid); the rest, its description included (operators' notes),
/// is for staff and admins.
pub struct Campaign(pub campaign::Model);

#[Object(guard = "Allow(Permission::ReadCampaigns)")]
impl Campaign {
    #[graphql(guard = "Anyone")]
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    #[graphql(guard = "Anyone")]
    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn status(&self) -> CampaignStatus {
        self.0.status.into()
    }

    async fn trigger(&self) -> Result<CampaignTrigger> {
        Ok(rules::Rules::of(&self.0).gql()?.trigger.into())
    }

    /// A segment rule (the segments' language) the customer must match when the
    /// trigger fires.
    async fn condition(&self) -> Option<Json<serde_json::Value>> {
        self.0.condition.clone().map(Json)
    }

    async fn actions(&self) -> Result<Vec<CampaignAction>> {
        let rules = rules::Rules::of(&self.0).gql()?;
        Ok(rules.actions.into_iter().map(Into::into).collect())
    }

    async fn starts_at(&self) -> Option<DateTime> {
        self.0.starts_at.map(Into::into)
    }

    async fn ends_at(&self) -> Option<DateTime> {
        self.0.ends_at.map(Into::into)
    }

    async fn limit_per_customer(&self) -> Option<i32> {
        self.0.limit_per_customer
    }

    async fn budget_points(&self) -> Option<i64> {
        self.0.budget_points
    }

    /// When the budget could not pay a firing: the campaign has awarded nothing since.
    async fn budget_exhausted_at(&self) -> Option<DateTime> {
        self.0.budget_exhausted_at.map(Into::into)
    }

    async fn times_fired(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.stats(ctx).await?.times_fired)
    }

    async fn customers_reached(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.stats(ctx).await?.customers_reached)
    }

    async fn points_awarded(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.stats(ctx).await?.points_awarded)
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

impl Campaign {
    async fn stats(&self, ctx: &Context<'_>) -> Result<crate::store::campaigns::Stats> {
        Ok(ctx
            .data::<RequestLoader>()?
            .load_one(CampaignStats(self.0.id))
            .await
            .gql()?
            .unwrap_or_default())
    }
}

#[derive(InputObject)]
pub struct CampaignTriggerInput {
    kind: CampaignTriggerKind,
    interaction_kinds: Option<Vec<InteractionKind>>,
    channels: Option<Vec<String>>,
    min_amount: Option<Decimal>,
    days_of_week: Option<Vec<i32>>,
    to_tier_key: Option<String>,
    segment_id: Option<ID>,
    to_stage: Option<LifecycleStage>,
    within_days: Option<i32>,
}

#[derive(InputObject)]
pub struct CampaignActionInput {
    kind: CampaignActionKind,
    points: Option<i64>,
    multiplier: Option<f64>,
    tag: Option<String>,
    segment_id: Option<ID>,
    message: Option<String>,
}

#[derive(InputObject)]
pub struct CampaignInput {
    name: String,
    description: Option<String>,
    trigger: CampaignTriggerInput,
    condition: Option<Json<serde_json::Value>>,
    actions: Vec<CampaignActionInput>,
    starts_at: Option<DateTime>,
    ends_at: Option<DateTime>,
    limit_per_customer: Option<i32>,
    budget_points: Option<i64>,
}

/// The most entries a list in a campaign's input may have before it is read (the
/// domain's own limits are lower; this bounds the work done before they are checked).
const MAX_INPUT_LIST: usize = 64;

fn bounded<T>(list: Option<Vec<T>>, field: &str) -> DomainResult<Option<Vec<T>>> {
    if list.as_ref().is_some_and(|l| l.len() > MAX_INPUT_LIST) {
        return Err(crate::domain::DomainError::bad_input(
            field,
            format!("at most {MAX_INPUT_LIST} values"),
        ));
    }
    Ok(list)
}

fn optional_id(id: Option<&ID>, field: &str) -> DomainResult<Option<Uuid>> {
    id.map(|id| parse_id(id, field)).transpose()
}

impl CampaignInput {
    pub fn into_input(self) -> DomainResult<Input> {
        let t = self.trigger;
        let trigger = RawTrigger {
            kind: t.kind.into(),
            interaction_kinds: bounded(t.interaction_kinds, "input.trigger.interactionKinds")?
                .map(|kinds| kinds.into_iter().map(Into::into).collect()),
            channels: bounded(t.channels, "input.trigger.channels")?,
            min_amount_e4: t
                .min_amount
                .map(|a| decimal_to_e4(a, "input.trigger.minAmount"))
                .transpose()?,
            days_of_week: bounded(t.days_of_week, "input.trigger.daysOfWeek")?,
            to_tier_key: t.to_tier_key,
            segment_id: optional_id(t.segment_id.as_ref(), "input.trigger.segmentId")?,
            to_stage: t.to_stage.map(Into::into),
            within_days: t.within_days,
        };
        let actions = bounded(Some(self.actions), "input.actions")?.unwrap_or_default();
        let actions = actions
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(RawAction {
                    kind: a.kind.into(),
                    points: a.points,
                    multiplier: a.multiplier,
                    tag: a.tag,
                    segment_id: optional_id(
                        a.segment_id.as_ref(),
                        &format!("input.actions[{i}].segmentId"),
                    )?,
                    message: a.message,
                })
            })
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(Input {
            name: self.name,
            description: self.description,
            trigger,
            condition: self.condition.map(|c| c.0),
            actions,
            starts_at: self.starts_at.map(|t| t.0),
            ends_at: self.ends_at.map(|t| t.0),
            limit_per_customer: self.limit_per_customer,
            budget_points: self.budget_points,
        })
    }
}

/// The most customers `CampaignSimulation.customers` lists.
const MAX_SIMULATED_CUSTOMERS: i32 = 100;

/// What a campaign would have done over a period of recorded history.
pub struct CampaignSimulation(pub Simulation);

#[Object]
impl CampaignSimulation {
    async fn times_fired(&self) -> i64 {
        self.0.times_fired
    }

    async fn customers_reached(&self) -> i64 {
        self.0.customers.len() as i64
    }

    async fn points_awarded(&self) -> i64 {
        self.0.points_awarded
    }

    /// When a firing would have found the budget too small.
    async fn budget_exhausted_at(&self) -> Option<DateTime> {
        self.0.budget_exhausted_at.map(Into::into)
    }

    /// Per day (in the program's time zone) with a firing, in order.
    async fn by_day(&self) -> Vec<CampaignSimulationDay> {
        self.0
            .by_day
            .iter()
            .map(|(date, fired, points)| CampaignSimulationDay {
                date: Date(*date),
                times_fired: *fired,
                points_awarded: *points,
            })
            .collect()
    }

    /// The customers it would have reached, in the order first reached (at most 100,
    /// default 20).
    async fn customers(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<Customer>> {
        let first = first.unwrap_or(20);
        if !(0..=MAX_SIMULATED_CUSTOMERS).contains(&first) {
            return Err(crate::domain::DomainError::bad_input(
                "first",
                format!("must be between 0 and {MAX_SIMULATED_CUSTOMERS}"),
            ))
            .gql();
        }
        let ids: Vec<Uuid> = self
            .0
            .customers
            .iter()
            .take(first as usize)
            .copied()
            .collect();
        let loader = ctx.data::<RequestLoader>()?;
        let found = loader
            .load_many(
                ids.iter()
                    .map(|id| crate::graphql::loaders::CustomerById(*id)),
            )
            .await
            .gql()?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                found
                    .get(&crate::graphql::loaders::CustomerById(*id))
                    .cloned()
            })
            .map(Customer)
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct CampaignSimulationDay {
    date: Date,
    times_fired: i64,
    points_awarded: i64,
}

/// A campaign's `NOTIFY` as it fired, for `campaignFired` subscribers.
pub struct CampaignFired(pub crate::live::bus::Fired);

#[Object]
impl CampaignFired {
    async fn campaign(&self, ctx: &Context<'_>) -> Result<Option<Campaign>> {
        Ok(ctx
            .data::<RequestLoader>()?
            .load_one(crate::graphql::loaders::CampaignById(self.0.campaign_id))
            .await
            .gql()?
            .map(Campaign))
    }

    /// The customer, as the subscriber may see it.
    async fn customer(&self, ctx: &Context<'_>) -> Result<Customer> {
        crate::graphql::loaders::load_customer(ctx, self.0.customer_id).await
    }

    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }

    /// What fired it: `interaction:<id>`, `tier:<change id>`, `stage:<event id>`,
    /// `referral:<id>`, `birthday:<year>`, `expiring:<instant>`, `entered:<run id>`.
    async fn cause(&self) -> &str {
        &self.0.cause
    }

    async fn points(&self) -> i64 {
        self.0.points
    }

    async fn fired_at(&self) -> DateTime {
        self.0.fired_at.into()
    }
}
