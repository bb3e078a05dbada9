//! A customer's value metrics as of an instant, from the sums the store computes over its
//! interactions; and the score and lifecycle stage they imply.

use crate::domain::analytics::churn::ChurnModel;
use chrono::{DateTime, Duration, Utc};
use entity::enums::LifecycleStage;

use super::lifecycle::{self, LifecycleFacts};
use super::program::{ScoringModel, Settings};
use super::scoring::{self, Indicators};

/// Sums over one customer's interactions that occurred at or before `as_of`; the window
/// ones cover the `windowDays` up to and including `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aggregates {
    pub first_purchase_at: Option<DateTime<Utc>>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub lifetime_purchases: i64,
    /// PURCHASE minus REFUND amounts, all time.
    pub lifetime_spend_e4: i64,
    /// PURCHASE interactions in the window.
    pub purchases: i64,
    /// PURCHASE minus REFUND amounts in the window.
    pub net_spend_e4: i64,
    /// PURCHASE amounts in the window (for the average order value).
    pub purchase_sum_e4: i64,
    pub engagements: i64,
    /// The latest SURVEY rating in the window.
    pub latest_nps: Option<i32>,
    /// SHIPMENT minus PAYMENT amounts, all time.
    pub receivable_e4: i64,
    /// The purchase history the churn and spend models read; `None` without purchases.
    pub history: Option<crate::domain::analytics::churn::History>,
}

/// The start of the scoring window that ends at `as_of` (both ends included).
pub fn window_start(as_of: DateTime<Utc>, window_days: i32) -> DateTime<Utc> {
    as_of - Duration::days(window_days.into())
}

/// Whole days from `from` to `to`, rounded down.
pub fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds().div_euclid(86_400)
}

/// What a customer's row holds after scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluated {
    pub aggregates: Aggregates,
    pub average_order_value_e4: Option<i64>,
    pub score: f64,
    /// The values the score was computed from (`scoring::breakdown` explains it).
    pub indicators: Indicators,
    pub stage: LifecycleStage,
}

/// Scores `aggregates` as of `as_of`.
pub fn evaluate(
    aggregates: Aggregates,
    as_of: DateTime<Utc>,
    model: &ScoringModel,
    settings: &Settings,
    churn: Option<&ChurnModel>,
) -> Evaluated {
    let p_alive = churn
        .zip(aggregates.history)
        .map(|(model, history)| model.p_alive(&history));
    let days_since_last = aggregates.last_purchase_at.map(|at| whole_days(at, as_of));
    let indicators = indicators(&aggregates, as_of);
    let stage = lifecycle::stage(&LifecycleFacts {
        purchases: aggregates.lifetime_purchases,
        days_since_last_purchase: days_since_last,
        p_alive,
        at_risk_days: settings.at_risk_days,
        churn_days: settings.churn_days,
    });
    Evaluated {
        aggregates,
        average_order_value_e4: average(aggregates.purchase_sum_e4, aggregates.purchases),
        score: scoring::score(model, &indicators),
        indicators,
        stage,
    }
}

/// The values `aggregates` score on as of `as_of`.
pub fn indicators(aggregates: &Aggregates, as_of: DateTime<Utc>) -> Indicators {
    Indicators {
        recency_days: aggregates
            .last_purchase_at
            .map(|at| whole_days(at, as_of))
            .filter(|_| aggregates.purchases > 0),
        purchase_count: aggregates.purchases,
        net_spend_e4: aggregates.net_spend_e4,
        engagement_count: aggregates.engagements,
        latest_nps: aggregates.latest_nps,
    }
}

impl Aggregates {
    /// These sums with `count` more purchases of `amount_e4` each made at `at` (as of
    /// `at`, the end of the window): what recording them would make of the values a
    /// score reads.
    pub fn with_purchases(mut self, count: i64, amount_e4: i64, at: DateTime<Utc>) -> Self {
        if count <= 0 {
            return self;
        }
        let spend = count.saturating_mul(amount_e4);
        self.first_purchase_at = self.first_purchase_at.or(Some(at));
        self.last_purchase_at = Some(at);
        self.lifetime_purchases = self.lifetime_purchases.saturating_add(count);
        self.purchases = self.purchases.saturating_add(count);
        self.lifetime_spend_e4 = self.lifetime_spend_e4.saturating_add(spend);
        self.net_spend_e4 = self.net_spend_e4.saturating_add(spend);
        self.purchase_sum_e4 = self.purchase_sum_e4.saturating_add(spend);
        self
    }
}

/// `sum / count` rounded half away from zero; `None` for no items.
pub fn average(sum: i64, count: i64) -> Option<i64> {
    if count <= 0 {
        return None;
    }
    let (sum, count) = (i128::from(sum), i128::from(count));
    let rounded = (2 * sum + sum.signum() * count) / (2 * count);
    Some(rounded as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_days_round_down() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(whole_days(t, t), 0);
        assert_eq!(whole_days(t, t + Duration::hours(23)), 0);
        assert_eq!(
            whole_days(t, t + Duration::days(30) + Duration::hours(23)),
            30
        );
        assert_eq!(whole_days(t, t + Duration::days(31)), 31);
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average(10, 0), None);
        assert_eq!(average(10, 4), Some(3));
        assert_eq!(average(9, 2), Some(5));
        assert_eq!(average(-9, 2), Some(-5));
    }

    #[test]
    fn recency_needs_a_purchase_in_the_window() {
        let as_of = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let old = Aggregates {
            first_purchase_at: Some(as_of - Duration::days(400)),
            last_purchase_at: Some(as_of - Duration::days(400)),
            lifetime_purchases: 1,
            lifetime_spend_e4: 10_000,
            ..Aggregates::default()
        };
        let settings = Settings::defaults("CNY");
        let evaluated = evaluate(old, as_of, &ScoringModel::default(), &settings, None);
        assert_eq!(evaluated.score, 0.0);
        assert_eq!(evaluated.stage, LifecycleStage::Churned);
    }
}
