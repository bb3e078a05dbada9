//! A synthetic customer base for `tierwise import`: customers who buy the way the churn
//! model assumes (each with a purchase rate and a chance to drop out after every
//! purchase, both varying widely), so that most buy once or twice and a few buy weekly;
//! plus engagement, refunds, referrals and points balances.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One simulated shopper: the BG/NBD process (Poisson purchases at `weekly_rate` while
/// alive; after each purchase gone with probability `drop_out`), and a usual basket.
pub struct Shopper {
    pub weekly_rate: f64,
    pub drop_out: f64,
    pub usual_spend_e4: i64,
    /// Days from the start of the observed period to the first purchase.
    pub first_day: i32,
}

impl Shopper {
    /// Draws a shopper whose first purchase falls in `0..days`; `rate_scale` shifts
    /// everyone's purchase rate (the dataset tunes it to hit an interaction count), and
    /// the drop-out chance is drawn from `drop_out`.
    pub fn draw(
        rng: &mut impl Rng,
        days: i32,
        rate_scale: f64,
        drop_out: std::ops::Range<f64>,
    ) -> Self {
        Self {
            weekly_rate: rng.random_range(-3.0f64..1.0).exp() * rate_scale,
            drop_out: rng.random_range(drop_out),
            usual_spend_e4: rng.random_range(20_0000..300_0000),
            first_day: rng.random_range(0..days),
        }
    }

    /// The days (from the period's start, fractional) this shopper buys on, until it
    /// drops out or the period of `days` ends; the first purchase included.
    pub fn purchase_days(&self, rng: &mut impl Rng, days: i32) -> Vec<f64> {
        let mut at = f64::from(self.first_day);
        let mut purchases = vec![at];
        while !rng.random_bool(self.drop_out) {
            at += -(1.0 - rng.random::<f64>()).ln() / self.weekly_rate * 7.0;
            if at >= f64::from(days) {
                break;
            }
            purchases.push(at);
        }
        purchases
    }

    /// One basket: around the usual spend.
    pub fn basket_e4(&self, rng: &mut impl Rng) -> i64 {
        rng.random_range(self.usual_spend_e4 / 2..self.usual_spend_e4 * 3 / 2)
    }
}

/// Two years of history, ending now.
pub const DAYS: i32 = 730;
/// Loyal enough that two years hold about ten interactions per customer: with drop-out
/// chances up to 0.6 the mean customer buys at most about six times, however often.
const DROP_OUT: std::ops::Range<f64> = 0.005..0.3;
/// A tenth of the customers never bought: prospects from a campaign or a shop's form.
const PROSPECT_SHARE: f64 = 0.1;
/// Besides purchases: visits, service contacts, surveys, campaign responses…
const ENGAGEMENT_PER_PURCHASE: f64 = 0.25;
const REFUND_CHANCE: f64 = 0.03;
const REFERRED_SHARE: f64 = 0.15;

const REGIONS: [&str; 12] = [
    "Shanghai",
    "Beijing",
    "Guangzhou",
    "Shenzhen",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
    "Xi'an",
    "Chongqing",
    "Suzhou",
    "Ningbo",
];
const SURNAMES: [&str; 20] = [
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma",
    "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo",
];
const GIVEN_NAMES: [&str; 16] = [
    "Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jie", "Tao", "Ming", "Hui", "Xin",
    "Yu", "Ping", "Jun",
];
const ENGAGEMENTS: [&str; 4] = ["VISIT", "SERVICE_CONTACT", "SURVEY", "CAMPAIGN_RESPONSE"];

fn engagements(purchases: usize) -> usize {
    (purchases as f64 * ENGAGEMENT_PER_PURCHASE).round() as usize
}

fn customer_rng(seed: u64, customer: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ customer.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How many interactions customer `index` makes at `rate_scale` (the same draws as
/// `write` makes, so that tuning the scale predicts the files exactly).
fn interactions_of(seed: u64, index: u64, rate_scale: f64) -> u64 {
    let mut rng = customer_rng(seed, index);
    if rng.random_bool(PROSPECT_SHARE) {
        return 0;
    }
    let shopper = Shopper::draw(&mut rng, DAYS, rate_scale, DROP_OUT);
    let purchases = shopper.purchase_days(&mut rng, DAYS).len();
    (purchases + engagements(purchases)) as u64 + (purchases as f64 * REFUND_CHANCE) as u64
}

/// The purchase-rate scale at which `customers` make about `interactions` in all
/// (bisection on a sample: more rate, more purchases).
fn rate_scale_for(seed: u64, customers: u64, interactions: u64) -> f64 {
    let sample = customers.min(50_000);
    let target = interactions as f64 / customers as f64;
    let (mut low, mut high) = (0.01f64, 100.0f64);
    for _ in 0..30 {
        let middle = (low * high).sqrt();
        let made: u64 = (0..sample).map(|i| interactions_of(seed, i, middle)).sum();
        if (made as f64 / sample as f64) < target {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low * high).sqrt()
}

/// Writes `customers.csv`, `interactions.csv` and `points.csv` into `dir`.
pub fn write(dir: &Path, customers: u64, interactions: u64, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = |name: &str| -> anyhow::Result<csv::Writer<std::fs::File>> {
        let path = dir.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(csv::Writer::from_writer(file))
    };
    let mut customer_csv = file("customers.csv")?;
    let mut interaction_csv = file("interactions.csv")?;
    let mut points_csv = file("points.csv")?;
    customer_csv.write_record([
        "external_ref",
        "name",
        "email",
        "kind",
        "region",
        "tags",
        "attributes",
        "referred_by",
        "created_at",
    ])?;
    interaction_csv.write_record(["customer_ref", "kind", "occurred_at", "amount", "rating"])?;
    points_csv.write_record([
        "customer_ref",
        "points",
        "reason",
        "expires_at",
        "occurred_at",
    ])?;

    let rate_scale = rate_scale_for(seed, customers, interactions);
    // Whole seconds, as the files hold them, so that lot expiries computed here are the
    // instants the import stores.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).context("the clock")?;
    let start = now - Duration::days(i64::from(DAYS));
    let at = |day: f64| start + Duration::seconds((day * 86_400.0) as i64);
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let progress = indicatif::ProgressBar::new(customers);
    let mut written = 0u64;
    let mut ledger = Ledger::default();
    let mut points_entries = 0u64;
    for index in 0..customers {
        let reference = format!("BENCH-{}", index + 1);
        let mut rng = customer_rng(seed, index);
        let prospect = rng.random_bool(PROSPECT_SHARE);
        let shopper = Shopper::draw(&mut rng, DAYS, rate_scale, DROP_OUT);
        let purchases = if prospect {
            Vec::new()
        } else {
            shopper.purchase_days(&mut rng, DAYS)
        };
        let joined = at(f64::from(shopper.first_day));
        // Promoters: half of all referrals come from the first 2% of customers.
        let referred_by = (index > 0 && rng.random_bool(REFERRED_SHARE)).then(|| {
            let pool = if rng.random_bool(0.5) {
                (customers / 50).clamp(1, index)
            } else {
                index
            };
            format!("BENCH-{}", rng.random_range(0..pool) + 1)
        });
        let business = index % 5 == 0;
        // Names from the index alone (the draws above stay as they were), common ones
        // more often, so that a search's first letters match a share of the base.
        let mixed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        let common = ((mixed % 1000) as f64 / 1000.0).powi(2);
        let surname = SURNAMES[(common * SURNAMES.len() as f64) as usize];
        let given = GIVEN_NAMES[((mixed / 1000) % GIVEN_NAMES.len() as u64) as usize];
        customer_csv.write_record([
            reference.as_str(),
            &format!("{surname} {given} {}", index + 1),
            &format!(
                "{}.{}{}@example.com",
                surname.to_lowercase(),
                given.to_lowercase(),
                index + 1
            ),
            if business { "BUSINESS" } else { "INDIVIDUAL" },
            REGIONS[(rng.random::<f64>().powi(2) * REGIONS.len() as f64) as usize],
            if rng.random_bool(0.2) {
                "newsletter"
            } else {
                ""
            },
            &format!(
                "{{\"companySize\":{}}}",
                [10, 50, 200, 1000][rng.random_range(0..4)]
            ),
            referred_by.as_deref().unwrap_or(""),
            &stamp(joined),
        ])?;

        let mut baskets = Vec::with_capacity(purchases.len());
        for &day in &purchases {
            let basket = shopper.basket_e4(&mut rng);
            baskets.push((at(day), basket));
            let amount = format!("{}.{:02}", basket / 10_000, basket % 10_000 / 100);
            let when = stamp(at(day));
            interaction_csv.write_record([&reference, "PURCHASE", &when, &amount, ""])?;
            written += 1;
            if rng.random_bool(REFUND_CHANCE) {
                let returned = stamp(at((day + 3.0).min(f64::from(DAYS) - 0.01)));
                interaction_csv.write_record([&reference, "REFUND", &returned, &amount, ""])?;
                written += 1;
            }
        }
        for _ in 0..engagements(purchases.len()) {
            let kind = ENGAGEMENTS[rng.random_range(0..ENGAGEMENTS.len())];
            let day = rng.random_range(f64::from(shopper.first_day)..f64::from(DAYS));
            let rating = if kind == "SURVEY" {
                rng.random_range(0..=10).to_string()
            } else {
                String::new()
            };
            interaction_csv.write_record([&reference, kind, &stamp(at(day)), "", &rating])?;
            written += 1;
        }
        // The points these purchases earned, spent and lost as the program would have
        // (its own draws, so that the interactions above stay as they were).
        let mut points_rng = customer_rng(seed ^ POINTS_SEED, index);
        ledger.replay(&mut points_rng, joined, &baskets, now);
        for entry in &ledger.entries {
            points_csv.write_record([
                reference.as_str(),
                &entry.delta.to_string(),
                entry.reason,
                &entry.expires_at.map(stamp).unwrap_or_default(),
                &stamp(entry.at),
            ])?;
        }
        points_entries += ledger.entries.len() as u64;
        if index % 10_000 == 0 {
            progress.set_position(index);
        }
    }
    progress.finish_and_clear();
    for mut writer in [customer_csv, interaction_csv, points_csv] {
        writer.flush()?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {customers} customers, {written} interactions and {points_entries} points \
         entries to {} (purchase rates scaled by {rate_scale:.3})",
        dir.display()
    )?;
    Ok(())
}

/// Purchase points expire this long after the purchase (the default program's
/// `pointsExpiryDays`).
const POINTS_EXPIRY_DAYS: i64 = 365;
/// After a purchase, the chance that the customer redeems part of its points at once.
const REDEEM_CHANCE: f64 = 0.15;
/// A tenth of the customers also hold points that never expire (a goodwill gesture).
const GOODWILL_SHARE: f64 = 0.1;
const POINTS_SEED: u64 = 0x504F_494E_5453;

/// One line of `points.csv`.
pub struct Entry {
    pub at: DateTime<Utc>,
    pub delta: i64,
    pub reason: &'static str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One customer's points history as the program writes it: every purchase earns a point
/// per currency unit (the default program, base tier), which expires
/// `POINTS_EXPIRY_DAYS` later; now and then some are redeemed, soonest-expiring first;
/// points left in a lot when it expires are written off at that instant. The entries go
/// in as `ADJUST` entries (the import's only kind) with the same deltas, expiries and
/// instants, so that lot accounting replays them exactly as the program would.
#[derive(Default)]
pub struct Ledger {
    pub entries: Vec<Entry>,
    /// Open lots: (expires_at, points left), soonest expiry first; `None` last.
    lots: Vec<(Option<DateTime<Utc>>, i64)>,
}

impl Ledger {
    pub fn replay(
        &mut self,
        rng: &mut impl Rng,
        joined: DateTime<Utc>,
        purchases: &[(DateTime<Utc>, i64)],
        now: DateTime<Utc>,
    ) {
        self.entries.clear();
        self.lots.clear();
        if rng.random_bool(GOODWILL_SHARE) {
            self.credit(joined, rng.random_range(50..=300), "goodwill", None);
        }
        for &(at, amount_e4) in purchases {
            self.expire_by(at);
            let points = amount_e4 / 10_000;
            if points > 0 {
                let expires = at + Duration::days(POINTS_EXPIRY_DAYS);
                self.credit(at, points, "purchase", Some(expires));
            }
            let balance: i64 = self.lots.iter().map(|(_, left)| left).sum();
            if balance >= 200 && rng.random_bool(REDEEM_CHANCE) {
                let spent = balance * rng.random_range(30..=100) / 100 / 100 * 100;
                self.debit(at, spent, "redeemed in the old system");
            }
        }
        self.expire_by(now);
    }

    fn credit(
        &mut self,
        at: DateTime<Utc>,
        points: i64,
        reason: &'static str,
        expires_at: Option<DateTime<Utc>>,
    ) {
        self.entries.push(Entry {
            at,
            delta: points,
            reason,
            expires_at,
        });
        self.lots.push((expires_at, points));
        self.lots
            .sort_by_key(|(expires_at, _)| (expires_at.is_none(), *expires_at));
    }

    /// Spends from the soonest-expiring lots (the caller never spends more than is held).
    fn debit(&mut self, at: DateTime<Utc>, points: i64, reason: &'static str) {
        if points <= 0 {
            return;
        }
        self.entries.push(Entry {
            at,
            delta: -points,
            reason,
            expires_at: None,
        });
        let mut owed = points;
        for (_, left) in self.lots.iter_mut() {
            let taken = (*left).min(owed);
            *left -= taken;
            owed -= taken;
        }
        self.lots.retain(|(_, left)| *left > 0);
    }

    /// Writes off, at each expiry instant up to `at`, the points left in the lots that
    /// expire then.
    fn expire_by(&mut self, at: DateTime<Utc>) {
        while let Some(&(Some(expires), _)) = self.lots.first() {
            if expires > at {
                break;
            }
            let left: i64 = self
                .lots
                .iter()
                .take_while(|(e, _)| *e == Some(expires))
                .map(|(_, left)| left)
                .sum();
            self.debit(expires, left, "points expired");
        }
    }
}

#[cfg(test)]
mod tests {
    use tierwise_api::domain::points::{LedgerItem, expired_by, open_lots};

    use super::*;

    /// The generated ledgers are what the program's lot accounting would have left: in
    /// the import's order (time, then line) no balance goes below zero, nothing that has
    /// expired is still open, and the open lots add up to the balance.
    #[test]
    fn ledgers_replay_as_lot_accounting_does() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let start = now - Duration::days(i64::from(DAYS));
        let mut ledger = Ledger::default();
        let (mut expiries, mut redemptions) = (0, 0);
        for customer in 0..2_000u64 {
            let mut rng = customer_rng(7, customer);
            let shopper = Shopper::draw(&mut rng, DAYS, 3.0, DROP_OUT);
            let purchases: Vec<_> = shopper
                .purchase_days(&mut rng, DAYS)
                .into_iter()
                .map(|day| {
                    let at = start + Duration::seconds((day * 86_400.0) as i64);
                    (at, shopper.basket_e4(&mut rng))
                })
                .collect();
            let joined = start + Duration::days(i64::from(shopper.first_day));
            ledger.replay(&mut rng, joined, &purchases, now);
            let mut entries: Vec<_> = ledger.entries.iter().enumerate().collect();
            entries.sort_by_key(|(line, entry)| (entry.at, *line));
            let mut balance = 0;
            let mut items = Vec::new();
            for (_, entry) in entries {
                balance += entry.delta;
                assert!(balance >= 0, "customer {customer}: balance {balance}");
                assert!(entry.at <= now);
                expiries += usize::from(entry.reason == "points expired");
                redemptions += usize::from(entry.reason.starts_with("redeemed"));
                items.push(LedgerItem {
                    delta: entry.delta,
                    expires_at: entry.expires_at,
                });
            }
            assert_eq!(expired_by(&items, now), 0, "customer {customer}");
            let open: i64 = open_lots(&items).iter().map(|(_, left)| left).sum();
            assert_eq!(open, balance, "customer {customer}");
        }
        assert!(
            expiries > 100 && redemptions > 100,
            "{expiries} {redemptions}"
        );
    }
}
