//! The churn and value outlook of customers: an evaluation run fits the BG/NBD model
//! ([`super::bgnbd`]) and the Gamma-Gamma spend model ([`super::gamma_gamma`]) to every
//! customer's purchase history as of its `asOf` and keeps the parameters with the run;
//! a customer's `pAlive`, expected purchases and CLV come from its history and the
//! current model whenever they are read.
//!
//! A history changes only when the customer buys, while the outlook changes for nearly
//! everyone at every run: keeping histories on the rows and computing the outlook on
//! read lets a daily run write only what changed. Time is counted in whole days (UTC)
//! and the models' unit is the week, as the contract says.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::bgnbd::{self, BgNbd, Observation};
use super::gamma_gamma::{self, GammaGamma, SpendObservation};

const DAYS_PER_WEEK: f64 = 7.0;
/// The horizons of `expectedPurchases90d` and `clv365`, in days.
const PURCHASES_HORIZON_DAYS: f64 = 90.0;
const VALUE_HORIZON_DAYS: f64 = 365.0;

/// The models one evaluation run fitted, as stored with the run (as JSON: `asOf`, the
/// BG/NBD fields, and `spend`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChurnModel {
    pub as_of: DateTime<Utc>,
    #[serde(flatten)]
    pub purchases: BgNbd,
    /// `None` when too few customers repeated, or their spend could not be fitted.
    pub spend: Option<GammaGamma>,
}

/// A customer's purchase history, as the models read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// Days with a purchase after the first such day (x).
    pub repeat_days: i32,
    pub first_day: i32,
    pub last_day: i32,
    /// What the purchases of the repeat days came to.
    pub repeat_spend_e4: i64,
}

/// What the models expect of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook {
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// Undiscounted expected spend over the next 365 days; `None` without a spend model.
    pub clv365_e4: Option<i64>,
}

/// A time's day, counted from 1970-01-01 in UTC.
pub fn day_number(at: DateTime<Utc>) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    (at.date_naive() - epoch).num_days() as i32
}

impl History {
    /// The history kept on a customer's row; `None` for one who never bought.
    pub fn stored(
        repeat_days: i32,
        first_day: Option<i32>,
        last_day: Option<i32>,
        repeat_spend_e4: i64,
    ) -> Option<Self> {
        Some(Self {
            repeat_days,
            first_day: first_day?,
            last_day: last_day?,
            repeat_spend_e4,
        })
    }

    /// Mean spend per repeat day, in currency units.
    fn mean_repeat_spend(&self) -> f64 {
        if self.repeat_days > 0 {
            self.repeat_spend_e4 as f64 / 1e4 / f64::from(self.repeat_days)
        } else {
            0.0
        }
    }
}

impl ChurnModel {
    pub fn as_of_day(&self) -> i32 {
        day_number(self.as_of)
    }

    /// (x, t_x, T) in weeks. T runs to the model's `asOf`, or to the last purchase when a
    /// customer bought after it: its history is known up to then.
    fn weeks(&self, history: &History) -> (f64, f64, f64) {
        let end = self.as_of_day().max(history.last_day);
        (
            f64::from(history.repeat_days),
            f64::from(history.last_day - history.first_day) / DAYS_PER_WEEK,
            f64::from(end - history.first_day) / DAYS_PER_WEEK,
        )
    }

    pub fn p_alive(&self, history: &History) -> f64 {
        let (x, t_x, t) = self.weeks(history);
        self.purchases.p_alive(x, t_x, t)
    }

    pub fn outlook(&self, history: &History) -> Outlook {
        let (x, t_x, t) = self.weeks(history);
        let purchases = &self.purchases;
        let expected = |days: f64| purchases.expected_purchases(days / DAYS_PER_WEEK, x, t_x, t);
        let clv365_e4 = self.spend.and_then(|spend| {
            let per_purchase = spend.expected_spend(x, history.mean_repeat_spend());
            let value = expected(VALUE_HORIZON_DAYS) * per_purchase * 1e4;
            (value.is_finite() && value < i64::MAX as f64).then(|| value.round() as i64)
        });
        Outlook {
            p_alive: purchases.p_alive(x, t_x, t),
            expected_purchases_90d: expected(PURCHASES_HORIZON_DAYS),
            clv365_e4,
        }
    }
}

/// The most customers a fit reads. Nelder–Mead needs thousands of passes over the
/// distinct histories, and a million customers have hundreds of thousands of those, so a
/// larger base is fitted on a systematic sample (every k-th customer the run reads):
/// 20,000 customers pin the four parameters far more tightly than they vary from one
/// run to the next.
pub const MAX_FIT_CUSTOMERS: u64 = 20_000;

/// The histories of a population as of one day, grouped so that fitting costs in
/// proportion to distinct histories, not customers.
#[derive(Debug, Default)]
pub struct Population {
    /// Every `stride`-th customer added is counted (0 and 1: all).
    stride: u64,
    seen: u64,
    /// (x, t_x days, T days) → customers.
    histories: HashMap<(i32, i32, i32), u64>,
    /// (x, repeat spend) → customers, for customers with x ≥ 1 and a positive spend.
    spends: HashMap<(i32, i64), u64>,
}

/// What a run's fit gave: the model, or why there is none; and a note when only the
/// spend model failed.
pub struct Fitted {
    pub model: Option<ChurnModel>,
    pub note: Option<String>,
}

impl Population {
    /// A population of `customers` that will be fitted on a systematic sample of at most
    /// `MAX_FIT_CUSTOMERS` of them.
    pub fn sampling(customers: u64) -> Self {
        Self {
            stride: customers.div_ceil(MAX_FIT_CUSTOMERS),
            ..Self::default()
        }
    }

    /// Counts a customer's history as of `as_of_day` (if the sample takes it); purchases
    /// after it are not counted by the caller, so `last_day ≤ as_of_day`.
    pub fn add(&mut self, history: &History, as_of_day: i32) {
        self.seen += 1;
        if self.stride > 1 && !self.seen.is_multiple_of(self.stride) {
            return;
        }
        let key = (
            history.repeat_days,
            history.last_day - history.first_day,
            as_of_day - history.first_day,
        );
        *self.histories.entry(key).or_default() += 1;
        if history.repeat_days > 0 && history.repeat_spend_e4 > 0 {
            *self
                .spends
                .entry((history.repeat_days, history.repeat_spend_e4))
                .or_default() += 1;
        }
    }

    pub fn fit(&self, as_of: DateTime<Utc>) -> Fitted {
        let observations: Vec<Observation> = self
            .histories
            .iter()
            .map(|(&(x, t_x, t), &customers)| Observation {
                x: f64::from(x),
                t_x: f64::from(t_x) / DAYS_PER_WEEK,
                t: f64::from(t) / DAYS_PER_WEEK,
                customers,
            })
            .collect();
        let purchases = match bgnbd::fit(&observations) {
            Ok(fit) => fit,
            Err(error) => {
                return Fitted {
                    model: None,
                    note: Some(format!("no churn model: {error}")),
                };
            }
        };
        let spends: Vec<SpendObservation> = self
            .spends
            .iter()
            .map(|(&(x, spend_e4), &customers)| SpendObservation {
                x: f64::from(x),
                m: spend_e4 as f64 / 1e4 / f64::from(x),
                customers,
            })
            .collect();
        let (spend, note) = match gamma_gamma::fit(&spends) {
            Ok(spend) => (Some(spend), None),
            Err(error) => (None, Some(format!("no spend model: {error}"))),
        };
        Fitted {
            model: Some(ChurnModel {
                as_of,
                purchases,
                spend,
            }),
            note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> ChurnModel {
        ChurnModel {
            as_of: "1997-09-30T23:59:59Z".parse().unwrap(),
            purchases: BgNbd {
                r: 0.243,
                alpha: 4.414,
                a: 0.793,
                b: 2.426,
                log_likelihood: -9582.4,
                customers: 2357,
            },
            spend: Some(GammaGamma {
                p: 6.25,
                q: 3.74,
                gamma: 15.44,
                customers: 946,
            }),
        }
    }

    fn day(date: &str) -> i32 {
        day_number(format!("{date}T12:00:00Z").parse().unwrap())
    }

    #[test]
    fn days_count_from_the_epoch_in_utc() {
        assert_eq!(day_number("1970-01-01T23:59:59Z".parse().unwrap()), 0);
        assert_eq!(day_number("1970-01-02T00:00:00Z".parse().unwrap()), 1);
        assert_eq!(day_number("1969-12-31T23:00:00Z".parse().unwrap()), -1);
    }

    #[test]
    fn the_outlook_follows_the_model_in_weeks() {
        let model = published();
        // Two repeat days, the last 4 weeks after the first, observed for 30 weeks.
        let first = model.as_of_day() - 210;
        let history = History {
            repeat_days: 2,
            first_day: first,
            last_day: first + 28,
            repeat_spend_e4: 60 * 10_000,
        };
        let bgnbd = model.purchases;
        let outlook = model.outlook(&history);
        assert_eq!(outlook.p_alive, bgnbd.p_alive(2.0, 4.0, 30.0));
        assert_eq!(
            outlook.expected_purchases_90d,
            bgnbd.expected_purchases(90.0 / 7.0, 2.0, 4.0, 30.0)
        );
        let spend = 6.25 * (15.44 + 30.0 * 2.0) / (6.25 * 2.0 + 3.74 - 1.0);
        let clv = bgnbd.expected_purchases(365.0 / 7.0, 2.0, 4.0, 30.0) * spend;
        assert_eq!(outlook.clv365_e4, Some((clv * 1e4).round() as i64));
        assert!(outlook.p_alive > 0.0 && outlook.p_alive < 1.0);
    }

    #[test]
    fn a_purchase_after_the_model_was_fitted_counts_up_to_that_purchase() {
        let model = published();
        let history = History {
            repeat_days: 5,
            first_day: model.as_of_day() - 300,
            last_day: model.as_of_day() + 10,
            repeat_spend_e4: 1,
        };
        // T = t_x: all the model still doubts is a drop-out right after the purchase.
        let weeks = 310.0 / 7.0;
        let p_alive = model.p_alive(&history);
        assert_eq!(p_alive, model.purchases.p_alive(5.0, weeks, weeks));
        let b = &model.purchases;
        assert_eq!(p_alive, 1.0 / (1.0 + b.a / (b.b + 4.0)));
        let once = History {
            repeat_days: 0,
            ..history
        };
        assert_eq!(model.p_alive(&once), 1.0);
    }

    #[test]
    fn a_large_base_is_fitted_on_a_systematic_sample() {
        let history = History {
            repeat_days: 1,
            first_day: 0,
            last_day: 7,
            repeat_spend_e4: 10_000,
        };
        let mut population = Population::sampling(10 * MAX_FIT_CUSTOMERS);
        for _ in 0..10 * MAX_FIT_CUSTOMERS {
            population.add(&history, 70);
        }
        assert_eq!(
            population.histories.values().sum::<u64>(),
            MAX_FIT_CUSTOMERS
        );
        let mut small = Population::sampling(2357);
        for _ in 0..2357 {
            small.add(&history, 70);
        }
        assert_eq!(small.histories.values().sum::<u64>(), 2357);
    }

    #[test]
    fn without_a_spend_model_there_is_no_clv() {
        let model = ChurnModel {
            spend: None,
            ..published()
        };
        let history = History {
            repeat_days: 1,
            first_day: day("1997-01-01"),
            last_day: day("1997-02-01"),
            repeat_spend_e4: 20 * 10_000,
        };
        assert_eq!(model.outlook(&history).clv365_e4, None);
    }

    #[test]
    fn a_population_of_one_time_buyers_fits_no_model_and_says_why() {
        let mut population = Population::default();
        for offset in 0..50 {
            let history = History {
                repeat_days: 0,
                first_day: day("1997-01-01") + offset,
                last_day: day("1997-01-01") + offset,
                repeat_spend_e4: 0,
            };
            population.add(&history, day("1997-09-30"));
        }
        let fitted = population.fit("1997-09-30T23:59:59Z".parse().unwrap());
        assert!(fitted.model.is_none());
        assert!(fitted.note.unwrap().contains("repeat"));
        let fitted = Population::default().fit("1997-09-30T23:59:59Z".parse().unwrap());
        assert!(fitted.model.is_none());
        assert!(fitted.note.unwrap().contains("too few customers"));
    }
}
