//! The scoring model, program settings and tier inputs.

use async_graphql::{InputObject, SimpleObject};

use crate::domain::DomainResult;
use crate::domain::money::{decimal_to_e4, e4_to_decimal, e4_to_rate, rate_to_e4};
use crate::domain::program::{self, TierDraft};
use crate::service::program::{ScoringModelPatch, SettingsPatch};
use rust_decimal::Decimal;

#[derive(SimpleObject)]
pub struct ScoringModel {
    window_days: i32,
    downgrade_grace_days: i32,
    weights: ScoringWeights,
    bands: Vec<IndicatorBands>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "ScoringWeightsInput")]
pub struct ScoringWeights {
    recency: f64,
    frequency: f64,
    monetary: f64,
    engagement: f64,
    nps: f64,
}

/// `indicator`: recency | frequency | monetary | engagement | nps. Bands are listed best
/// first; recency's thresholds are upper bounds (days), the others' lower bounds.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "IndicatorBandsInput")]
pub struct IndicatorBands {
    indicator: String,
    bands: Vec<Band>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "BandInput")]
pub struct Band {
    threshold: f64,
    points: f64,
}

impl From<program::ScoringModel> for ScoringModel {
    fn from(model: program::ScoringModel) -> Self {
        let w = model.weights;
        Self {
            window_days: model.window_days,
            downgrade_grace_days: model.downgrade_grace_days,
            weights: ScoringWeights {
                recency: w.recency,
                frequency: w.frequency,
                monetary: w.monetary,
                engagement: w.engagement,
                nps: w.nps,
            },
            bands: model.bands.into_iter().map(IndicatorBands::from).collect(),
        }
    }
}

impl From<program::IndicatorBands> for IndicatorBands {
    fn from(bands: program::IndicatorBands) -> Self {
        Self {
            indicator: bands.indicator,
            bands: bands
                .bands
                .into_iter()
                .map(|b| Band {
                    threshold: b.threshold,
                    points: b.points,
                })
                .collect(),
        }
    }
}

impl From<IndicatorBands> for program::IndicatorBands {
    fn from(bands: IndicatorBands) -> Self {
        Self {
            indicator: bands.indicator,
            bands: bands
                .bands
                .into_iter()
                .map(|b| program::Band {
                    threshold: b.threshold,
                    points: b.points,
                })
                .collect(),
        }
    }
}

/// Fields left out keep their values; `bands` replaces the bands of the indicators listed.
#[derive(InputObject)]
pub struct ScoringModelInput {
    window_days: Option<i32>,
    downgrade_grace_days: Option<i32>,
    weights: Option<ScoringWeights>,
    bands: Option<Vec<IndicatorBands>>,
}

impl From<ScoringModelInput> for ScoringModelPatch {
    fn from(input: ScoringModelInput) -> Self {
        Self {
            window_days: input.window_days,
            downgrade_grace_days: input.downgrade_grace_days,
            weights: input.weights.map(|w| program::Weights {
                recency: w.recency,
                frequency: w.frequency,
                monetary: w.monetary,
                engagement: w.engagement,
                nps: w.nps,
            }),
            bands: input.bands.map(|b| b.into_iter().map(Into::into).collect()),
        }
    }
}

#[derive(SimpleObject)]
pub struct ProgramSettings {
    base_currency: String,
    points_per_currency_unit: f64,
    /// 0: points never expire.
    points_expiry_days: i32,
    birthday_bonus: i64,
    referrer_bonus: i64,
    referee_bonus: i64,
    max_rewarded_referrals_per_year: i32,
    at_risk_days: i32,
    churn_days: i32,
    /// The largest amount one interaction may carry, in the base currency.
    max_interaction_amount: Decimal,
    /// Days before a lot of points expires that a `points.expiring` webhook is sent; 0:
    /// never.
    points_expiry_reminder_days: i32,
    /// The IANA time zone campaigns count days of the week in, and `END_OF_YEAR`
    /// expiry counts years in.
    time_zone: String,
    /// Days a purchase's points stay pending (not spendable) after it; 0: spendable at
    /// once.
    pending_days: i32,
    points_expiry_policy: PointsExpiryPolicy,
    /// Under `END_OF_YEAR`: points earned in year Y expire at the end of year Y + this.
    points_expiry_years: i32,
    transfers_enabled: bool,
    /// The most points one member may transfer out in a calendar month (in the
    /// program's time zone); null: no limit.
    max_transfer_per_month: Option<i64>,
}

/// When earned points expire. A lot keeps the date it was promised when it was earned:
/// changing the policy applies to points earned afterwards.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq)]
pub enum PointsExpiryPolicy {
    /// `pointsExpiryDays` after they were earned.
    Rolling,
    /// At the end of the year `pointsExpiryYears` after the year they were earned in,
    /// in the program's time zone.
    EndOfYear,
    Never,
}

impl From<program::ExpiryPolicy> for PointsExpiryPolicy {
    fn from(policy: program::ExpiryPolicy) -> Self {
        match policy {
            program::ExpiryPolicy::Rolling => Self::Rolling,
            program::ExpiryPolicy::EndOfYear => Self::EndOfYear,
            program::ExpiryPolicy::Never => Self::Never,
        }
    }
}

impl From<PointsExpiryPolicy> for program::ExpiryPolicy {
    fn from(policy: PointsExpiryPolicy) -> Self {
        match policy {
            PointsExpiryPolicy::Rolling => Self::Rolling,
            PointsExpiryPolicy::EndOfYear => Self::EndOfYear,
            PointsExpiryPolicy::Never => Self::Never,
        }
    }
}

impl From<program::Settings> for ProgramSettings {
    fn from(s: program::Settings) -> Self {
        Self {
            base_currency: s.base_currency,
            points_per_currency_unit: e4_to_rate(s.points_per_currency_unit_e4),
            points_expiry_days: s.points_expiry_days,
            birthday_bonus: s.birthday_bonus,
            referrer_bonus: s.referrer_bonus,
            referee_bonus: s.referee_bonus,
            max_rewarded_referrals_per_year: s.max_rewarded_referrals_per_year,
            at_risk_days: s.at_risk_days,
            churn_days: s.churn_days,
            max_interaction_amount: e4_to_decimal(s.max_interaction_amount_e4),
            points_expiry_reminder_days: s.points_expiry_reminder_days,
            time_zone: s.time_zone,
            pending_days: s.pending_days,
            points_expiry_policy: s.points_expiry_policy.into(),
            points_expiry_years: s.points_expiry_years,
            transfers_enabled: s.transfers_enabled,
            max_transfer_per_month: s.max_transfer_per_month,
        }
    }
}

/// Fields left out keep their values.
#[derive(InputObject)]
pub struct ProgramSettingsInput {
    points_per_currency_unit: Option<f64>,
    points_expiry_days: Option<i32>,
    birthday_bonus: Option<i64>,
    referrer_bonus: Option<i64>,
    referee_bonus: Option<i64>,
    max_rewarded_referrals_per_year: Option<i32>,
    at_risk_days: Option<i32>,
    churn_days: Option<i32>,
    /// The largest amount one interaction may carry (default 100000000).
    max_interaction_amount: Option<Decimal>,
    /// 0 to 365 (default 30).
    points_expiry_reminder_days: Option<i32>,
    /// An IANA time zone name (default `Asia/Shanghai`).
    time_zone: Option<String>,
    /// 0 to 365 (default 0: spendable at once).
    pending_days: Option<i32>,
    points_expiry_policy: Option<PointsExpiryPolicy>,
    /// 0 to 10 (default 1).
    points_expiry_years: Option<i32>,
    transfers_enabled: Option<bool>,
    /// 1 to 1000000000; null lifts the limit.
    max_transfer_per_month: async_graphql::MaybeUndefined<i64>,
}

impl ProgramSettingsInput {
    pub fn into_patch(self) -> DomainResult<SettingsPatch> {
        Ok(SettingsPatch {
            points_per_currency_unit_e4: self
                .points_per_currency_unit
                .map(|r| rate_to_e4(r, "input.pointsPerCurrencyUnit"))
                .transpose()?,
            points_expiry_days: self.points_expiry_days,
            birthday_bonus: self.birthday_bonus,
            referrer_bonus: self.referrer_bonus,
            referee_bonus: self.referee_bonus,
            max_rewarded_referrals_per_year: self.max_rewarded_referrals_per_year,
            at_risk_days: self.at_risk_days,
            churn_days: self.churn_days,
            max_interaction_amount_e4: self
                .max_interaction_amount
                .map(|a| decimal_to_e4(a, "input.maxInteractionAmount"))
                .transpose()?,
            points_expiry_reminder_days: self.points_expiry_reminder_days,
            time_zone: self
                .time_zone
                .map(|zone| zone.trim().chars().take(64).collect()),
            pending_days: self.pending_days,
            points_expiry_policy: self.points_expiry_policy.map(Into::into),
            points_expiry_years: self.points_expiry_years,
            transfers_enabled: self.transfers_enabled,
            max_transfer_per_month: match self.max_transfer_per_month {
                async_graphql::MaybeUndefined::Undefined => None,
                async_graphql::MaybeUndefined::Null => Some(None),
                async_graphql::MaybeUndefined::Value(limit) => Some(Some(limit)),
            },
        })
    }
}

#[derive(InputObject)]
pub struct TierInput {
    key: String,
    name: String,
    rank: i32,
    min_score: f64,
    #[graphql(default_with = "Some(1.0)")]
    points_multiplier: Option<f64>,
    benefits: Option<Vec<String>>,
}

impl TierInput {
    pub fn into_draft(self) -> DomainResult<TierDraft> {
        TierDraft::new(
            self.key,
            self.name,
            self.rank,
            self.min_score,
            self.points_multiplier.unwrap_or(1.0),
            self.benefits.unwrap_or_default(),
        )
    }
}
