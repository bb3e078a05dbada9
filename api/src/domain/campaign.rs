//! The rules of campaigns, free of GraphQL and SQL: what a campaign may say (`Draft`,
//! checked field by field), when its trigger matches an interaction, and how a firing is
//! decided against the campaign's per-customer limit and its budget (`Book`). The live
//! write paths and `simulateCampaign` decide through the same `Book`, so a simulation
//! over recorded history awards what the live path would have.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use entity::enums::{
    CampaignStatus, CampaignTriggerKind, Channel, InteractionKind, LifecycleStage,
};
use entity::{campaign, interaction};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{DomainError, DomainResult};

/// The most actions one campaign takes.
pub const MAX_ACTIONS: usize = 10;
/// The most points one `AWARD_POINTS` action gives.
pub const MAX_AWARD: i64 = 1_000_000;
/// The highest multiplier one campaign sets, and the highest total of the multipliers
/// that apply to one purchase: their extras add up (×2 and ×1.5 make ×2.5), and the
/// total is capped here, the campaign created first getting its share first.
pub const MAX_MULTIPLIER: Decimal = Decimal::from_parts(10, 0, 0, false, 0);
/// The largest budget a campaign may have.
pub const MAX_BUDGET: i64 = 1_000_000_000_000;
/// The highest `limitPerCustomer` (points, or firings for a campaign without points).
pub const MAX_LIMIT_PER_CUSTOMER: i32 = 1_000_000_000;
/// The longest `withinDays` of a `POINTS_EXPIRING` trigger: the reminders job reads the
/// ledgers of everyone holding a lot that expires this far ahead, every hour.
pub const MAX_WITHIN_DAYS: i32 = 90;
/// The longest name, description and message.
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2000;
const MAX_MESSAGE_CHARS: usize = 1000;
/// The most kinds or channels one trigger lists.
const MAX_LISTED: usize = 32;

/// What fires a campaign, as stored (JSON) and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub kind: Option<CampaignTriggerKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_kinds: Option<Vec<InteractionKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    /// In ten-thousandths of the base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount_e4: Option<i64>,
    /// ISO days: 1 is Monday, 7 Sunday, in the program's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_of_week: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_tier_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stage: Option<LifecycleStage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<i32>,
}

impl Trigger {
    pub fn kind(&self) -> CampaignTriggerKind {
        self.kind.unwrap_or(CampaignTriggerKind::Interaction)
    }

    /// Whether `interaction` is one this (INTERACTION) trigger fires on: of a listed
    /// kind, on a listed channel, of at least the minimum amount, on a listed weekday
    /// where the program's customers live.
    pub fn matches_interaction(
        &self,
        interaction: &interaction::Model,
        zone: chrono_tz::Tz,
    ) -> bool {
        if self.kind() != CampaignTriggerKind::Interaction {
            return false;
        }
        if let Some(kinds) = &self.interaction_kinds
            && !kinds.contains(&interaction.kind)
        {
            return false;
        }
        if let Some(channels) = &self.channels
            && !interaction.channel.is_some_and(|c| channels.contains(&c))
        {
            return false;
        }
        if let Some(minimum) = self.min_amount_e4
            && interaction.amount_e4.unwrap_or(0) < minimum
        {
            return false;
        }
        if let Some(days) = &self.days_of_week {
            let weekday = interaction
                .occurred_at
                .with_timezone(&zone)
                .weekday()
                .number_from_monday();
            if !days.contains(&weekday) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionKind {
    AwardPoints,
    MultiplyPoints,
    AddTag,
    AddToSegment,
    Notify,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwardPoints => "AWARD_POINTS",
            Self::MultiplyPoints => "MULTIPLY_POINTS",
            Self::AddTag => "ADD_TAG",
            Self::AddToSegment => "ADD_TO_SEGMENT",
            Self::Notify => "NOTIFY",
        }
    }
}

/// What a campaign does when it fires, as stored (JSON) and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A campaign as given to `createCampaign`, `updateCampaign` and `simulateCampaign`,
/// before validation. The multiplier arrives as the API's float.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub description: Option<String>,
    pub trigger: RawTrigger,
    pub condition: Option<Json>,
    pub actions: Vec<RawAction>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub limit_per_customer: Option<i32>,
    pub budget_points: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RawTrigger {
    pub kind: CampaignTriggerKind,
    pub interaction_kinds: Option<Vec<InteractionKind>>,
    pub channels: Option<Vec<String>>,
    pub min_amount_e4: Option<i64>,
    pub days_of_week: Option<Vec<i32>>,
    pub to_tier_key: Option<String>,
    pub segment_id: Option<Uuid>,
    pub to_stage: Option<LifecycleStage>,
    pub within_days: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct RawAction {
    pub kind: ActionKind,
    pub points: Option<i64>,
    pub multiplier: Option<f64>,
    pub tag: Option<String>,
    pub segment_id: Option<Uuid>,
    pub message: Option<String>,
}

/// A campaign's definition, validated. The condition is checked against the segment
/// language by the service (it needs the tier keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub condition: Option<Json>,
    pub actions: Vec<Action>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub limit_per_customer: Option<i32>,
    pub budget_points: Option<i64>,
}

fn bad(field: impl std::fmt::Display, message: impl std::fmt::Display) -> DomainError {
    DomainError::bad_input(field, message)
}

/// Text as customers' fields take it: trimmed, not empty, bounded, no control
/// characters.
fn bounded_text(value: &str, field: &str, max: usize) -> DomainResult<String> {
    super::customer::text(value, field, max)
}

/// A field that only some trigger kinds use, refused on the others so that a campaign
/// never silently ignores part of what its operator wrote.
fn only_for<T>(
    value: &Option<T>,
    field: &str,
    kind: CampaignTriggerKind,
    owner: CampaignTriggerKind,
) -> DomainResult<()> {
    if value.is_some() && kind != owner {
        return Err(bad(
            field,
            format!("applies only to {} triggers", owner.as_str()),
        ));
    }
    Ok(())
}

impl Draft {
    /// Checks every field of `input`, naming the first at fault under `path`
    /// (`input.trigger.daysOfWeek[2]`).
    pub fn new(input: Input, path: &str) -> DomainResult<Self> {
        let name = bounded_text(&input.name, &format!("{path}.name"), MAX_NAME_CHARS)?;
        let description = input
            .description
            .as_deref()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .map(|d| bounded_text(d, &format!("{path}.description"), MAX_DESCRIPTION_CHARS))
            .transpose()?;
        let trigger = trigger(input.trigger, &format!("{path}.trigger"))?;
        if input.actions.is_empty() {
            return Err(bad(format!("{path}.actions"), "list at least one action"));
        }
        if input.actions.len() > MAX_ACTIONS {
            return Err(bad(
                format!("{path}.actions"),
                format!("at most {MAX_ACTIONS} actions"),
            ));
        }
        let actions = input
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, raw)| action(raw, trigger.kind(), &format!("{path}.actions[{i}]")))
            .collect::<DomainResult<Vec<_>>>()?;
        let multipliers = actions
            .iter()
            .filter(|a| a.kind == ActionKind::MultiplyPoints)
            .count();
        if multipliers > 1 {
            return Err(bad(
                format!("{path}.actions"),
                "one MULTIPLY_POINTS action per campaign",
            ));
        }
        let gives_points = actions
            .iter()
            .any(|a| matches!(a.kind, ActionKind::AwardPoints | ActionKind::MultiplyPoints));
        if input.budget_points.is_some() && !gives_points {
            return Err(bad(
                format!("{path}.budgetPoints"),
                "a budget counts points: this campaign gives none",
            ));
        }
        if let (Some(starts), Some(ends)) = (input.starts_at, input.ends_at)
            && ends <= starts
        {
            return Err(bad(format!("{path}.endsAt"), "must be after startsAt"));
        }
        if let Some(limit) = input.limit_per_customer
            && !(1..=MAX_LIMIT_PER_CUSTOMER).contains(&limit)
        {
            return Err(bad(
                format!("{path}.limitPerCustomer"),
                format!("must be between 1 and {MAX_LIMIT_PER_CUSTOMER}"),
            ));
        }
        if let Some(budget) = input.budget_points
            && !(1..=MAX_BUDGET).contains(&budget)
        {
            return Err(bad(
                format!("{path}.budgetPoints"),
                format!("must be between 1 and {MAX_BUDGET}"),
            ));
        }
        if let Some(condition) = &input.condition
            && !condition.is_object()
        {
            return Err(bad(
                format!("{path}.condition"),
                "must be a segment rule (a JSON object), or null",
            ));
        }
        Ok(Self {
            name,
            description,
            trigger,
            condition: input.condition,
            actions,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            limit_per_customer: input.limit_per_customer,
            budget_points: input.budget_points,
        })
    }
}

fn trigger(raw: RawTrigger, path: &str) -> DomainResult<Trigger> {
    use CampaignTriggerKind as K;
    let kind = raw.kind;
    let field = |name: &str| format!("{path}.{name}");
    only_for(
        &raw.interaction_kinds,
        &field("interactionKinds"),
        kind,
        K::Interaction,
    )?;
    only_for(&raw.channels, &field("channels"), kind, K::Interaction)?;
    only_for(
        &raw.min_amount_e4,
        &field("minAmount"),
        kind,
        K::Interaction,
    )?;
    only_for(
        &raw.days_of_week,
        &field("daysOfWeek"),
        kind,
        K::Interaction,
    )?;
    only_for(&raw.to_tier_key, &field("toTierKey"), kind, K::TierChanged)?;
    only_for(
        &raw.segment_id,
        &field("segmentId"),
        kind,
        K::EnteredSegment,
    )?;
    only_for(&raw.to_stage, &field("toStage"), kind, K::LifecycleChanged)?;
    only_for(
        &raw.within_days,
        &field("withinDays"),
        kind,
        K::PointsExpiring,
    )?;
    let listed = |len: usize, name: &str| -> DomainResult<()> {
        if len == 0 || len > MAX_LISTED {
            return Err(bad(
                field(name),
                format!("list between 1 and {MAX_LISTED} values, or leave it out for all"),
            ));
        }
        Ok(())
    };
    let interaction_kinds = match raw.interaction_kinds {
        Some(mut kinds) => {
            listed(kinds.len(), "interactionKinds")?;
            kinds.sort_by_key(|k| k.as_str());
            kinds.dedup();
            Some(kinds)
        }
        None => None,
    };
    let channels = match raw.channels {
        Some(names) => {
            listed(names.len(), "channels")?;
            let mut channels = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let channel = Channel::parse(name.trim()).ok_or_else(|| {
                    let shown: String = name.chars().take(32).collect();
                    bad(
                        format!("{path}.channels[{i}]"),
                        format!("unknown channel {shown:?}"),
                    )
                })?;
                if !channels.contains(&channel) {
                    channels.push(channel);
                }
            }
            Some(channels)
        }
        None => None,
    };
    if let Some(minimum) = raw.min_amount_e4
        && minimum < 0
    {
        return Err(bad(field("minAmount"), "must not be negative"));
    }
    let days_of_week = match raw.days_of_week {
        Some(days) => {
            if days.is_empty() || days.len() > 7 {
                return Err(bad(field("daysOfWeek"), "list between 1 and 7 days"));
            }
            let mut checked = Vec::with_capacity(days.len());
            for (i, day) in days.into_iter().enumerate() {
                let day = u32::try_from(day)
                    .ok()
                    .filter(|d| (1..=7).contains(d))
                    .ok_or_else(|| {
                        bad(
                            format!("{path}.daysOfWeek[{i}]"),
                            "must be 1 (Monday) to 7 (Sunday)",
                        )
                    })?;
                if !checked.contains(&day) {
                    checked.push(day);
                }
            }
            checked.sort_unstable();
            Some(checked)
        }
        None => None,
    };
    let to_tier_key = raw
        .to_tier_key
        .map(|key| bounded_text(&key, &field("toTierKey"), 64))
        .transpose()?;
    if kind == K::EnteredSegment && raw.segment_id.is_none() {
        return Err(bad(
            field("segmentId"),
            "an ENTERED_SEGMENT trigger names its segment",
        ));
    }
    if kind == K::LifecycleChanged && raw.to_stage.is_none() {
        return Err(bad(
            field("toStage"),
            "a LIFECYCLE_CHANGED trigger names the stage it fires on",
        ));
    }
    if kind == K::PointsExpiring
        && !raw
            .within_days
            .is_some_and(|d| (1..=MAX_WITHIN_DAYS).contains(&d))
    {
        return Err(bad(
            field("withinDays"),
            format!("a POINTS_EXPIRING trigger needs withinDays between 1 and {MAX_WITHIN_DAYS}"),
        ));
    }
    Ok(Trigger {
        kind: Some(kind),
        interaction_kinds,
        channels,
        min_amount_e4: raw.min_amount_e4,
        days_of_week,
        to_tier_key,
        segment_id: raw.segment_id,
        to_stage: raw.to_stage,
        within_days: raw.within_days,
    })
}

fn action(raw: RawAction, trigger: CampaignTriggerKind, path: &str) -> DomainResult<Action> {
    let field = |name: &str| format!("{path}.{name}");
    let refuse_unless = |present: bool, name: &str, kind: ActionKind| -> DomainResult<()> {
        if present && raw.kind != kind {
            return Err(bad(
                field(name),
                format!("applies only to {} actions", kind.as_str()),
            ));
        }
        Ok(())
    };
    refuse_unless(raw.points.is_some(), "points", ActionKind::AwardPoints)?;
    refuse_unless(
        raw.multiplier.is_some(),
        "multiplier",
        ActionKind::MultiplyPoints,
    )?;
    refuse_unless(raw.tag.is_some(), "tag", ActionKind::AddTag)?;
    refuse_unless(
        raw.segment_id.is_some(),
        "segmentId",
        ActionKind::AddToSegment,
    )?;
    refuse_unless(raw.message.is_some(), "message", ActionKind::Notify)?;
    let mut action = Action {
        kind: raw.kind,
        points: None,
        multiplier: None,
        tag: None,
        segment_id: raw.segment_id,
        message: None,
    };
    match raw.kind {
        ActionKind::AwardPoints => {
            let points = raw
                .points
                .filter(|p| (1..=MAX_AWARD).contains(p))
                .ok_or_else(|| {
                    bad(
                        field("points"),
                        format!("must be between 1 and {MAX_AWARD}"),
                    )
                })?;
            action.points = Some(points);
        }
        ActionKind::MultiplyPoints => {
            if trigger != CampaignTriggerKind::Interaction {
                return Err(bad(
                    field("kind"),
                    "MULTIPLY_POINTS multiplies a purchase's points: only INTERACTION triggers have them",
                ));
            }
            let multiplier = raw
                .multiplier
                .filter(|m| m.is_finite())
                .and_then(Decimal::from_f64)
                .map(|m| m.round_dp(2))
                .filter(|m| *m > Decimal::ONE && *m <= MAX_MULTIPLIER)
                .ok_or_else(|| {
                    bad(
                        field("multiplier"),
                        "must be greater than 1 and at most 10 (two decimals)",
                    )
                })?;
            action.multiplier = Some(multiplier);
        }
        ActionKind::AddTag => {
            let tag = raw.tag.as_deref().unwrap_or("");
            action.tag = Some(bounded_text(tag, &field("tag"), 100)?);
        }
        ActionKind::AddToSegment => {
            if raw.segment_id.is_none() {
                return Err(bad(field("segmentId"), "name the static segment to add to"));
            }
        }
        ActionKind::Notify => {
            let message = raw.message.as_deref().unwrap_or("");
            action.message = Some(bounded_text(message, &field("message"), MAX_MESSAGE_CHARS)?);
        }
    }
    Ok(action)
}

/// A stored campaign's rules, read back from its row.
#[derive(Debug, Clone)]
pub struct Rules {
    pub id: Uuid,
    pub name: String,
    pub status: CampaignStatus,
    pub trigger: Trigger,
    pub condition: Option<Json>,
    pub actions: Vec<Action>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub limit_per_customer: Option<i32>,
    pub budget_points: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl Rules {
    /// The rules of a stored campaign; a row this build cannot read (written by a newer
    /// one) is an error for its own campaign only.
    pub fn of(row: &campaign::Model) -> DomainResult<Self> {
        let broken = |what: &str, error: serde_json::Error| {
            DomainError::Internal(anyhow::anyhow!(
                "campaign {}: its {what} cannot be read: {error}",
                row.id
            ))
        };
        Ok(Self {
            id: row.id,
            name: row.name.clone(),
            status: row.status,
            trigger: serde_json::from_value(row.trigger.clone())
                .map_err(|e| broken("trigger", e))?,
            condition: row.condition.clone(),
            actions: serde_json::from_value(row.actions.clone())
                .map_err(|e| broken("actions", e))?,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            limit_per_customer: row.limit_per_customer,
            budget_points: row.budget_points,
            created_at: row.created_at,
        })
    }

    /// The rules of a draft not saved (a simulation's).
    pub fn of_draft(draft: &Draft) -> Self {
        Self {
            id: Uuid::nil(),
            name: draft.name.clone(),
            status: CampaignStatus::Active,
            trigger: draft.trigger.clone(),
            condition: draft.condition.clone(),
            actions: draft.actions.clone(),
            starts_at: draft.starts_at,
            ends_at: draft.ends_at,
            limit_per_customer: draft.limit_per_customer,
            budget_points: draft.budget_points,
            created_at: DateTime::<Utc>::MIN_UTC,
        }
    }

    /// Whether a firing decided at `at` (now, live; the cause's instant, simulated) may
    /// still pay: the campaign has not passed its `endsAt`, whenever its cause happened.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        self.ends_at.is_none_or(|ends| at < ends)
    }

    /// Whether the campaign runs at `at`: active, and inside its dates.
    pub fn runs_at(&self, at: DateTime<Utc>) -> bool {
        self.status == CampaignStatus::Active
            && self.starts_at.is_none_or(|starts| at >= starts)
            && self.ends_at.is_none_or(|ends| at < ends)
    }

    /// The fixed points its `AWARD_POINTS` actions give.
    pub fn award(&self) -> i64 {
        self.actions.iter().filter_map(|a| a.points).sum()
    }

    /// Its `MULTIPLY_POINTS` multiplier, if it has one (the first, when several).
    pub fn multiplier(&self) -> Option<Decimal> {
        self.actions.iter().find_map(|a| a.multiplier)
    }

    /// The extra points its multiplier adds to a purchase that earned `earned`, within
    /// `room` (what the cap on all multipliers leaves).
    pub fn extra(&self, earned: i64, room: i64) -> i64 {
        let Some(multiplier) = self.multiplier() else {
            return 0;
        };
        let extra = (Decimal::from(earned.max(0)) * (multiplier - Decimal::ONE))
            .floor()
            .to_i64()
            .unwrap_or(0);
        extra.clamp(0, room.max(0))
    }

    /// Whether it gives points (`AWARD_POINTS`, `MULTIPLY_POINTS`).
    pub fn awards_points(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a.kind, ActionKind::AwardPoints | ActionKind::MultiplyPoints))
    }
}

/// The most extra points multipliers may add to a purchase that earned `earned`.
pub fn multiplier_room(earned: i64) -> i64 {
    (Decimal::from(earned.max(0)) * (MAX_MULTIPLIER - Decimal::ONE))
        .to_i64()
        .unwrap_or(i64::MAX)
}

/// What a campaign had done before the firings being decided: points spent of its
/// budget, and whether the budget ran out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub points: i64,
    pub exhausted_at: Option<DateTime<Utc>>,
}

impl Spent {
    /// The spending of a campaign whose budget became `budget`, having awarded
    /// `awarded`: exhausted (since `at`, or since it already was) when nothing is left,
    /// open again when a raise left room.
    pub fn rebudgeted(
        awarded: i64,
        budget: Option<i64>,
        was_exhausted: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Self {
        let exhausted_at = match budget {
            Some(budget) if awarded >= budget => Some(was_exhausted.unwrap_or(at)),
            _ => None,
        };
        Self {
            points: awarded,
            exhausted_at,
        }
    }
}

/// One decided firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub campaign_id: Uuid,
    pub customer_id: Uuid,
    pub cause: String,
    pub points: i64,
    pub at: DateTime<Utc>,
}

/// Why a campaign did not fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The customer reached its `limitPerCustomer`.
    Limit,
    /// The budget is spent: the campaign awards nothing from now on.
    Budget,
    /// It gives points, and would have given none.
    Nothing,
}

/// What a campaign gave one customer so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given {
    pub firings: i64,
    pub points: i64,
}

/// The state firings are decided against: each campaign's spending, and what each
/// customer got, as read under the locks of the write (or built up by a simulation).
#[derive(Debug, Default)]
pub struct Book {
    pub spent: HashMap<Uuid, Spent>,
    pub given: HashMap<(Uuid, Uuid), Given>,
    /// The campaigns whose `spent` the decisions changed: what must be written back.
    pub changed: std::collections::HashSet<Uuid>,
}

impl Book {
    /// Decides whether `campaign` fires for `customer` on `cause`, worth up to `points`,
    /// and counts it.
    ///
    /// `limitPerCustomer` is the most points one customer gets from a campaign that
    /// awards points ("at most 500 points each"), and the most firings for one that
    /// does not (a tag, a message). The budget is the most points in all. A firing gets
    /// what both leave (the last one may get less than the rule's points); once the
    /// customer's limit is reached it does not fire for that customer, and once the
    /// budget is spent it does not fire at all (`budgetExhaustedAt` says when). A
    /// campaign that gives points does not fire when it would give none (a multiplier
    /// on an interaction that earned nothing).
    pub fn fire(
        &mut self,
        campaign: &Rules,
        customer_id: Uuid,
        cause: String,
        points: i64,
        at: DateTime<Utc>,
    ) -> Result<Firing, Held> {
        let given = self.given.entry((campaign.id, customer_id)).or_default();
        let mut points = points.max(0);
        if points == 0 && campaign.awards_points() {
            return Err(Held::Nothing);
        }
        if let Some(limit) = campaign.limit_per_customer.map(i64::from) {
            if campaign.awards_points() {
                let room = limit - given.points;
                if room <= 0 {
                    return Err(Held::Limit);
                }
                points = points.min(room);
            } else if given.firings >= limit {
                return Err(Held::Limit);
            }
        }
        if let Some(budget) = campaign.budget_points {
            let spent = self.spent.entry(campaign.id).or_default();
            if spent.exhausted_at.is_some() {
                return Err(Held::Budget);
            }
            let room = (budget - spent.points).max(0);
            if room == 0 {
                spent.exhausted_at = Some(at);
                self.changed.insert(campaign.id);
                return Err(Held::Budget);
            }
            points = points.min(room);
            spent.points += points;
            if spent.points >= budget && campaign.awards_points() {
                spent.exhausted_at = Some(at);
            }
            self.changed.insert(campaign.id);
        }
        given.firings += 1;
        given.points += points;
        Ok(Firing {
            campaign_id: campaign.id,
            customer_id,
            cause,
            points,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn award(points: i64) -> Action {
        Action {
            kind: ActionKind::AwardPoints,
            points: Some(points),
            multiplier: None,
            tag: None,
            segment_id: None,
            message: None,
        }
    }

    fn rules(limit: Option<i32>, budget: Option<i64>) -> Rules {
        Rules {
            id: Uuid::now_v7(),
            name: "t".into(),
            status: CampaignStatus::Active,
            trigger: Trigger::default(),
            condition: None,
            actions: vec![award(100)],
            starts_at: None,
            ends_at: None,
            limit_per_customer: limit,
            budget_points: budget,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_budget_pays_to_its_last_point_then_stops_the_campaign() {
        let campaign = rules(None, Some(250));
        let mut book = Book::default();
        let at = Utc::now();
        let customer = Uuid::now_v7();
        let points = |fired: Result<Firing, Held>| fired.map(|f| f.points);
        assert_eq!(
            points(book.fire(&campaign, customer, "a".into(), 100, at)),
            Ok(100)
        );
        assert_eq!(
            points(book.fire(&campaign, customer, "b".into(), 100, at)),
            Ok(100)
        );
        assert_eq!(book.spent[&campaign.id].exhausted_at, None);
        assert_eq!(
            points(book.fire(&campaign, customer, "c".into(), 100, at)),
            Ok(50)
        );
        assert_eq!(book.spent[&campaign.id].exhausted_at, Some(at));
        assert_eq!(
            points(book.fire(&campaign, customer, "d".into(), 10, at)),
            Err(Held::Budget)
        );
        assert_eq!(book.spent[&campaign.id].points, 250);
    }

    #[test]
    fn the_limit_caps_each_customers_points_apart() {
        let campaign = rules(Some(250), None);
        let mut book = Book::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let at = Utc::now();
        let points = |fired: Result<Firing, Held>| fired.map(|f| f.points);
        assert_eq!(
            points(book.fire(&campaign, a, "1".into(), 100, at)),
            Ok(100)
        );
        assert_eq!(
            points(book.fire(&campaign, a, "2".into(), 100, at)),
            Ok(100)
        );
        assert_eq!(points(book.fire(&campaign, a, "3".into(), 100, at)), Ok(50));
        assert_eq!(
            points(book.fire(&campaign, a, "4".into(), 100, at)),
            Err(Held::Limit)
        );
        assert_eq!(
            points(book.fire(&campaign, b, "1".into(), 100, at)),
            Ok(100)
        );
    }

    #[test]
    fn a_new_budget_reopens_or_closes_the_campaign() {
        let (at, before) = (Utc::now(), Utc::now() - chrono::Duration::days(1));
        let raised = Spent::rebudgeted(250, Some(400), Some(before), at);
        assert_eq!((raised.points, raised.exhausted_at), (250, None));
        let cut = Spent::rebudgeted(250, Some(200), None, at);
        assert_eq!(cut.exhausted_at, Some(at));
        let still = Spent::rebudgeted(250, Some(250), Some(before), at);
        assert_eq!(still.exhausted_at, Some(before));
        // And a budget below what was spent gives nothing more, never a negative award.
        let mut campaign = rules(None, Some(200));
        let mut book = Book::default();
        book.spent.insert(
            campaign.id,
            Spent {
                points: 250,
                exhausted_at: None,
            },
        );
        let customer = Uuid::now_v7();
        assert_eq!(
            book.fire(&campaign, customer, "x".into(), 10, at),
            Err(Held::Budget)
        );
        campaign.budget_points = None;
        assert_eq!(
            book.fire(&campaign, customer, "y".into(), 0, at),
            Err(Held::Nothing)
        );
    }

    #[test]
    fn without_points_the_limit_counts_firings() {
        let mut campaign = rules(Some(2), Some(10));
        campaign.actions = vec![Action {
            kind: ActionKind::Notify,
            points: None,
            multiplier: None,
            tag: None,
            segment_id: None,
            message: Some("hi".into()),
        }];
        let mut book = Book::default();
        let (customer, at) = (Uuid::now_v7(), Utc::now());
        assert!(book.fire(&campaign, customer, "1".into(), 0, at).is_ok());
        assert!(book.fire(&campaign, customer, "2".into(), 0, at).is_ok());
        assert_eq!(
            book.fire(&campaign, customer, "3".into(), 0, at),
            Err(Held::Limit)
        );
    }

    #[test]
    fn multipliers_add_their_extras_within_the_cap() {
        let mut campaign = rules(None, None);
        campaign.actions = vec![Action {
            kind: ActionKind::MultiplyPoints,
            points: None,
            multiplier: Some(Decimal::new(25, 1)),
            tag: None,
            segment_id: None,
            message: None,
        }];
        assert_eq!(campaign.extra(101, multiplier_room(101)), 151);
        assert_eq!(campaign.extra(101, 40), 40);
        assert_eq!(multiplier_room(10), 90);
    }

    #[test]
    fn a_member_day_is_counted_in_the_programs_time_zone() {
        let trigger = Trigger {
            kind: Some(CampaignTriggerKind::Interaction),
            days_of_week: Some(vec![5]),
            ..Trigger::default()
        };
        let mut purchase = interaction::Model {
            id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            kind: InteractionKind::Purchase,
            // Thursday 2026-12-03 17:00 UTC is Friday 01:00 in Shanghai.
            occurred_at: "2026-12-03T17:00:00Z".parse().unwrap(),
            amount_e4: Some(10_000),
            currency: None,
            channel: None,
            rating: None,
            note: None,
            order_ref: None,
            recorded_by: "t".into(),
            recorded_at: Utc::now(),
        };
        assert!(trigger.matches_interaction(&purchase, chrono_tz::Tz::Asia__Shanghai));
        assert!(!trigger.matches_interaction(&purchase, chrono_tz::Tz::UTC));
        purchase.occurred_at = "2026-12-03T15:59:59Z".parse().unwrap();
        assert!(!trigger.matches_interaction(&purchase, chrono_tz::Tz::Asia__Shanghai));
    }
}
