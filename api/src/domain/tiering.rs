//! Which tier a score earns, and how tiers move (CONTRACT.md, "Default program"):
//! upgrades happen at once, live or in a run; downgrades only in runs, one tier per run,
//! after a mark has aged `downgradeGraceDays`.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// What tiering needs to know of a tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierLevel {
    pub id: Uuid,
    pub rank: i32,
    pub min_score: f64,
}

/// The program's tiers, lowest rank first.
#[derive(Debug, Clone)]
pub struct Ladder {
    tiers: Vec<TierLevel>,
}

impl Ladder {
    pub fn new(mut tiers: Vec<TierLevel>) -> Self {
        tiers.sort_by_key(|t| t.rank);
        Self { tiers }
    }

    pub fn get(&self, id: Uuid) -> Option<&TierLevel> {
        self.tiers.iter().find(|t| t.id == id)
    }

    /// The highest-ranked tier whose `minScore` the score reaches.
    pub fn earned(&self, score: f64) -> Option<&TierLevel> {
        self.tiers.iter().rev().find(|t| score >= t.min_score)
    }

    /// The tier one rank above the tier `id`, if any.
    pub fn above(&self, id: Uuid) -> Option<&TierLevel> {
        let tier = self.get(id)?;
        self.tiers.iter().find(|t| t.rank > tier.rank)
    }

    /// The tier one rank below `tier`, if any.
    fn below(&self, tier: &TierLevel) -> Option<&TierLevel> {
        self.tiers.iter().rev().find(|t| t.rank < tier.rank)
    }

    /// The tier an interaction moves the customer to: a higher one its score now earns,
    /// unless a manual move holds the tier until the next run.
    pub fn live_upgrade(&self, current: Uuid, score: f64, held: bool) -> Option<&TierLevel> {
        if held {
            return None;
        }
        let current = self.get(current)?;
        self.earned(score)
            .filter(|earned| earned.rank > current.rank)
    }

    /// What an evaluation run as of `as_of` does with a customer now in `current`, with
    /// this `score` and downgrade mark.
    pub fn evaluate(
        &self,
        current: Uuid,
        score: f64,
        mark: Option<DateTime<Utc>>,
        as_of: DateTime<Utc>,
        grace_days: i32,
    ) -> RunDecision {
        let stay = |mark| RunDecision {
            tier: current,
            mark,
            change: None,
        };
        let Some(held) = self.get(current) else {
            // A tier the ladder does not know cannot be reasoned about; leave it be.
            return stay(mark);
        };
        if let Some(earned) = self.earned(score).filter(|e| e.rank > held.rank) {
            return RunDecision {
                tier: earned.id,
                mark: None,
                change: Some(Move::Up),
            };
        }
        if score >= held.min_score {
            return stay(None);
        }
        match mark {
            None => stay(Some(as_of)),
            Some(marked) if as_of - marked >= Duration::days(grace_days.into()) => {
                match self.below(held) {
                    Some(lower) => RunDecision {
                        tier: lower.id,
                        mark: None,
                        change: Some(Move::Down),
                    },
                    None => stay(None),
                }
            }
            Some(marked) => stay(Some(marked)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Up,
    Down,
}

/// The tier and downgrade mark a run leaves a customer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunDecision {
    pub tier: Uuid,
    pub mark: Option<DateTime<Utc>>,
    pub change: Option<Move>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> (Ladder, [Uuid; 3]) {
        let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let ladder = Ladder::new(vec![
            TierLevel {
                id: ids[2],
                rank: 2,
                min_score: 70.0,
            },
            TierLevel {
                id: ids[0],
                rank: 0,
                min_score: 0.0,
            },
            TierLevel {
                id: ids[1],
                rank: 1,
                min_score: 35.0,
            },
        ]);
        (ladder, ids)
    }

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(n)
    }

    #[test]
    fn the_earned_tier_is_the_highest_whose_minimum_is_reached() {
        let (ladder, [potential, regular, vip]) = ladder();
        assert_eq!(ladder.earned(0.0).unwrap().id, potential);
        assert_eq!(ladder.earned(34.9).unwrap().id, potential);
        assert_eq!(ladder.earned(35.0).unwrap().id, regular);
        assert_eq!(ladder.earned(69.9).unwrap().id, regular);
        assert_eq!(ladder.earned(70.0).unwrap().id, vip);
    }

    #[test]
    fn live_moves_only_go_up_and_respect_a_manual_hold() {
        let (ladder, [potential, regular, vip]) = ladder();
        assert_eq!(ladder.live_upgrade(potential, 80.0, false).unwrap().id, vip);
        assert!(ladder.live_upgrade(vip, 10.0, false).is_none());
        assert!(ladder.live_upgrade(regular, 50.0, false).is_none());
        assert!(ladder.live_upgrade(potential, 80.0, true).is_none());
    }

    #[test]
    fn downgrades_wait_for_the_grace_period_and_move_one_tier() {
        let (ladder, [_, regular, vip]) = ladder();
        let first = ladder.evaluate(vip, 10.0, None, day(0), 30);
        assert_eq!(
            (first.tier, first.mark, first.change),
            (vip, Some(day(0)), None)
        );
        let early = ladder.evaluate(vip, 10.0, first.mark, day(29), 30);
        assert_eq!(
            (early.tier, early.mark, early.change),
            (vip, Some(day(0)), None)
        );
        let due = ladder.evaluate(vip, 10.0, early.mark, day(30), 30);
        assert_eq!(
            (due.tier, due.mark, due.change),
            (regular, None, Some(Move::Down))
        );
    }

    #[test]
    fn recovering_clears_the_mark_and_upgrades_skip_ranks() {
        let (ladder, [potential, _, vip]) = ladder();
        let recovered = ladder.evaluate(vip, 75.0, Some(day(0)), day(40), 30);
        assert_eq!(
            (recovered.tier, recovered.mark, recovered.change),
            (vip, None, None)
        );
        let up = ladder.evaluate(potential, 90.0, None, day(0), 30);
        assert_eq!((up.tier, up.change), (vip, Some(Move::Up)));
        let bottom = ladder.evaluate(potential, 0.0, None, day(0), 30);
        assert_eq!((bottom.tier, bottom.mark), (potential, None));
    }
}
