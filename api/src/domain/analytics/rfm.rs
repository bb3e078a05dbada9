//! RFM (CONTRACT.md, "RFM"): each of R, F and M is `ceil(5 × cume_dist())` over the
//! customers with a purchase in the window, ordered worst to best, so that ties share a
//! score; the (R, F) pair then names the segment.

use entity::enums::RfmSegment;

/// `ceil(5 × cume_dist)`, where `cume_dist = at_or_below / total`: the number of customers
/// ordered at or before this one (its ties included) over all of them. Integer arithmetic,
/// so that a customer exactly on a fifth gets the lower score on every platform.
pub fn quintile(at_or_below: i64, total: i64) -> i16 {
    if total <= 0 {
        return 1;
    }
    let score = (5 * at_or_below + total - 1) / total;
    score.clamp(1, 5) as i16
}

/// The segment of an (R, F) pair: the 5×5 grid documented in the README ("RFM segments").
/// Rows are R from 5 (bought most recently) down to 1; columns F from 1 to 5.
const GRID: [[RfmSegment; 5]; 5] = {
    use RfmSegment::*;
    [
        // R = 5
        [
            NewCustomers,
            PotentialLoyalist,
            PotentialLoyalist,
            Champions,
            Champions,
        ],
        // R = 4
        [
            Promising,
            PotentialLoyalist,
            PotentialLoyalist,
            Loyal,
            Loyal,
        ],
        // R = 3
        [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal],
        // R = 2
        [Hibernating, Hibernating, AtRisk, AtRisk, CannotLose],
        // R = 1
        [Lost, Hibernating, AtRisk, AtRisk, CannotLose],
    ]
};

pub fn segment(recency: i16, frequency: i16) -> RfmSegment {
    let r = recency.clamp(1, 5) as usize;
    let f = frequency.clamp(1, 5) as usize;
    GRID[5 - r][f - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_follow_cume_dist_and_ties_share() {
        // Ten customers, all distinct: two per quintile.
        let scores: Vec<i16> = (1..=10).map(|k| quintile(k, 10)).collect();
        assert_eq!(scores, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        // Four customers tied at the bottom of ten: cume_dist 0.4 for each → 2.
        assert_eq!(quintile(4, 10), 2);
        // Everyone tied: cume_dist 1 → 5.
        assert_eq!(quintile(7, 7), 5);
        assert_eq!(quintile(1, 1), 5);
        // Exactly on a fifth stays in it; just above moves up.
        assert_eq!(quintile(20, 100), 1);
        assert_eq!(quintile(21, 100), 2);
    }

    #[test]
    fn every_pair_has_a_segment_and_every_segment_a_pair() {
        use sea_orm::Iterable;
        let mut seen = std::collections::HashSet::new();
        for r in 1..=5 {
            for f in 1..=5 {
                seen.insert(segment(r, f));
            }
        }
        for s in RfmSegment::iter() {
            assert!(seen.contains(&s), "{s:?} is reachable");
        }
        assert_eq!(segment(5, 5), RfmSegment::Champions);
        assert_eq!(segment(1, 1), RfmSegment::Lost);
        assert_eq!(segment(1, 5), RfmSegment::CannotLose);
        assert_eq!(segment(5, 1), RfmSegment::NewCustomers);
    }
}
