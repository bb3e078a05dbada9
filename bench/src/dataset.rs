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
    points_csv.write_record(["customer_ref", "points", "expires_at"])?;

    let rate_scale = rate_scale_for(seed, customers, interactions);
    let now = Utc::now();
    let start = now - Duration::days(i64::from(DAYS));
    let at = |day: f64| start + Duration::seconds((day * 86_400.0) as i64);
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let progress = indicatif::ProgressBar::new(customers);
    let mut written = 0u64;
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
        customer_csv.write_record([
            reference.as_str(),
            &format!("Bench customer {}", index + 1),
            &format!("bench{}@example.com", index + 1),
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

        let mut spent_e4 = 0i64;
        for &day in &purchases {
            let basket = shopper.basket_e4(&mut rng);
            spent_e4 += basket;
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
        // What is left of a point per currency unit after some redemptions.
        let points = spent_e4 / 10_000 * rng.random_range(20..=100) / 100;
        if points > 0 {
            let expires = now + Duration::days(rng.random_range(30..365));
            points_csv.write_record([&reference, &points.to_string(), &stamp(expires)])?;
        }
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
        "wrote {customers} customers and {written} interactions to {} \
         (purchase rates scaled by {rate_scale:.3})",
        dir.display()
    )?;
    Ok(())
}
