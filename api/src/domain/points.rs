//! Points rules that need no database: what a valid adjustment and a valid reward are.

use super::DomainResult;
use super::customer::{optional_text, text};
use super::error::ensure;

/// The largest number of points one entry or reward may carry.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// The points a purchase earns: `floor(amount × pointsPerCurrencyUnit × multiplier)`,
/// all three in ten-thousandths. More than `MAX_POINTS` is refused: no single entry may
/// carry more than a hand adjustment could.
pub fn earned(amount_e4: i64, rate_e4: i64, multiplier_e4: i64) -> DomainResult<i64> {
    let points =
        i128::from(amount_e4) * i128::from(rate_e4) * i128::from(multiplier_e4) / 1_000_000_000_000;
    // The message names no figure of the customer's (its earn rate shows its tier).
    ensure(points <= i128::from(MAX_POINTS), "amount", || {
        format!("would earn more than the {MAX_POINTS} points one purchase may earn")
    })?;
    Ok(points.max(0) as i64)
}

/// What one order's refunds have done so far, for `reversal_due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRefunds {
    /// The points the order's purchase earned.
    pub earned: i64,
    /// What the order paid, and what its refunds have refunded (ten-thousandths).
    pub paid_e4: i64,
    pub refunded_e4: i64,
    /// The points its earlier refunds took back.
    pub reversed: i64,
}

/// The points a refund takes back: its order's points in proportion to the amount refunded
/// so far (the order's refunds together, never more than it paid), less what earlier
/// refunds took back, never below zero. Partial refunds that add up to the whole
/// purchase take back exactly what it earned, and never more.
pub fn reversal_due(order: OrderRefunds) -> i64 {
    if order.paid_e4 <= 0 {
        return 0;
    }
    let refunded_share = i128::from(order.refunded_e4.min(order.paid_e4));
    let due = (i128::from(order.earned) * refunded_share / i128::from(order.paid_e4)) as i64;
    (due - order.reversed).max(0)
}

/// Whether an entry of `kind` may take a balance below zero. A refund's reversal takes
/// back what its purchase earned even when it was spent, and an expiry writes off lots
/// the ledger still holds; a redemption or a hand adjustment spends only what is there.
/// Entries that add points never overdraw.
pub fn may_overdraw(kind: entity::enums::PointsEntryKind) -> bool {
    use entity::enums::PointsEntryKind::*;
    match kind {
        Reversal | Expire => true,
        Redeem | Adjust | TransferOut | TransferIn => false,
        Earn | ReferralBonus | BirthdayBonus | CampaignBonus => false,
    }
}

/// When the points a member earns expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryPolicy {
    /// `pointsExpiryDays` after they were earned (never, at 0).
    Rolling,
    /// At the end of the year `pointsExpiryYears` after the year they were earned in,
    /// in the program's time zone (积分年底清零).
    EndOfYear,
    Never,
}

impl ExpiryPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rolling => "ROLLING",
            Self::EndOfYear => "END_OF_YEAR",
            Self::Never => "NEVER",
        }
    }

    /// A stored name this build does not know counts as `ROLLING` (names are checked
    /// when saved, so only a newer build's could be unknown).
    pub fn parse(name: &str) -> Self {
        match name {
            "END_OF_YEAR" => Self::EndOfYear,
            "NEVER" => Self::Never,
            _ => Self::Rolling,
        }
    }
}

/// When points earned at `earned_at` expire under the program's policy: the date is
/// stored on the lot when it is earned, so changing the policy changes only the lots
/// earned afterwards. `END_OF_YEAR` lots expire at the first instant of the year after
/// year Y + `years` (local midnight in `zone`), the instant "the end of the year" ends.
pub fn lot_expiry(
    settings: &super::program::Settings,
    earned_at: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{Datelike, TimeZone};
    match settings.points_expiry_policy {
        ExpiryPolicy::Never => None,
        ExpiryPolicy::Rolling => (settings.points_expiry_days > 0)
            .then(|| earned_at + chrono::Duration::days(settings.points_expiry_days.into())),
        ExpiryPolicy::EndOfYear => {
            let zone = settings.zone();
            let year = earned_at.with_timezone(&zone).year() + settings.points_expiry_years + 1;
            // Midnight exists on every 1 January in the IANA database; the earliest
            // reading is taken should a zone ever repeat it.
            zone.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
                .earliest()
                .map(|start| start.with_timezone(&chrono::Utc))
        }
    }
}

/// A hand adjustment: a non-zero delta and a reason someone can read later.
pub fn adjustment(delta: i64, reason: &str) -> DomainResult<(i64, String)> {
    ensure(delta != 0, "input.delta", || "must not be 0".into())?;
    ensure(delta.abs() <= MAX_POINTS, "input.delta", || {
        format!("must be between -{MAX_POINTS} and {MAX_POINTS}")
    })?;
    Ok((delta, text(reason, "input.reason", 500)?))
}

/// A reward as given, before its `minTierKey` is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardDraft {
    pub name: String,
    pub description: Option<String>,
    pub cost_points: i64,
    pub stock: Option<i32>,
    pub active: bool,
}

impl RewardDraft {
    pub fn new(
        name: &str,
        description: Option<&str>,
        cost_points: i64,
        stock: Option<i32>,
        active: bool,
    ) -> DomainResult<Self> {
        ensure(
            (1..=MAX_POINTS).contains(&cost_points),
            "input.costPoints",
            || format!("must be between 1 and {MAX_POINTS}"),
        )?;
        if let Some(stock) = stock {
            ensure(stock >= 0, "input.stock", || {
                "must be 0 or more (leave it out for unlimited)".into()
            })?;
        }
        Ok(Self {
            name: text(name, "input.name", 200)?,
            description: optional_text(description, "input.description", 2000)?,
            cost_points,
            stock,
            active,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchases_earn_floor_of_amount_times_rate_times_multiplier() {
        // (amount, rate, multiplier, in ten-thousandths) → points, or refused.
        let cases: [(i64, i64, i64, Option<i64>); 9] = [
            // ¥129.90 at 1 point per yuan in a ×2 tier: 259.8 → 259.
            (1_299_000, 10_000, 20_000, Some(259)),
            // Half a yuan earns nothing: points are floored, never rounded up.
            (5_000, 10_000, 10_000, Some(0)),
            // Exactly one point's worth.
            (10_000, 10_000, 10_000, Some(1)),
            // Just under two points' worth at ×1.5: 1.99995 → 1.
            (13_333, 10_000, 15_000, Some(1)),
            // A zero rate or a zero amount earns nothing.
            (1_000_000, 0, 10_000, Some(0)),
            (0, 10_000, 10_000, Some(0)),
            // A fractional rate: 0.1 point per yuan on ¥95 → 9.5 → 9.
            (950_000, 1_000, 10_000, Some(9)),
            // The most one purchase may earn, and one point more.
            (10_000_000_000_000, 10_000, 10_000, Some(MAX_POINTS)),
            (10_000_000_010_000, 10_000, 10_000, None),
        ];
        for (amount, rate, multiplier, expected) in cases {
            let got = earned(amount, rate, multiplier).ok();
            assert_eq!(got, expected, "earned({amount}, {rate}, {multiplier})");
        }
        // The largest purchase at the highest rate and a tier multiplier of 100 does not
        // overflow: it is refused.
        assert!(earned(1_000_000_000_000, 1_000_000, 1_000_000).is_err());
    }

    #[test]
    fn adjustments_need_a_delta_and_a_reason() {
        assert!(adjustment(0, "x").is_err());
        assert!(adjustment(5, " ").is_err());
        assert!(adjustment(MAX_POINTS + 1, "x").is_err());
        assert_eq!(
            adjustment(-5, " goodwill ").unwrap(),
            (-5, "goodwill".into())
        );
    }

    #[test]
    fn rewards_cost_something_and_stock_is_not_negative() {
        assert!(RewardDraft::new("Mug", None, 0, None, true).is_err());
        assert!(RewardDraft::new("Mug", None, 10, Some(-1), true).is_err());
        assert!(RewardDraft::new("", None, 10, None, true).is_err());
        let mug = RewardDraft::new("Mug", Some(""), 10, Some(0), false).unwrap();
        assert_eq!((mug.description, mug.stock), (None, Some(0)));
    }
}

/// A ledger entry as lot accounting sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerItem {
    pub delta: i64,
    /// When a credit's points expire; `None`: never (or a debit).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The credits still unspent after replaying a ledger (oldest entry first): every debit
/// spends from the lots that expire soonest, never-expiring lots last, so that as few
/// points as possible expire. Returns `(expires_at, points left)` per lot with points left.
pub fn open_lots(ledger: &[LedgerItem]) -> Vec<(Option<chrono::DateTime<chrono::Utc>>, i64)> {
    let mut lots: Vec<(Option<chrono::DateTime<chrono::Utc>>, i64)> = Vec::new();
    // What was spent beyond the open lots (a reversal may take a balance below zero):
    // later credits pay it off before they become lots.
    let mut debt = 0;
    for item in ledger {
        if item.delta > 0 {
            let paid = item.delta.min(debt);
            debt -= paid;
            if item.delta > paid {
                lots.push((item.expires_at, item.delta - paid));
            }
            continue;
        }
        let mut owed = -item.delta;
        // Soonest expiry first; never-expiring lots (None) after every dated one.
        lots.sort_by_key(|(expires_at, _)| (expires_at.is_none(), *expires_at));
        for (_, left) in lots.iter_mut() {
            if owed == 0 {
                break;
            }
            let taken = (*left).min(owed);
            *left -= taken;
            owed -= taken;
        }
        debt += owed;
        lots.retain(|(_, left)| *left > 0);
    }
    lots
}

/// Points of open lots that expire at or before `at`.
pub fn expired_by(ledger: &[LedgerItem], at: chrono::DateTime<chrono::Utc>) -> i64 {
    open_lots(ledger)
        .iter()
        .filter(|(expires_at, _)| expires_at.is_some_and(|e| e <= at))
        .map(|(_, left)| left)
        .sum()
}

#[cfg(test)]
mod lot_tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(n)
    }

    fn credit(points: i64, expires: Option<i64>) -> LedgerItem {
        LedgerItem {
            delta: points,
            expires_at: expires.map(day),
        }
    }

    fn debit(points: i64) -> LedgerItem {
        LedgerItem {
            delta: -points,
            expires_at: None,
        }
    }

    #[test]
    fn spending_takes_the_soonest_expiring_points_first() {
        let ledger = [
            credit(100, Some(10)),
            credit(50, None),
            credit(70, Some(5)),
            debit(90),
        ];
        // 70 expiring on day 5 go first, then 20 of the 100 expiring on day 10.
        assert_eq!(open_lots(&ledger), vec![(Some(day(10)), 80), (None, 50)]);
        assert_eq!(expired_by(&ledger, day(9)), 0);
        assert_eq!(expired_by(&ledger, day(10)), 80);
    }

    #[test]
    fn spending_beyond_the_lots_is_paid_off_by_later_credits() {
        // 100 earned and spent, then a reversal of 100 more: 100 owed.
        let ledger = [
            credit(100, Some(50)),
            debit(100),
            debit(100),
            credit(150, Some(1)),
        ];
        assert_eq!(open_lots(&ledger), vec![(Some(day(1)), 50)]);
        assert_eq!(expired_by(&ledger, day(1)), 50);
    }

    #[test]
    fn expired_points_once_written_off_do_not_expire_again() {
        let mut ledger = vec![credit(100, Some(1)), credit(40, Some(30)), debit(30)];
        assert_eq!(expired_by(&ledger, day(2)), 70);
        ledger.push(debit(70)); // the EXPIRE entry
        assert_eq!(expired_by(&ledger, day(2)), 0);
        assert_eq!(expired_by(&ledger, day(30)), 40);
    }
}

/// The year of the birthday that falls in the 30 days up to and including `as_of` (by
/// date), if one does. A 29 February birthday is kept on 28 February in other years.
pub fn birthday_in_window(
    birthday: chrono::NaiveDate,
    as_of: chrono::DateTime<chrono::Utc>,
) -> Option<i32> {
    use chrono::{Datelike, NaiveDate};
    let today = as_of.date_naive();
    let first = today - chrono::Duration::days(29);
    [today.year() - 1, today.year()].into_iter().find(|&year| {
        let day = NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28));
        day.is_some_and(|day| first <= day && day <= today)
    })
}

#[cfg(test)]
mod birthday_tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::birthday_in_window;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_window_is_the_thirty_days_up_to_and_including_as_of() {
        let as_of = Utc.with_ymd_and_hms(2026, 3, 30, 12, 0, 0).unwrap();
        assert_eq!(birthday_in_window(date(1990, 3, 30), as_of), Some(2026));
        assert_eq!(birthday_in_window(date(1990, 3, 1), as_of), Some(2026));
        assert_eq!(birthday_in_window(date(1990, 2, 28), as_of), None);
        assert_eq!(birthday_in_window(date(1990, 3, 31), as_of), None);
    }

    #[test]
    fn windows_cross_new_year_and_leap_days_fall_on_the_28th() {
        let january = Utc.with_ymd_and_hms(2027, 1, 10, 0, 0, 0).unwrap();
        assert_eq!(birthday_in_window(date(1985, 12, 20), january), Some(2026));
        let march = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(birthday_in_window(date(2000, 2, 29), march), Some(2027));
    }
}

#[cfg(test)]
mod expiry_policy_tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::program::Settings;

    fn settings(policy: ExpiryPolicy, years: i32) -> Settings {
        Settings {
            points_expiry_policy: policy,
            points_expiry_years: years,
            ..Settings::defaults("CNY")
        }
    }

    #[test]
    fn end_of_year_counts_years_in_the_program_time_zone() {
        let policy = settings(ExpiryPolicy::EndOfYear, 1);
        // 31 December 2026, 17:00 UTC is already 1 January 2027 in Shanghai: earned in
        // 2027, it lasts until the end of 2028.
        let late = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
        let end_2028 = Utc.with_ymd_and_hms(2028, 12, 31, 16, 0, 0).unwrap();
        assert_eq!(lot_expiry(&policy, late), Some(end_2028));
        // An hour earlier it was still 2026 there: the end of 2027.
        let early = Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap();
        let end_2027 = Utc.with_ymd_and_hms(2027, 12, 31, 16, 0, 0).unwrap();
        assert_eq!(lot_expiry(&policy, early), Some(end_2027));
        // Zero years: the end of the year they were earned in.
        let same_year = settings(ExpiryPolicy::EndOfYear, 0);
        let end_2026 = Utc.with_ymd_and_hms(2026, 12, 31, 16, 0, 0).unwrap();
        assert_eq!(lot_expiry(&same_year, early), Some(end_2026));
    }

    #[test]
    fn rolling_and_never() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let rolling = settings(ExpiryPolicy::Rolling, 1);
        assert_eq!(
            lot_expiry(&rolling, at),
            Some(at + chrono::Duration::days(365))
        );
        let off = Settings {
            points_expiry_days: 0,
            ..rolling
        };
        assert_eq!(lot_expiry(&off, at), None);
        assert_eq!(lot_expiry(&settings(ExpiryPolicy::Never, 1), at), None);
    }
}

#[cfg(test)]
mod reversal_tests {
    use super::*;

    fn order(earned: i64, paid: i64, refunded: i64, reversed: i64) -> OrderRefunds {
        OrderRefunds {
            earned,
            paid_e4: paid * 10_000,
            refunded_e4: refunded * 10_000,
            reversed,
        }
    }

    #[test]
    fn refunds_take_back_points_in_proportion_and_never_more_than_earned() {
        // (earned, paid, refunded so far, reversed before, due now)
        let cases = [
            (100, 200, 0, 0, 0),     // nothing refunded yet
            (100, 200, 50, 0, 25),   // a quarter
            (100, 200, 100, 25, 25), // half in all, a quarter taken already
            (100, 200, 200, 50, 50), // the rest: exactly what it earned in all
            (100, 200, 300, 100, 0), // refunded more than paid: nothing beyond
            (100, 300, 100, 0, 33),  // a third rounds down…
            (100, 300, 200, 33, 33), // …and the next third too…
            (100, 300, 300, 66, 34), // …so the last takes the remainder
            (7, 0, 0, 0, 0),         // a free order earned nothing to take back
            (100, 200, 100, 80, 0),  // taken back more than due already: never negative
        ];
        for (earned, paid, refunded, reversed, due) in cases {
            assert_eq!(
                reversal_due(order(earned, paid, refunded, reversed)),
                due,
                "earned {earned}, paid {paid}, refunded {refunded}, reversed {reversed}"
            );
        }
    }
}
