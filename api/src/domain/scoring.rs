//! A customer's score from its indicator values (CONTRACT.md, "Default program"): each
//! indicator earns the points of the first band its value reaches, and the score is the
//! weighted mean of the indicators present, rounded to one decimal.
//!
//! The arithmetic is done in integer ten-thousandths, so that a value exactly on a band's
//! threshold always reaches it and a score of x.x5 always rounds the same way.

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

fn e4(value: f64) -> i128 {
    (value * E4 as f64).round() as i128
}

/// The points `value_e4` earns on `bands`: from the top, the first band whose threshold
/// the value reaches (at or below it for recency, at or above it for the others).
fn band_points_e4(bands: &IndicatorBands, value_e4: i128) -> i128 {
    let mut sorted: Vec<(i128, i128)> = bands
        .bands
        .iter()
        .map(|band| (e4(band.threshold), e4(band.points)))
        .collect();
    if lower_is_better(&bands.indicator) {
        sorted.sort_by_key(|(threshold, _)| *threshold);
        sorted
            .into_iter()
            .find(|(threshold, _)| value_e4 <= *threshold)
            .map_or(0, |(_, points)| points)
    } else {
        sorted.sort_by_key(|(threshold, _)| std::cmp::Reverse(*threshold));
        sorted
            .into_iter()
            .find(|(threshold, _)| value_e4 >= *threshold)
            .map_or(0, |(_, points)| points)
    }
}

/// The points (ten-thousandths) each present indicator earns, by indicator name.
fn indicator_points(model: &ScoringModel, values: &Indicators) -> Vec<(&'static str, i128)> {
    let value_of = |indicator: &str| -> Option<i128> {
        match indicator {
            "recency" => Some(values.recency_days.map_or(i128::MAX, |d| d as i128 * E4)),
            "frequency" => Some(values.purchase_count as i128 * E4),
            "monetary" => Some(values.net_spend_e4 as i128),
            "engagement" => Some(values.engagement_count as i128 * E4),
            "nps" => values.latest_nps.map(|n| n as i128 * E4),
            _ => None,
        }
    };
    super::program::INDICATORS
        .iter()
        .filter_map(|&name| {
            let bands = model.bands.iter().find(|b| b.indicator == name)?;
            let points = match (name, value_of(name)?) {
                // No purchase in the window: recency scores 0 whatever the bands say.
                ("recency", i128::MAX) => 0,
                (_, value) => band_points_e4(bands, value),
            };
            Some((name, points))
        })
        .collect()
}

/// The score, 0..100 with one decimal: Σ weight·points / Σ weight over the indicators
/// present, rounded half away from zero.
pub fn score(model: &ScoringModel, values: &Indicators) -> f64 {
    let weight_of = |name: &str| e4(model.weights.get(name));
    let (weighted, weights) = indicator_points(model, values).into_iter().fold(
        (0i128, 0i128),
        |(weighted, weights), (name, points)| {
            let weight = weight_of(name);
            (weighted + weight * points, weights + weight)
        },
    );
    if weights == 0 {
        return 0.0;
    }
    // points are in ten-thousandths: tenths = weighted / weights / 1000, rounded.
    let numerator = weighted;
    let denominator = weights * 1000;
    let tenths = (2 * numerator + denominator) / (2 * denominator);
    tenths as f64 / 10.0
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
            indicator_points(&model, &v)
                .into_iter()
                .find(|(n, _)| *n == indicator)
                .map(|(_, p)| p / E4)
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
}
