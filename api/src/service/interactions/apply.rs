//! The rules of recording, applied to a whole batch in memory, in the order given: what
//! recording one interaction at a time would write, worked out from state read once, so
//! that the batch is written in a fixed number of statements.
//!
//! Per interaction, in order: a refund is checked against its order; a purchase earns
//! points at the multiplier of the tier then held and settles its customer's pending
//! referral; a refund takes back its order's points in proportion; the customer's
//! metrics and score are taken from its interactions up to this one, and a score that
//! reaches a higher tier upgrades it at once. Balances chain across the batch, so a
//! `balanceAfter` is what the row-by-row ledger would have written.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use entity::enums::{InteractionKind, PointsEntryKind, ReferralStatus, TierChangeReason};
use entity::{customer, interaction, pending_points, points_entry, referral, tier_change};
use uuid::Uuid;

use super::Recorded;
use crate::domain::interaction::{self as rules, OrderPaid};
use crate::domain::metrics::{self, Aggregates};
use crate::domain::points::{OrderRefunds, lot_expiry, reversal_due};
use crate::domain::scoring;
use crate::domain::{DomainError, DomainResult};
use crate::service::campaigns::fire::{Decided, ForInteractions};
use crate::store::interactions::OrderHistory;
use crate::store::program_snapshot::Program;
use crate::store::{idempotency, tier_changes};

/// What an interaction's idempotency key (if any) let it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded now.
    New,
    /// The key was used before for the same request: answer with what it produced.
    Replay(Option<Uuid>),
    /// The key was used before for another request.
    Reused,
}

/// One interaction of the batch, as validated.
#[derive(Debug, Clone)]
pub struct Item {
    /// `input` or `inputs[i]`, for error messages.
    pub prefix: String,
    /// Its id is the one its key was claimed with; it is stored only if `New`.
    pub interaction: interaction::Model,
    pub admission: Admission,
    /// The instant its customer is scored at.
    pub as_of: DateTime<Utc>,
}

/// What the batch reads before applying the rules.
#[derive(Debug, Default)]
pub struct State {
    /// The customers involved, read under their locks: everyone named, and the
    /// referrers a first purchase pays.
    pub customers: HashMap<Uuid, customer::Model>,
    /// Each `New` item's sums, by its position in the batch.
    pub aggregates: HashMap<i64, Aggregates>,
    /// Pending referrals, by referee.
    pub pending_referrals: HashMap<Uuid, referral::Model>,
    /// Referrals each referrer had rewarded this calendar year.
    pub rewarded_this_year: HashMap<Uuid, u64>,
    /// The orders the batch's refunds name, by customer and `orderRef`.
    pub orders: HashMap<(Uuid, String), OrderHistory>,
    /// Interactions a key may replay, with the points each caused: earlier calls'
    /// (read before), and this batch's as it records them.
    pub replays: HashMap<Uuid, (interaction::Model, i64)>,
    /// The INTERACTION campaigns the batch may fire.
    pub campaigns: ForInteractions,
}

/// What the batch writes, and answers.
#[derive(Debug, Default)]
pub struct Outcome {
    pub recorded: Vec<Recorded>,
    /// Ledger entries, in the order written, each `balanceAfter` chained.
    pub entries: Vec<points_entry::Model>,
    /// The final state of each customer whose metrics were written.
    pub customers: Vec<customer::Model>,
    pub tier_changes: Vec<tier_change::Model>,
    /// Referrals settled with a bonus for both sides, and refused by the yearly cap.
    pub rewarded_referrals: Vec<Uuid>,
    pub rejected_referrals: Vec<Uuid>,
    /// The campaigns the batch could fire, and the firings decided, in order.
    pub campaigns: ForInteractions,
    pub firings: Vec<Decided>,
    /// Pending lots, new and changed, with the points left in each (0: cancelled).
    pub pending_lots: Vec<pending_points::Model>,
}

/// Applies the rules to `items` in order. `at` is the batch's clock: entries, tier
/// changes and the written metrics carry it.
pub fn apply(
    program: &Program,
    items: Vec<Item>,
    mut state: State,
    caller: &str,
    at: DateTime<Utc>,
) -> DomainResult<Outcome> {
    let mut outcome = Outcome::default();
    let mut written: HashSet<Uuid> = HashSet::new();
    let mut ledger = Ledger {
        customers: &mut state.customers,
        entries: &mut outcome.entries,
        caller,
        at,
    };
    for (seq, item) in items.into_iter().enumerate() {
        let interaction = item.interaction;
        let customer_id = interaction.customer_id;
        match item.admission {
            Admission::Reused => return Err(idempotency::reused()),
            Admission::Replay(previous) => {
                let (first, points) = previous
                    .and_then(|id| state.replays.get(&id).cloned())
                    .ok_or_else(|| {
                        DomainError::Conflict("this idempotency key is already in use".into())
                    })?;
                let customer = ledger.customer(first.customer_id)?.clone();
                outcome.recorded.push(Recorded {
                    interaction: first,
                    customer,
                    points_earned: points,
                    tier_change: None,
                    duplicate: true,
                });
                continue;
            }
            Admission::New => {}
        }
        let current = ledger.customer(customer_id)?.clone();
        let order = interaction
            .order_ref
            .clone()
            .map(|order_ref| (customer_id, order_ref));
        let amount_e4 = interaction.amount_e4.unwrap_or(0);
        // The points this interaction caused itself, and the referral bonus its
        // customer got with it (a first purchase's).
        let (own_points, referral_bonus) = match interaction.kind {
            InteractionKind::Purchase => {
                let earned = crate::domain::points::earned(
                    amount_e4,
                    program.settings.points_per_currency_unit_e4,
                    program.multiplier_e4(current.tier_id),
                )?
                .max(0);
                if earned > 0 {
                    // Inside the return window the points are pending: kept apart from
                    // the balance until `pendingDays` after the purchase.
                    let available_at = interaction.occurred_at
                        + Duration::days(program.settings.pending_days.into());
                    let pending = (available_at > at).then_some(available_at);
                    ledger.append(
                        customer_id,
                        earned,
                        PointsEntryKind::Earn,
                        Some("purchase".to_owned()),
                        lot_expiry(&program.settings, interaction.occurred_at),
                        Some(interaction.id),
                        pending,
                    )?;
                    if let Some(available_at) = pending {
                        let lot = pending_points::Model {
                            id: Uuid::now_v7(),
                            customer_id,
                            entry_id: ledger.last_entry_id(),
                            order_ref: interaction.order_ref.clone(),
                            points: earned,
                            available_at,
                        };
                        match order.as_ref().and_then(|o| state.orders.get_mut(o)) {
                            // A refund later in the batch may cancel it.
                            Some(history) => history.pending.push(lot),
                            None => outcome.pending_lots.push(lot),
                        }
                    }
                }
                if let Some(history) = order.as_ref().and_then(|o| state.orders.get_mut(o)) {
                    history.paid_e4 += amount_e4;
                    history.earned += earned;
                }
                let bonus = match state.pending_referrals.remove(&customer_id) {
                    Some(pending) => settle_referral(
                        program,
                        &pending,
                        &mut state.rewarded_this_year,
                        &mut ledger,
                        &mut outcome.rewarded_referrals,
                        &mut outcome.rejected_referrals,
                    )?,
                    None => 0,
                };
                (earned, bonus)
            }
            // A refund naming no order is a goodwill refund: it takes back nothing.
            InteractionKind::Refund => match &order {
                Some(key) => {
                    let order_ref = &key.1;
                    let history = state.orders.get_mut(key).ok_or_else(|| {
                        DomainError::Internal(anyhow::anyhow!("order {order_ref} was not read"))
                    })?;
                    let reversal = refund(history, interaction.amount_e4, &item.prefix)?;
                    let reason = format!("refund of order {order_ref}");
                    // Points still pending are cancelled first, each as a pending
                    // reversal that activates (to nothing) with its lot; only the rest
                    // is taken from the balance.
                    let mut left = reversal;
                    for lot in history.pending.iter_mut().filter(|lot| lot.points > 0) {
                        let cancelled = lot.points.min(left);
                        if cancelled == 0 {
                            break;
                        }
                        lot.points -= cancelled;
                        left -= cancelled;
                        ledger.append(
                            customer_id,
                            -cancelled,
                            PointsEntryKind::Reversal,
                            Some(reason.clone()),
                            None,
                            Some(interaction.id),
                            Some(lot.available_at),
                        )?;
                    }
                    if left > 0 {
                        ledger.append(
                            customer_id,
                            -left,
                            PointsEntryKind::Reversal,
                            Some(reason),
                            None,
                            Some(interaction.id),
                            None,
                        )?;
                    }
                    (-reversal, 0)
                }
                None => (0, 0),
            },
            _ => (0, 0),
        };
        // Campaigns fire on what the interaction earned itself; their bonus is an
        // entry of its own, tied to the interaction (a refund takes it back with the
        // purchase's points), expiring with them.
        let earned = if interaction.kind == InteractionKind::Purchase {
            own_points
        } else {
            0
        };
        let mut campaign_points = 0;
        for decided in state.campaigns.decide(&interaction, earned, at) {
            let points = decided.firing.points;
            if points > 0 {
                let rules = state.campaigns.rules(decided.campaign);
                ledger.append(
                    customer_id,
                    points,
                    PointsEntryKind::CampaignBonus,
                    Some(format!("campaign {}", rules.name)),
                    lot_expiry(&program.settings, interaction.occurred_at),
                    Some(interaction.id),
                    None,
                )?;
                ledger.name_campaign(rules.id);
                campaign_points += points;
            }
            outcome.firings.push(decided);
        }
        if interaction.kind == InteractionKind::Purchase
            && let Some(history) = order.as_ref().and_then(|o| state.orders.get_mut(o))
        {
            history.earned += campaign_points;
        }
        let own_points = own_points + campaign_points;
        let points_earned = own_points + referral_bonus;

        let aggregates = state
            .aggregates
            .remove(&(seq as i64))
            .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("no sums for inputs[{seq}]")))?;
        let evaluated = metrics::evaluate(
            aggregates,
            item.as_of,
            &program.model,
            &program.settings,
            program.churn.as_ref(),
        );
        let upgrade = program
            .ladder
            .live_upgrade(current.tier_id, evaluated.score, current.tier_held)
            .map(|level| level.id);
        let customer = ledger.customer_mut(customer_id)?;
        write_metrics(customer, &evaluated, item.as_of, at);
        let tier_change = upgrade.map(|to| {
            customer.tier_id = to;
            customer.downgrade_marked_at = None;
            tier_change::Model {
                id: Uuid::now_v7(),
                customer_id,
                from_tier_id: Some(current.tier_id),
                to_tier_id: to,
                reason: TierChangeReason::Interaction,
                score: evaluated.score,
                note: None,
                evaluation_run_id: None,
                changed_at: at,
                breakdown: tier_changes::breakdown_json(&scoring::breakdown(
                    &program.model,
                    &evaluated.indicators,
                )),
            }
        });
        let customer = customer.clone();
        written.insert(customer_id);
        outcome.tier_changes.extend(tier_change.clone());
        state
            .replays
            .insert(interaction.id, (interaction.clone(), own_points));
        outcome.recorded.push(Recorded {
            interaction,
            customer,
            points_earned,
            tier_change,
            duplicate: false,
        });
    }
    outcome.customers = written
        .iter()
        .filter_map(|id| state.customers.get(id).cloned())
        .collect();
    outcome.campaigns = state.campaigns;
    // Lots read with the orders (and new ones a refund in the batch saw) are written
    // with what is left of them.
    for history in state.orders.into_values() {
        outcome.pending_lots.extend(history.pending);
    }
    Ok(outcome)
}

/// The customers' running balances and the entries written so far.
struct Ledger<'a> {
    customers: &'a mut HashMap<Uuid, customer::Model>,
    entries: &'a mut Vec<points_entry::Model>,
    caller: &'a str,
    at: DateTime<Utc>,
}

impl Ledger<'_> {
    fn customer(&self, id: Uuid) -> DomainResult<&customer::Model> {
        self.customers
            .get(&id)
            .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("customer {id} is not locked")))
    }

    fn customer_mut(&mut self, id: Uuid) -> DomainResult<&mut customer::Model> {
        self.customers
            .get_mut(&id)
            .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("customer {id} is not locked")))
    }

    /// Names the campaign the last entry came from.
    fn name_campaign(&mut self, campaign_id: Uuid) {
        if let Some(entry) = self.entries.last_mut() {
            entry.campaign_id = Some(campaign_id);
        }
    }

    fn last_entry_id(&self) -> Uuid {
        self.entries.last().map_or(Uuid::nil(), |entry| entry.id)
    }

    /// Appends an entry. One with `pending` (when its points become spendable) moves
    /// the customer's pending points instead of its balance.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        customer_id: Uuid,
        delta: i64,
        kind: PointsEntryKind,
        reason: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        interaction_id: Option<Uuid>,
        pending: Option<DateTime<Utc>>,
    ) -> DomainResult<()> {
        let (caller, at) = (self.caller.to_owned(), self.at);
        let customer = self.customer_mut(customer_id)?;
        match pending {
            Some(_) => customer.points_pending += delta,
            None => customer.points_balance += delta,
        }
        let balance_after = customer.points_balance;
        self.entries.push(points_entry::Model {
            id: Uuid::now_v7(),
            customer_id,
            delta,
            balance_after,
            kind,
            reason,
            expires_at,
            interaction_id,
            campaign_id: None,
            available_at: pending,
            transfer_id: None,
            created_by: caller,
            created_at: at,
        });
        Ok(())
    }
}

/// Applies a refund to its order: checked against what the order paid and its earlier
/// refunds (when it names an amount), then counted. Returns the points it takes back.
fn refund(order: &mut OrderHistory, amount_e4: Option<i64>, prefix: &str) -> DomainResult<i64> {
    if let Some(amount_e4) = amount_e4 {
        rules::check_refund(
            amount_e4,
            OrderPaid {
                paid_e4: order.paid_e4,
                refunded_e4: order.refunded_e4,
            },
            prefix,
        )?;
        order.refunded_e4 += amount_e4;
    }
    let reversal = reversal_due(OrderRefunds {
        earned: order.earned,
        paid_e4: order.paid_e4,
        refunded_e4: order.refunded_e4,
        reversed: order.reversed,
    });
    order.reversed += reversal;
    Ok(reversal)
}

/// Settles the referee's pending referral at its first purchase: both sides get their
/// bonus as `REFERRAL_BONUS` entries (the referrer's first), unless the referrer already
/// had `maxRewardedReferralsPerYear` rewarded this calendar year, which makes the
/// referral `REJECTED` and pays nobody. Returns the points the referee got.
fn settle_referral(
    program: &Program,
    pending: &referral::Model,
    rewarded_this_year: &mut HashMap<Uuid, u64>,
    ledger: &mut Ledger<'_>,
    rewarded: &mut Vec<Uuid>,
    rejected: &mut Vec<Uuid>,
) -> DomainResult<i64> {
    debug_assert_eq!(pending.status, ReferralStatus::Pending);
    let settings = &program.settings;
    let count = rewarded_this_year.entry(pending.referrer_id).or_default();
    if *count >= u64::try_from(settings.max_rewarded_referrals_per_year).unwrap_or(0) {
        rejected.push(pending.id);
        return Ok(0);
    }
    *count += 1;
    let reason = format!("referral {}", pending.code);
    for (customer_id, bonus) in [
        (pending.referrer_id, settings.referrer_bonus),
        (pending.referee_id, settings.referee_bonus),
    ] {
        if bonus > 0 {
            ledger.append(
                customer_id,
                bonus,
                PointsEntryKind::ReferralBonus,
                Some(reason.clone()),
                None,
                None,
                None,
            )?;
        }
    }
    rewarded.push(pending.id);
    Ok(settings.referee_bonus)
}

/// Writes the evaluated metrics on the customer, as of `as_of`, at wall-clock `at`.
pub(crate) fn write_metrics(
    customer: &mut customer::Model,
    evaluated: &metrics::Evaluated,
    as_of: DateTime<Utc>,
    at: DateTime<Utc>,
) {
    let a = &evaluated.aggregates;
    customer.metrics_as_of = as_of;
    customer.first_purchase_at = a.first_purchase_at;
    customer.last_purchase_at = a.last_purchase_at;
    customer.lifetime_purchase_count = a.lifetime_purchases as i32;
    customer.purchase_count = a.purchases as i32;
    customer.net_spend_e4 = a.net_spend_e4;
    customer.lifetime_spend_e4 = a.lifetime_spend_e4;
    customer.average_order_value_e4 = evaluated.average_order_value_e4;
    customer.engagement_count = a.engagements as i32;
    customer.latest_nps = a.latest_nps;
    customer.outstanding_receivable_e4 = a.receivable_e4;
    customer.repeat_purchase_days = a.history.map_or(0, |h| h.repeat_days);
    customer.first_purchase_day = a.history.map(|h| h.first_day);
    customer.last_purchase_day = a.history.map(|h| h.last_day);
    customer.repeat_spend_e4 = a.history.map_or(0, |h| h.repeat_spend_e4);
    customer.score = evaluated.score;
    customer.lifecycle_stage = evaluated.stage;
    customer.revision += 1;
    customer.metrics_written_at = Some(at);
    customer.updated_at = at;
}
