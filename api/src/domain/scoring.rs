//! A customer's score from its indicator values (CONTRACT.md, "Default program"): each
//! indicator earns the points of the first band its value reaches, and the score is the
//! weighted mean of the indicators present, rounded to one decimal.
//!
//! The arithmetic is done in integer ten-thousandths, so that a value exactly on a band's
//! threshold always reaches it and a score of x.x5 always rounds the same way.

use serde::{Deserialize, Serialize};

use super::program::{IndicatorBands, ScoringModel, lower_is_better};

/// The values a score is made of, as of the instant scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Indicators {
    /// Whole days since the last purchase; `None` without a purchase in the window, which
    /// scores 0 on recency.
    pub recency_days: Option<i64>,
    pub purchase_count: i64,
    pub net_spend_e4: i64,
    pub engagement_count: i64,
    /// `None` without a survey in the window: the indicator is then left out of the mean.
    pub latest_nps: Option<i32>,
}

const E4: i128 = 10_000;

/// `value` in ten-thousandths, as the score's arithmetic (and tier progress) compares it.
pub(super) fn e4(value: f64) -> i128 {
    (value * E4 as f64).round() as i128
}

/// The band `value_e4` falls in on `bands` and the points it earns: from the best
/// band down, the first whose threshold the value reaches (at or below it for recency,
/// at or above it for the others). The index is the band's place in the program's list
/// (best first); `None` when the value reaches no band, which earns 0.
fn band_of(bands: &IndicatorBands, value_e4: i128) -> (Option<usize>, i128) {
    let mut sorted: Vec<(usize, i128, i128)> = bands
        .bands
        .iter()
        .enumerate()
        .map(|(index, band)| (index, e4(band.threshold), e4(band.points)))
        .collect();
    let lower_is_better = lower_is_better(&bands.indicator);
    if lower_is_better {
        sorted.sort_by_key(|(_, threshold, _)| *threshold);
    } else {
        sorted.sort_by_key(|(_, threshold, _)| std::cmp::Reverse(*threshold));
    }
    sorted
        .into_iter()
        .find(|(_, threshold, _)| {
            if lower_is_better {
                value_e4 <= *threshold
            } else {
                value_e4 >= *threshold
            }
        })
        .map_or((None, 0), |(index, _, points)| (Some(index), points))
}

/// What one indicator contributes to a score.
struct Contribution {
    indicator: &'static str,
    /// The raw value in ten-thousandths; `None` when the customer has none (recency
    /// without a purchase in the window, nps without a survey).
    value_e4: Option<i128>,
    band: Option<usize>,
    points_e4: i128,
    /// Whether the indicator counts in the weighted mean (nps without a survey does not).
    present: bool,
}

/// Each configured indicator's band and points (ten-thousandths), in `INDICATORS` order.
fn contributions(model: &ScoringModel, values: &Indicators) -> Vec<Contribution> {
    let value_of = |indicator: &str| -> Option<i128> {
        match indicator {
            "recency" => values.recency_days.map(|d| d as i128 * E4),
            "frequency" => Some(values.purchase_count as i128 * E4),
            "monetary" => Some(values.net_spend_e4 as i128),
            "engagement" => Some(values.engagement_count as i128 * E4),
            "nps" => values.latest_nps.map(|n| n as i128 * E4),
            _ => None,
        }
    };
    super::program::INDICATORS
        .iter()
        .filter_map(|&indicator| {
            let bands = model.bands.iter().find(|b| b.indicator == indicator)?;
            let value_e4 = value_of(indicator);
            // No purchase in the window: recency scores 0 whatever the bands say, but
            // still counts in the mean; no survey leaves nps out of it.
            let (band, points_e4) = value_e4.map_or((None, 0), |v| band_of(bands, v));
            Some(Contribution {
                indicator,
                value_e4,
                band,
                points_e4,
                present: indicator != "nps" || value_e4.is_some(),
            })
        })
        .collect()
}

/// The score, 0..100 with one decimal: Σ weight·points / Σ weight over the indicators
/// present, rounded half away from zero.
pub fn score(model: &ScoringModel, values: &Indicators) -> f64 {
    let weight_of = |name: &str| e4(model.weights.get(name));
    let (weighted, weights) = contributions(model, values)
        .into_iter()
        .filter(|c| c.present)
        .fold((0i128, 0i128), |(weighted, weights), c| {
            let weight = weight_of(c.indicator);
            (weighted + weight * c.points_e4, weights + weight)
        });
    if weights == 0 {
        return 0.0;
    }
    // points are in ten-thousandths: tenths = weighted / weights / 1000, rounded.
    let numerator = weighted;
    let denominator = weights * 1000;
    let tenths = (2 * numerator + denominator) / (2 * denominator);
    tenths as f64 / 10.0
}

/// One indicator's share of a score (`IndicatorScore` in the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorScore {
    pub indicator: String,
    /// Days since the last purchase, purchases, net spend, engagements or the NPS
    /// rating; `None` when the customer has none.
    pub value: Option<f64>,
    /// The band's place in the program's list for the indicator, best first.
    pub band: Option<i32>,
    pub points: f64,
    /// The indicator's weight in this score: its configured weight over the sum of the
    /// weights of the indicators present (nps without a survey is left out, weight 0),
    /// so that the `weighted` values add up to the score.
    pub weight: f64,
    /// `points × weight`.
    pub weighted: f64,
}

/// How `score` arrives at its value: each configured indicator's value, band, points and
/// effective weight. The `weighted` values add up to the score before its rounding to
/// one decimal.
pub fn breakdown(model: &ScoringModel, values: &Indicators) -> Vec<IndicatorScore> {
    let parts = contributions(model, values);
    let total_weight: f64 = parts
        .iter()
        .filter(|c| c.present)
        .map(|c| model.weights.get(c.indicator))
        .sum();
    parts
        .into_iter()
        .map(|c| {
            let weight = if c.present && total_weight > 0.0 {
                model.weights.get(c.indicator) / total_weight
            } else {
                0.0
            };
            let points = c.points_e4 as f64 / E4 as f64;
            IndicatorScore {
                indicator: c.indicator.to_owned(),
                value: c.value_e4.map(|v| v as f64 / E4 as f64),
                band: c.band.map(|b| b as i32),
                points,
                weight,
                weighted: points * weight,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Indicators {
        Indicators::default()
    }

    fn score_of(values: Indicators) -> f64 {
        score(&ScoringModel::default(), &values)
    }

    #[test]
    fn a_customer_without_anything_scores_zero() {
        assert_eq!(score_of(values()), 0.0);
    }

    #[test]
    fn every_recency_band_boundary() {
        // Only recency earns points here; nps is absent, so the mean is over 0.9 of weight.
        for (days, points) in [
            (0, 100.0),
            (30, 100.0),
            (31, 70.0),
            (90, 70.0),
            (91, 40.0),
            (180, 40.0),
            (181, 20.0),
            (365, 20.0),
            (366, 0.0),
        ] {
            let v = Indicators {
                recency_days: Some(days),
                ..values()
            };
            let expected = ((points * 0.2 / 0.9) * 10.0_f64).round() / 10.0;
            assert_eq!(score_of(v), expected, "{days} days");
        }
    }

    #[test]
    fn every_frequency_engagement_and_monetary_boundary() {
        let model = ScoringModel::default();
        let points = |indicator: &str, v: Indicators| {
            contributions(&model, &v)
                .into_iter()
                .find(|c| c.indicator == indicator)
                .map(|c| c.points_e4 / E4)
                .unwrap()
        };
        for (count, expected) in [
            (0, 0),
            (1, 20),
            (2, 40),
            (3, 40),
            (4, 70),
            (11, 70),
            (12, 100),
        ] {
            let v = Indicators {
                purchase_count: count,
                ..values()
            };
            assert_eq!(points("frequency", v), expected, "{count} purchases");
        }
        for (count, expected) in [(0, 0), (1, 40), (3, 40), (4, 70), (11, 70), (12, 100)] {
            let v = Indicators {
                engagement_count: count,
                ..values()
            };
            assert_eq!(points("engagement", v), expected, "{count} engagements");
        }
        for (spend_e4, expected) in [
            (0, 0),
            (99, 0),
            (100, 20),
            (9_999_999, 20),
            (10_000_000, 40),
            (29_999_999, 40),
            (30_000_000, 70),
            (99_999_999, 70),
            (100_000_000, 100),
            (-5_000_000, 0),
        ] {
            let v = Indicators {
                net_spend_e4: spend_e4,
                ..values()
            };
            assert_eq!(points("monetary", v), expected, "{spend_e4} e4");
        }
        for (rating, expected) in [(0, 0), (6, 0), (7, 50), (8, 50), (9, 100), (10, 100)] {
            let v = Indicators {
                latest_nps: Some(rating),
                ..values()
            };
            assert_eq!(points("nps", v), expected, "nps {rating}");
        }
    }

    #[test]
    fn without_a_survey_the_weights_are_renormalised() {
        let everything = Indicators {
            recency_days: Some(1),
            purchase_count: 12,
            net_spend_e4: 100_000_000,
            engagement_count: 12,
            latest_nps: None,
        };
        assert_eq!(score_of(everything), 100.0);
        let with_bad_survey = Indicators {
            latest_nps: Some(0),
            ..everything
        };
        assert_eq!(score_of(with_bad_survey), 90.0);
        // recency 100·0.2 + frequency 20·0.3 = 26 over 0.9 of weight = 28.888… → 28.9
        let partial = Indicators {
            recency_days: Some(3),
            purchase_count: 1,
            ..values()
        };
        assert_eq!(score_of(partial), 28.9);
    }

    #[test]
    fn scores_round_half_away_from_zero_to_one_decimal() {
        // 20·0.2 + 20·0.3 + 20·0.3 = 16 over 0.9 → 17.777… → 17.8
        let v = Indicators {
            recency_days: Some(300),
            purchase_count: 1,
            net_spend_e4: 10_000,
            ..values()
        };
        assert_eq!(score_of(v), 17.8);
        // With a survey of 7: (16 + 5) / 1.0 = 21.0
        assert_eq!(
            score_of(Indicators {
                latest_nps: Some(7),
                ..v
            }),
            21.0
        );
    }

    #[test]
    fn the_breakdown_adds_up_to_the_score_in_every_band() {
        let model = ScoringModel::default();
        let recency = [None, Some(0), Some(31), Some(91), Some(181), Some(366)];
        let counts = [0, 1, 2, 4, 12];
        let spends = [0, 100, 10_000_000, 30_000_000, 100_000_000, -5_000_000];
        let surveys = [None, Some(0), Some(7), Some(9)];
        for recency_days in recency {
            for purchase_count in counts {
                for net_spend_e4 in spends {
                    for engagement_count in counts {
                        for latest_nps in surveys {
                            let v = Indicators {
                                recency_days,
                                purchase_count,
                                net_spend_e4,
                                engagement_count,
                                latest_nps,
                            };
                            let parts = breakdown(&model, &v);
                            assert_eq!(parts.len(), 5, "every configured indicator");
                            let sum: f64 = parts.iter().map(|p| p.weighted).sum();
                            let score = score(&model, &v);
                            assert!(
                                (sum - score).abs() <= 0.05 + 1e-9,
                                "{v:?}: {sum} vs {score}"
                            );
                            for p in &parts {
                                assert_eq!(p.weighted, p.points * p.weight);
                                // A band's points are the points the program lists for it.
                                let listed = p.band.map_or(0.0, |b| {
                                    model
                                        .bands
                                        .iter()
                                        .find(|i| i.indicator == p.indicator)
                                        .unwrap()
                                        .bands[b as usize]
                                        .points
                                });
                                assert_eq!(p.points, listed, "{v:?} {p:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_breakdown_names_values_and_bands() {
        let v = Indicators {
            recency_days: Some(45),
            purchase_count: 3,
            net_spend_e4: 15_000_000,
            engagement_count: 0,
            latest_nps: None,
        };
        let parts = breakdown(&ScoringModel::default(), &v);
        let by = |name: &str| parts.iter().find(|p| p.indicator == name).unwrap().clone();
        assert_eq!(
            (by("recency").value, by("recency").band),
            (Some(45.0), Some(1))
        );
        assert_eq!(
            (by("frequency").value, by("frequency").band),
            (Some(3.0), Some(2))
        );
        assert_eq!(
            (by("monetary").value, by("monetary").band),
            (Some(1500.0), Some(2))
        );
        assert_eq!(
            (by("engagement").points, by("engagement").band),
            (0.0, None)
        );
        // Without a survey, nps weighs nothing and the others share its weight.
        let nps = by("nps");
        assert_eq!((nps.value, nps.band, nps.weight), (None, None, 0.0));
        assert!((by("frequency").weight - 0.3 / 0.9).abs() < 1e-12);
    }
}
