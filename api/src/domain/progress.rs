//! A customer's progress between tiers: why it holds its tier, and what would take it to
//! the next one (`Customer.tierProgress`).
//!
//! Every number comes from the rules that move tiers: the score and its breakdown from
//! `scoring`, the effect of a purchase from the sums `metrics` scores on, and "reaches
//! the next tier" from `Ladder::live_upgrade` (for purchases) and `Ladder::evaluate` (for
//! the run at the end of a downgrade's grace period). So what the screen promises is what
//! recording the purchase, or the run, does.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::metrics::{Aggregates, average, indicators};
use super::program::ScoringModel;
use super::scoring::{self, IndicatorScore};
use super::tiering::{Ladder, Move, TierLevel};

/// Where the customer stands, as the tier rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub tier_id: Uuid,
    /// A manual move holds the tier: purchases do not upgrade it until the next run.
    pub tier_held: bool,
    pub downgrade_marked_at: Option<DateTime<Utc>>,
    pub points_balance: i64,
}

/// A reward as far as "the next reward" is concerned.
#[derive(Debug, Clone, Copy)]
pub struct RewardOffer {
    pub cost_points: i64,
    /// `None`: unlimited.
    pub stock: Option<i32>,
    pub min_tier_id: Option<Uuid>,
}

/// What the progress is computed from.
pub struct Inputs<'a> {
    pub model: &'a ScoringModel,
    pub ladder: &'a Ladder,
    /// The largest amount one interaction may carry (`maxInteractionAmount`).
    pub max_amount_e4: i64,
    pub standing: Standing,
    pub now: DateTime<Utc>,
    /// The customer's sums as of `now`.
    pub sums_now: Aggregates,
    /// The customer's sums as of the end of its downgrade grace period, when marked.
    pub sums_at_grace_end: Option<Aggregates>,
    /// The active rewards.
    pub rewards: &'a [RewardOffer],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub score: f64,
    pub breakdown: Vec<IndicatorScore>,
    pub tier_id: Uuid,
    pub next_tier_id: Option<Uuid>,
    pub score_to_next: Option<f64>,
    pub spend_to_next_e4: Option<i64>,
    pub purchases_to_next: Option<i64>,
    pub keeps_tier_until: Option<DateTime<Utc>>,
    pub downgrade_to: Option<Uuid>,
    pub points_to_next_reward: Option<i64>,
}

/// When a downgrade mark made at `marked` takes effect: the first run as of this instant
/// or later moves the customer down (if its score has not recovered).
pub fn grace_end(marked: DateTime<Utc>, grace_days: i32) -> DateTime<Utc> {
    marked + Duration::days(grace_days.into())
}

pub fn progress(inputs: &Inputs<'_>) -> Progress {
    let Inputs {
        model,
        ladder,
        standing,
        now,
        sums_now,
        ..
    } = inputs;
    let values = indicators(sums_now, *now);
    let score = scoring::score(model, &values);
    let next = ladder.above(standing.tier_id);
    let keeps_tier_until = standing
        .downgrade_marked_at
        .map(|marked| grace_end(marked, model.downgrade_grace_days));
    Progress {
        score,
        breakdown: scoring::breakdown(model, &values),
        tier_id: standing.tier_id,
        next_tier_id: next.map(|t| t.id),
        score_to_next: next.map(|t| round_tenth((t.min_score - score).max(0.0))),
        spend_to_next_e4: next.and_then(|t| spend_to_reach(inputs, t)),
        purchases_to_next: next.and_then(|t| purchases_to_reach(inputs, t)),
        keeps_tier_until,
        downgrade_to: keeps_tier_until.and_then(|until| downgrade_at(inputs, until)),
        points_to_next_reward: points_to_next_reward(inputs),
    }
}

fn round_tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Whether recording `count` purchases of `amount_e4` now moves the customer to `target`
/// (or higher) by the live-upgrade rule.
fn purchases_reach(inputs: &Inputs<'_>, target: &TierLevel, count: i64, amount_e4: i64) -> bool {
    let sums = inputs.sums_now.with_purchases(count, amount_e4, inputs.now);
    let score = scoring::score(inputs.model, &indicators(&sums, inputs.now));
    inputs
        .ladder
        .live_upgrade(inputs.standing.tier_id, score, inputs.standing.tier_held)
        .is_some_and(|reached| reached.rank >= target.rank)
}

/// The thresholds (ten-thousandths) of `indicator`'s bands.
fn thresholds_e4<'a>(
    model: &'a ScoringModel,
    indicator: &'a str,
) -> impl Iterator<Item = i64> + 'a {
    model
        .bands
        .iter()
        .filter(move |b| b.indicator == indicator)
        .flat_map(|b| b.bands.iter())
        .map(|band| scoring::e4(band.threshold).clamp(i64::MIN.into(), i64::MAX.into()) as i64)
}

/// The smallest of `candidates` for which `reaches` holds.
fn smallest_reaching(
    candidates: impl Iterator<Item = i64>,
    reaches: impl Fn(i64) -> bool,
) -> Option<i64> {
    let mut candidates: Vec<i64> = candidates.collect();
    candidates.sort_unstable();
    candidates.dedup();
    candidates.into_iter().find(|&n| reaches(n))
}

/// The smallest single purchase that reaches `target`. A score changes with the amount
/// only where net spend crosses a monetary threshold, so the answer is the smallest
/// amount (0.0001) or one that lands exactly on a threshold.
fn spend_to_reach(inputs: &Inputs<'_>, target: &TierLevel) -> Option<i64> {
    let spent = inputs.sums_now.net_spend_e4;
    let candidates = std::iter::once(1)
        .chain(thresholds_e4(inputs.model, "monetary").map(|t| t.saturating_sub(spent)))
        .filter(|amount| (1..=inputs.max_amount_e4).contains(amount));
    smallest_reaching(candidates, |amount| {
        purchases_reach(inputs, target, 1, amount)
    })
}

/// The fewest purchases of the customer's average order value that reach `target`:
/// the score changes with their number only where the purchase count crosses a
/// frequency threshold or the spend a monetary one.
fn purchases_to_reach(inputs: &Inputs<'_>, target: &TierLevel) -> Option<i64> {
    let sums = &inputs.sums_now;
    let order = average(sums.purchase_sum_e4, sums.purchases).filter(|aov| *aov > 0)?;
    // In i128: thresholds and stored sums may be anywhere in i64.
    let fit = |n: i128| n.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    let by_frequency = thresholds_e4(inputs.model, "frequency")
        .map(|t| fit((i128::from(t) + 9_999).div_euclid(10_000) - i128::from(sums.purchases)));
    let by_spend = thresholds_e4(inputs.model, "monetary").map(|t| {
        let missing = i128::from(t) - i128::from(sums.net_spend_e4);
        fit((missing + i128::from(order) - 1).div_euclid(i128::from(order)))
    });
    let candidates = std::iter::once(1)
        .chain(by_frequency)
        .chain(by_spend)
        .filter(|count| *count >= 1);
    smallest_reaching(candidates, |count| {
        purchases_reach(inputs, target, count, order)
    })
}

/// The tier the run as of `until` (the end of the grace period) moves the customer to,
/// if it moves it down.
fn downgrade_at(inputs: &Inputs<'_>, until: DateTime<Utc>) -> Option<Uuid> {
    let sums = inputs.sums_at_grace_end.as_ref()?;
    let score = scoring::score(inputs.model, &indicators(sums, until));
    let decision = inputs.ladder.evaluate(
        inputs.standing.tier_id,
        score,
        inputs.standing.downgrade_marked_at,
        until,
        inputs.model.downgrade_grace_days,
    );
    (decision.change == Some(Move::Down)).then_some(decision.tier)
}

/// Points missing for the cheapest reward the customer could redeem but cannot yet
/// afford: active, in stock, open to its tier, costing more than its balance.
fn points_to_next_reward(inputs: &Inputs<'_>) -> Option<i64> {
    let rank = inputs.ladder.get(inputs.standing.tier_id)?.rank;
    let balance = inputs.standing.points_balance;
    inputs
        .rewards
        .iter()
        .filter(|r| r.stock.is_none_or(|stock| stock > 0))
        .filter(|r| {
            r.min_tier_id
                .is_none_or(|min| inputs.ladder.get(min).is_some_and(|t| t.rank <= rank))
        })
        .map(|r| r.cost_points)
        .filter(|cost| *cost > balance)
        .min()
        .map(|cost| cost.saturating_sub(balance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::program::{Band, IndicatorBands};
    use crate::domain::tiering::TierLevel;

    fn ladder() -> (Ladder, [Uuid; 2]) {
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let ladder = Ladder::new(vec![
            TierLevel {
                id: ids[0],
                rank: 0,
                min_score: 0.0,
            },
            TierLevel {
                id: ids[1],
                rank: 1,
                min_score: 50.0,
            },
        ]);
        (ladder, ids)
    }

    /// Hostile numbers — thresholds past i64, sums at its ends, a balance far below
    /// zero — give answers or none, never a panic.
    #[test]
    fn extreme_values_do_not_overflow() {
        let mut model = ScoringModel::default();
        for indicator in &mut model.bands {
            if indicator.indicator == "monetary" || indicator.indicator == "frequency" {
                *indicator = IndicatorBands {
                    indicator: indicator.indicator.clone(),
                    bands: vec![
                        Band {
                            threshold: 1e300,
                            points: 100.0,
                        },
                        Band {
                            threshold: -1e300,
                            points: 0.0,
                        },
                    ],
                };
            }
        }
        let (ladder, ids) = ladder();
        let now = Utc::now();
        for (spend, purchases, balance) in
            [(i64::MAX, i64::MAX, i64::MIN), (i64::MIN, 1, 0), (1, 1, -5)]
        {
            let sums = Aggregates {
                purchases,
                net_spend_e4: spend,
                purchase_sum_e4: spend,
                last_purchase_at: Some(now),
                ..Aggregates::default()
            };
            let offers = [RewardOffer {
                cost_points: i64::MAX,
                stock: None,
                min_tier_id: None,
            }];
            let inputs = Inputs {
                model: &model,
                ladder: &ladder,
                max_amount_e4: i64::MAX,
                standing: Standing {
                    tier_id: ids[0],
                    tier_held: false,
                    downgrade_marked_at: None,
                    points_balance: balance,
                },
                now,
                sums_now: sums,
                sums_at_grace_end: None,
                rewards: &offers,
            };
            let progress = progress(&inputs);
            assert_eq!(progress.next_tier_id, Some(ids[1]));
        }
    }
}
