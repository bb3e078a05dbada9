//! The program's configuration rules: the scoring model, tiers and settings, their
//! defaults (CONTRACT.md, "Default program") and their validation.

use serde::{Deserialize, Serialize};

use super::error::ensure;
use super::money::rate_to_e4;
use super::{DomainError, DomainResult};

/// The indicators a score is made of, in the order the API lists them.
pub const INDICATORS: [&str; 5] = ["recency", "frequency", "monetary", "engagement", "nps"];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub threshold: f64,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorBands {
    pub indicator: String,
    pub bands: Vec<Band>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub recency: f64,
    pub frequency: f64,
    pub monetary: f64,
    pub engagement: f64,
    pub nps: f64,
}

impl Weights {
    /// The weight of `indicator`, 0 for a name that is not an indicator.
    pub fn get(&self, indicator: &str) -> f64 {
        self.all()
            .into_iter()
            .find(|(name, _)| *name == indicator)
            .map_or(0.0, |(_, weight)| weight)
    }

    fn all(&self) -> [(&'static str, f64); 5] {
        [
            ("recency", self.recency),
            ("frequency", self.frequency),
            ("monetary", self.monetary),
            ("engagement", self.engagement),
            ("nps", self.nps),
        ]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoringModel {
    pub window_days: i32,
    pub downgrade_grace_days: i32,
    pub weights: Weights,
    pub bands: Vec<IndicatorBands>,
}

fn bands(indicator: &str, pairs: &[(f64, f64)]) -> IndicatorBands {
    IndicatorBands {
        indicator: indicator.to_owned(),
        bands: pairs
            .iter()
            .map(|&(threshold, points)| Band { threshold, points })
            .collect(),
    }
}

impl Default for ScoringModel {
    fn default() -> Self {
        Self {
            window_days: 365,
            downgrade_grace_days: 30,
            weights: Weights {
                recency: 0.2,
                frequency: 0.3,
                monetary: 0.3,
                engagement: 0.1,
                nps: 0.1,
            },
            bands: vec![
                bands(
                    "recency",
                    &[(30.0, 100.0), (90.0, 70.0), (180.0, 40.0), (365.0, 20.0)],
                ),
                bands(
                    "frequency",
                    &[(12.0, 100.0), (4.0, 70.0), (2.0, 40.0), (1.0, 20.0)],
                ),
                bands(
                    "monetary",
                    &[
                        (10000.0, 100.0),
                        (3000.0, 70.0),
                        (1000.0, 40.0),
                        (0.01, 20.0),
                    ],
                ),
                bands("engagement", &[(12.0, 100.0), (4.0, 70.0), (1.0, 40.0)]),
                bands("nps", &[(9.0, 100.0), (7.0, 50.0)]),
            ],
        }
    }
}

/// Recency is "lower is better": its bands are listed with thresholds rising (≤30, ≤90…);
/// every other indicator is "higher is better", with thresholds falling (≥12, ≥4…).
pub fn lower_is_better(indicator: &str) -> bool {
    indicator == "recency"
}

impl ScoringModel {
    pub fn validate(&self) -> DomainResult<()> {
        ensure(
            (1..=3650).contains(&self.window_days),
            "input.windowDays",
            || "must be between 1 and 3650 days".into(),
        )?;
        ensure(
            (0..=3650).contains(&self.downgrade_grace_days),
            "input.downgradeGraceDays",
            || "must be between 0 and 3650 days".into(),
        )?;
        for (name, weight) in self.weights.all() {
            ensure(
                weight.is_finite() && weight >= 0.0,
                &format!("input.weights.{name}"),
                || "must be a finite number ≥ 0".into(),
            )?;
        }
        ensure(
            self.weights.all().iter().any(|(_, w)| *w > 0.0),
            "input.weights",
            || "at least one weight must be above 0".into(),
        )?;
        ensure(self.bands.len() == INDICATORS.len(), "input.bands", || {
            format!("must list each indicator once: {}", INDICATORS.join(", "))
        })?;
        for (i, indicator) in self.bands.iter().enumerate() {
            validate_indicator_bands(i, indicator)?;
            ensure(
                self.bands
                    .iter()
                    .filter(|b| b.indicator == indicator.indicator)
                    .count()
                    == 1,
                &format!("input.bands[{i}].indicator"),
                || format!("{} is listed more than once", indicator.indicator),
            )?;
        }
        Ok(())
    }
}

/// Checks one indicator's bands, given at position `index` of the input: a known
/// indicator, 1–20 bands, points within 0..100, listed best first.
pub fn validate_indicator_bands(index: usize, indicator: &IndicatorBands) -> DomainResult<()> {
    let field = format!("input.bands[{index}]");
    ensure(
        INDICATORS.contains(&indicator.indicator.as_str()),
        &format!("{field}.indicator"),
        || {
            format!(
                "unknown indicator {:?}; expected one of {}",
                indicator.indicator,
                INDICATORS.join(", ")
            )
        },
    )?;
    ensure(
        !indicator.bands.is_empty() && indicator.bands.len() <= 20,
        &format!("{field}.bands"),
        || "must have between 1 and 20 bands".into(),
    )?;
    for (j, band) in indicator.bands.iter().enumerate() {
        let band_field = format!("{field}.bands[{j}]");
        ensure(
            band.threshold.is_finite(),
            &format!("{band_field}.threshold"),
            || "must be a finite number".into(),
        )?;
        ensure(
            band.points.is_finite() && (0.0..=100.0).contains(&band.points),
            &format!("{band_field}.points"),
            || "must be between 0 and 100".into(),
        )?;
        if j > 0 {
            let previous = indicator.bands[j - 1];
            let lower = lower_is_better(&indicator.indicator);
            let thresholds_in_order = if lower {
                band.threshold > previous.threshold
            } else {
                band.threshold < previous.threshold
            };
            ensure(
                thresholds_in_order && band.points < previous.points,
                &format!("{band_field}.threshold"),
                || {
                    if lower {
                        "bands must be ordered best first: thresholds rising, points falling".into()
                    } else {
                        "bands must be ordered best first: thresholds falling, points falling"
                            .into()
                    }
                },
            )?;
        }
    }
    Ok(())
}

/// A tier as stored: the multiplier in ten-thousandths.
#[derive(Debug, Clone, PartialEq)]
pub struct TierDraft {
    pub key: String,
    pub name: String,
    pub rank: i32,
    pub min_score: f64,
    pub points_multiplier_e4: i64,
    pub benefits: Vec<String>,
}

impl TierDraft {
    pub fn new(
        key: String,
        name: String,
        rank: i32,
        min_score: f64,
        points_multiplier: f64,
        benefits: Vec<String>,
    ) -> DomainResult<Self> {
        let key = key.trim().to_owned();
        ensure(
            !key.is_empty()
                && key.len() <= 64
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
            "input.key",
            || "must be 1–64 characters of a–z, 0–9, _ or -".into(),
        )?;
        let name = name.trim().to_owned();
        ensure(
            !name.is_empty() && name.chars().count() <= 200,
            "input.name",
            || "must be 1–200 characters".into(),
        )?;
        ensure((0..=1000).contains(&rank), "input.rank", || {
            "must be between 0 and 1000".into()
        })?;
        ensure(
            min_score.is_finite() && (0.0..=100.0).contains(&min_score),
            "input.minScore",
            || "must be between 0 and 100".into(),
        )?;
        let points_multiplier_e4 = rate_to_e4(points_multiplier, "input.pointsMultiplier")?;
        ensure(points_multiplier <= 100.0, "input.pointsMultiplier", || {
            "must be at most 100".into()
        })?;
        ensure(benefits.len() <= 50, "input.benefits", || {
            "at most 50 benefits".into()
        })?;
        for (i, benefit) in benefits.iter().enumerate() {
            ensure(
                !benefit.trim().is_empty() && benefit.chars().count() <= 500,
                &format!("input.benefits[{i}]"),
                || "must be 1–500 characters".into(),
            )?;
        }
        Ok(Self {
            key,
            name,
            rank,
            min_score,
            points_multiplier_e4,
            benefits,
        })
    }
}

/// The default tiers: potential, regular, vip.
pub fn default_tiers() -> Vec<TierDraft> {
    [
        ("potential", "Potential", 0, 0.0, 1.0),
        ("regular", "Regular", 1, 35.0, 1.0),
        ("vip", "VIP", 2, 70.0, 2.0),
    ]
    .into_iter()
    .map(|(key, name, rank, min_score, multiplier)| {
        TierDraft::new(
            key.into(),
            name.into(),
            rank,
            min_score,
            multiplier,
            Vec::new(),
        )
        .expect("the default tiers are valid")
    })
    .collect()
}

/// The tiers must keep a tier that every score reaches, or new customers would have none.
pub fn ensure_lowest_tier_starts_at_zero(min_scores_by_rank: &[(i32, f64)]) -> DomainResult<()> {
    let lowest = min_scores_by_rank.iter().min_by_key(|(rank, _)| *rank);
    match lowest {
        Some((_, min_score)) if *min_score == 0.0 => Ok(()),
        Some(_) => Err(DomainError::bad_input(
            "input.minScore",
            "the lowest-ranked tier must have minScore 0 so that every customer has a tier",
        )),
        None => Ok(()),
    }
}

/// Program settings as stored; rates in ten-thousandths.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub base_currency: String,
    pub points_per_currency_unit_e4: i64,
    pub points_expiry_days: i32,
    pub birthday_bonus: i64,
    pub referrer_bonus: i64,
    pub referee_bonus: i64,
    pub max_rewarded_referrals_per_year: i32,
    pub at_risk_days: i32,
    pub churn_days: i32,
    /// The largest amount one interaction may carry, in ten-thousandths.
    pub max_interaction_amount_e4: i64,
    /// Days before a lot expires that `points.expiring` is sent; 0: never.
    pub points_expiry_reminder_days: i32,
    /// The IANA time zone campaigns count days of the week in (`Asia/Shanghai`), and
    /// `END_OF_YEAR` expiry counts years in.
    pub time_zone: String,
    /// Days a purchase's points stay pending after it; 0: spendable at once.
    pub pending_days: i32,
    pub points_expiry_policy: ExpiryPolicy,
    /// Under `END_OF_YEAR`: points earned in year Y expire at the end of Y + this.
    pub points_expiry_years: i32,
    pub transfers_enabled: bool,
    /// The most points a member may transfer out in a calendar month; `None`: no limit.
    pub max_transfer_per_month: Option<i64>,
}

pub use super::points::ExpiryPolicy;

/// The highest `maxInteractionAmount` a program may set (10¹² in the base currency):
/// sums of a customer's amounts stay far inside an `i64` of ten-thousandths.
pub const AMOUNT_LIMIT_CEILING_E4: i64 = 10_000_000_000_000_000;

/// The time zone of a program that names none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

impl Settings {
    /// The program's time zone; a stored name this build does not know counts as the
    /// default (names are checked when saved, so only a newer build's could be unknown).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone
            .parse()
            .unwrap_or(chrono_tz::Tz::Asia__Shanghai)
    }

    pub fn defaults(base_currency: &str) -> Self {
        Self {
            base_currency: base_currency.to_owned(),
            points_per_currency_unit_e4: 10_000,
            points_expiry_days: 365,
            birthday_bonus: 100,
            referrer_bonus: 500,
            referee_bonus: 200,
            max_rewarded_referrals_per_year: 50,
            at_risk_days: 180,
            churn_days: 365,
            max_interaction_amount_e4: 1_000_000_000_000,
            points_expiry_reminder_days: 30,
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            pending_days: 0,
            points_expiry_policy: ExpiryPolicy::Rolling,
            points_expiry_years: 1,
            transfers_enabled: false,
            max_transfer_per_month: None,
        }
    }

    pub fn validate(&self) -> DomainResult<()> {
        ensure(
            self.points_per_currency_unit_e4 <= 1_000_000,
            "input.pointsPerCurrencyUnit",
            || "must be between 0 and 100".into(),
        )?;
        ensure(
            (0..=3650).contains(&self.points_expiry_days),
            "input.pointsExpiryDays",
            || "must be between 0 (never) and 3650 days".into(),
        )?;
        for (field, value) in [
            ("input.birthdayBonus", self.birthday_bonus),
            ("input.referrerBonus", self.referrer_bonus),
            ("input.refereeBonus", self.referee_bonus),
        ] {
            ensure((0..=1_000_000).contains(&value), field, || {
                "must be between 0 and 1000000".into()
            })?;
        }
        ensure(
            (0..=100_000).contains(&self.max_rewarded_referrals_per_year),
            "input.maxRewardedReferralsPerYear",
            || "must be between 0 and 100000".into(),
        )?;
        ensure(
            (1..=3650).contains(&self.at_risk_days),
            "input.atRiskDays",
            || "must be between 1 and 3650 days".into(),
        )?;
        ensure(
            (1..=3650).contains(&self.churn_days),
            "input.churnDays",
            || "must be between 1 and 3650 days".into(),
        )?;
        ensure(
            (1..=AMOUNT_LIMIT_CEILING_E4).contains(&self.max_interaction_amount_e4),
            "input.maxInteractionAmount",
            || "must be greater than 0 and at most 1000000000000".into(),
        )?;
        ensure(
            (0..=365).contains(&self.points_expiry_reminder_days),
            "input.pointsExpiryReminderDays",
            || "must be between 0 (no reminders) and 365 days".into(),
        )?;
        ensure(
            (0..=365).contains(&self.pending_days),
            "input.pendingDays",
            || "must be between 0 (points are spendable at once) and 365 days".into(),
        )?;
        ensure(
            (0..=10).contains(&self.points_expiry_years),
            "input.pointsExpiryYears",
            || "must be between 0 (the end of the year they were earned in) and 10".into(),
        )?;
        if let Some(limit) = self.max_transfer_per_month {
            ensure(
                (1..=super::points::MAX_POINTS).contains(&limit),
                "input.maxTransferPerMonth",
                || {
                    format!(
                        "must be between 1 and {} (null: no limit)",
                        super::points::MAX_POINTS
                    )
                },
            )?;
        }
        ensure(
            self.time_zone.parse::<chrono_tz::Tz>().is_ok(),
            "input.timeZone",
            || "must be an IANA time zone name, such as Asia/Shanghai or Europe/Paris".into(),
        )?;
        ensure(
            self.churn_days > self.at_risk_days,
            "input.churnDays",
            || "must be greater than atRiskDays".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_program_is_valid() {
        ScoringModel::default().validate().unwrap();
        Settings::defaults("CNY").validate().unwrap();
        assert_eq!(default_tiers().len(), 3);
    }

    #[test]
    fn weights_must_not_all_be_zero() {
        let model = ScoringModel {
            weights: Weights {
                recency: 0.0,
                frequency: 0.0,
                monetary: 0.0,
                engagement: 0.0,
                nps: 0.0,
            },
            ..ScoringModel::default()
        };
        let error = model.validate().unwrap_err().to_string();
        assert!(error.contains("input.weights"), "{error}");
    }

    #[test]
    fn negative_weights_are_refused() {
        let mut model = ScoringModel::default();
        model.weights.nps = -0.1;
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("input.weights.nps")
        );
    }

    #[test]
    fn bands_must_be_ordered_best_first() {
        let mut model = ScoringModel::default();
        model.bands[1].bands.swap(0, 1);
        let error = model.validate().unwrap_err().to_string();
        assert!(
            error.contains("input.bands[1].bands[1].threshold"),
            "{error}"
        );

        let mut model = ScoringModel::default();
        model.bands[0].bands.swap(0, 1);
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("input.bands[0].bands[1]")
        );
    }

    #[test]
    fn every_indicator_must_be_listed_once() {
        let mut model = ScoringModel::default();
        model.bands[4].indicator = "recency".into();
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("listed more than once")
        );
        let mut model = ScoringModel::default();
        model.bands[4].indicator = "loyalty".into();
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("unknown indicator")
        );
    }

    #[test]
    fn tier_keys_are_checked() {
        assert!(TierDraft::new("Gold Star".into(), "Gold".into(), 3, 80.0, 1.0, vec![]).is_err());
        assert!(TierDraft::new("gold".into(), "Gold".into(), 3, 120.0, 1.0, vec![]).is_err());
        assert!(TierDraft::new("gold".into(), "Gold".into(), 3, 80.0, 1.5, vec![]).is_ok());
    }

    #[test]
    fn churn_must_come_after_at_risk() {
        let mut settings = Settings::defaults("CNY");
        settings.churn_days = 100;
        assert!(
            settings
                .validate()
                .unwrap_err()
                .to_string()
                .contains("input.churnDays")
        );
    }
}
