//! The demo data set: a few hundred customers across regions, industries and kinds, with
//! a year of purchases, refunds, visits, surveys, shipments and payments and the points
//! they earned, evaluated once so that GraphiQL shows every tier, lifecycle stage and RFM
//! segment on a fresh machine; plus a rewards catalogue, redemptions, referrals and a
//! few marketing segments.
//! Generated from a fixed seed: every demo database has the same customers and history
//! (dated relative to when it was loaded).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::enums::{Channel, CustomerKind, InteractionKind, PointsEntryKind, SegmentKind};
use entity::{customer, interaction, points_entry};
use rust_decimal::Decimal;

use uuid::Uuid;

use crate::domain::DomainResult;
use crate::domain::interaction::RawInteraction;
use crate::domain::points::RewardDraft;
use crate::jobs::evaluation::{self, Quiet, RunRequest};
use crate::service::customers::{self, ProfileInput};
use crate::service::interactions::{self, CustomerRef, RecordRequest};
use crate::service::segments::{self as service_segments, SegmentInput};
use crate::service::{Caller, referrals, rewards as service_rewards};
use crate::store::{Db, customers as store_customers};

pub const CUSTOMERS: usize = 300;

const SURNAMES: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
];
const GIVEN: &[&str] = &[
    "Wei", "Fang", "Na", "Min", "Jing", "Lei", "Yan", "Jun", "Tao", "Hui", "Xin", "Yu", "Hao",
    "Lin",
];
const COMPANIES: &[&str] = &[
    "Tech",
    "Trading",
    "Manufacturing",
    "Logistics",
    "Foods",
    "Textiles",
    "Electronics",
];
const REGIONS: &[&str] = &[
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
];
const INDUSTRIES: &[&str] = &[
    "retail",
    "real-estate",
    "manufacturing",
    "services",
    "e-commerce",
    "hospitality",
];
const TAGS: &[&str] = &[
    "newsletter",
    "wechat",
    "app-user",
    "store-regular",
    "corporate-gift",
    "tea-lover",
    "sports",
];
const INTERESTS: &[&str] = &[
    "tea",
    "electronics",
    "fashion",
    "travel",
    "home",
    "outdoor",
    "books",
    "beauty",
];

/// The demo customers and their history; returns how many customers it created.
pub async fn load(db: &Db) -> DomainResult<usize> {
    let inputs = profiles(CUSTOMERS);
    let created = customers::create_many(db, inputs).await?;
    let now = crate::store::now();
    let mut rng = StdRng::seed_from_u64(20261124);
    let history: Vec<interaction::Model> = created
        .iter()
        .flat_map(|c| history(&mut rng, c.id, c.kind == CustomerKind::Business, now))
        .collect();
    let ledger = earned_points(&history);
    db.write(move |txn| {
        // Bulk inserts: the evaluation run below derives every metric from them.
        Box::pin(async move { crate::store::demo::insert_history(txn, history, ledger).await })
    })
    .await?;
    let request = RunRequest {
        as_of: Some(now),
        customer_ids: None,
        requested_by: "demo".into(),
    };
    evaluation::run(db, request, &Quiet).await?;
    loyalty(db, &mut rng).await?;
    segments(db, &created).await?;
    Ok(created.len())
}

/// Segments a marketing team would start with, saved through the real operations.
async fn segments(db: &Db, created: &[customer::Model]) -> DomainResult<()> {
    use serde_json::json;
    let dynamic = [
        (
            "Churn-risk VIPs",
            "VIPs whose purchases have slowed or stopped",
            json!({"all": [
                {"field": "tier", "op": "eq", "value": "vip"},
                {"any": [
                    {"field": "lifecycleStage", "op": "in", "value": ["AT_RISK", "CHURNED"]},
                    {"field": "recencyDays", "op": "gt", "value": 120},
                ]},
            ]}),
        ),
        (
            "Big spenders, quiet for 90 days",
            "Lifetime spend of 3,000 or more and no purchase in the last 90 days",
            json!({"all": [
                {"field": "lifetimeSpend", "op": "gte", "value": "3000"},
                {"field": "recencyDays", "op": "gt", "value": 90},
            ]}),
        ),
        (
            "Promoters",
            "Latest survey rating 9 or 10",
            json!({"field": "latestNps", "op": "gte", "value": 9}),
        ),
        (
            "Shanghai tea lovers",
            "Customers in Shanghai who like tea",
            json!({"all": [
                {"field": "region", "op": "eq", "value": "Shanghai"},
                {"any": [
                    {"field": "attributes.interests", "op": "contains", "value": "tea"},
                    {"field": "tags", "op": "contains", "value": "tea-lover"},
                ]},
            ]}),
        ),
        (
            "Large business accounts",
            "Businesses with 200 or more employees",
            json!({"all": [
                {"field": "kind", "op": "eq", "value": "BUSINESS"},
                {"field": "attributes.companySize", "op": "gte", "value": 200},
            ]}),
        ),
    ];
    for (name, description, rule) in dynamic {
        service_segments::create(
            db,
            SegmentInput {
                name: name.into(),
                description: Some(description.into()),
                kind: SegmentKind::Dynamic,
                rule: Some(rule),
            },
        )
        .await?;
    }
    let guests = service_segments::create(
        db,
        SegmentInput {
            name: "Spring launch guests".into(),
            description: Some("Invited to the spring launch event".into()),
            kind: SegmentKind::Static,
            rule: None,
        },
    )
    .await?;
    let invited: Vec<Uuid> = created.iter().step_by(25).map(|c| c.id).collect();
    service_segments::add_members(db, guests.id, &invited).await?;
    Ok(())
}

/// The points the demo purchases earned when recorded (every customer was in the lowest
/// tier then, multiplier 1.0), and what refunds of those orders took back, as ledger
/// entries in the order they happened.
fn earned_points(history: &[interaction::Model]) -> Vec<points_entry::Model> {
    let mut by_customer: HashMap<Uuid, Vec<&interaction::Model>> = HashMap::new();
    for item in history {
        by_customer.entry(item.customer_id).or_default().push(item);
    }
    let mut customers: Vec<Uuid> = by_customer.keys().copied().collect();
    customers.sort();
    let now = crate::store::now();
    let mut entries = Vec::new();
    for customer_id in customers {
        let mut items = by_customer.remove(&customer_id).unwrap_or_default();
        items.sort_by_key(|i| i.occurred_at);
        let mut balance = 0;
        let mut earned_by_order: HashMap<String, (i64, i64)> = HashMap::new();
        for item in items {
            let amount = item.amount_e4.unwrap_or(0);
            let order = item.order_ref.clone().unwrap_or_default();
            let (delta, kind, expires_at) = match item.kind {
                InteractionKind::Purchase => {
                    let points = amount / 10_000;
                    earned_by_order.insert(order, (points, amount));
                    let expires = item.occurred_at + Duration::days(365);
                    (points, PointsEntryKind::Earn, Some(expires))
                }
                InteractionKind::Refund => match earned_by_order.get(&order) {
                    Some(&(points, purchased)) if purchased > 0 => (
                        -(points * amount / purchased),
                        PointsEntryKind::Reversal,
                        None,
                    ),
                    _ => continue,
                },
                _ => continue,
            };
            if delta == 0 {
                continue;
            }
            balance += delta;
            entries.push(points_entry::Model {
                id: Uuid::now_v7(),
                customer_id,
                delta,
                balance_after: balance,
                kind,
                reason: Some("demo purchase".into()),
                expires_at,
                interaction_id: Some(item.id),
                campaign_id: None,
                available_at: None,
                transfer_id: None,
                created_by: "demo".into(),
                created_at: now,
            });
        }
    }
    entries
}

/// Rewards, redemptions and referrals, through the same operations the API runs.
async fn loyalty(db: &Db, rng: &mut StdRng) -> DomainResult<()> {
    let catalogue = [
        (
            "Tea sampler",
            "Six teas from Hangzhou",
            300,
            Some(200),
            None,
        ),
        ("Coffee voucher", "One drink in any store", 150, None, None),
        (
            "Gift box",
            "Seasonal gift box",
            1_500,
            Some(50),
            Some("regular"),
        ),
        (
            "VIP lounge day",
            "A day in the members' lounge",
            5_000,
            Some(10),
            Some("vip"),
        ),
    ];
    let mut rewards = Vec::new();
    for (name, description, cost, stock, tier) in catalogue {
        let draft = RewardDraft::new(name, Some(description), cost, stock, true)?;
        rewards.push(service_rewards::create(db, draft, tier.map(str::to_owned)).await?);
    }
    let everyone = store_customers::find_all(db.conn()).await?;
    let mut redeemed = 0;
    for customer in everyone.iter().filter(|c| c.points_balance >= 150) {
        if redeemed == 25 || !rng.random_bool(0.4) {
            continue;
        }
        let affordable: Vec<_> = rewards
            .iter()
            .filter(|r| r.cost_points <= customer.points_balance && r.min_tier_id.is_none())
            .collect();
        if let Some(reward) = affordable.choose(rng) {
            service_rewards::redeem(db, Caller::named("demo"), customer.id, reward.id, None)
                .await?;
            redeemed += 1;
        }
    }
    // A dozen prospects were brought by buyers; most of them have bought since.
    let prospects: Vec<_> = everyone
        .iter()
        .filter(|c| c.lifetime_purchase_count == 0)
        .take(12)
        .collect();
    let referrers: Vec<_> = everyone
        .iter()
        .filter(|c| c.lifetime_purchase_count > 3)
        .collect();
    for (n, prospect) in prospects.into_iter().enumerate() {
        let Some(referrer) = referrers.choose(rng) else {
            break;
        };
        referrals::apply_code(db, prospect.id, referrer.referral_code.clone()).await?;
        if n % 3 != 2 {
            let purchase = RecordRequest {
                customer: Some(CustomerRef::Id(prospect.id)),
                interaction: RawInteraction {
                    kind: InteractionKind::Purchase,
                    occurred_at: None,
                    amount: Some(Decimal::new(rng.random_range(50..500), 0)),
                    currency: None,
                    channel: Some(Channel::Mobile),
                    rating: None,
                    note: Some("first order, referred by a friend".into()),
                    order_ref: None,
                },
                idempotency_key: None,
            };
            interactions::record(db, Caller::named("demo"), purchase).await?;
        }
    }
    Ok(())
}

/// One customer's past: a prospect (no purchase), a churned buyer (purchases over a year
/// ago), or an active buyer with 1–20 purchases in the last year; plus visits, surveys
/// and, for businesses, shipments and payments.
fn history(
    rng: &mut StdRng,
    customer_id: Uuid,
    business: bool,
    now: DateTime<Utc>,
) -> Vec<interaction::Model> {
    let mut out = Vec::new();
    let mut add = |kind: InteractionKind,
                   days_ago: f64,
                   amount: Option<i64>,
                   rating: Option<i32>,
                   order: Option<String>| {
        let at = now - Duration::seconds((days_ago * 86_400.0) as i64);
        out.push(interaction::Model {
            id: Uuid::now_v7(),
            customer_id,
            kind,
            occurred_at: at,
            amount_e4: amount,
            currency: None,
            channel: Some(if business {
                Channel::Partner
            } else {
                Channel::Store
            }),
            rating,
            note: None,
            order_ref: order,
            recorded_by: "demo".into(),
            recorded_at: now,
        });
    };
    // In cents: 2,000.00 or 300.00.
    let ticket = if business { 200_000 } else { 30_000 };
    let profile: f64 = rng.random();
    let purchase_days: Vec<f64> = if profile < 0.12 {
        Vec::new()
    } else if profile < 0.22 {
        let last = rng.random_range(370.0..500.0);
        (0..rng.random_range(1..=4))
            .map(|_| last + rng.random_range(0.0..120.0))
            .collect()
    } else {
        // Buying the way the churn model assumes: at a rate of the customer's own, with
        // a chance of dropping out after each purchase, so that the demo's model finds
        // customers who are probably gone.
        let weekly_rate = rng.random_range(-1.5f64..0.7).exp();
        let drop_out = rng.random_range(0.03..0.15);
        let mut at = rng.random_range(1.0..364.0);
        let mut days = vec![at];
        while days.len() < 24 && !rng.random_bool(drop_out) {
            let wait_weeks = -(1.0 - rng.random::<f64>()).ln() / weekly_rate;
            at -= wait_weeks * 7.0;
            if at < 0.0 {
                break;
            }
            days.push(at);
        }
        days
    };
    for (n, days_ago) in purchase_days.iter().enumerate() {
        // Amounts in ten-thousandths: hundredths of a unit times 100.
        let amount = rng.random_range(ticket / 5..ticket * 3) * 100;
        let order = format!("DEMO-{}-{n}", &customer_id.simple().to_string()[..8]);
        add(
            InteractionKind::Purchase,
            *days_ago,
            Some(amount),
            None,
            Some(order.clone()),
        );
        if rng.random_bool(0.05) {
            add(
                InteractionKind::Refund,
                days_ago - 2.0,
                Some(amount / 2),
                None,
                Some(order),
            );
        }
    }
    for _ in 0..rng.random_range(0..14) {
        let kind = *[
            InteractionKind::Visit,
            InteractionKind::ServiceContact,
            InteractionKind::CampaignResponse,
            InteractionKind::Complaint,
        ]
        .choose(rng)
        .unwrap_or(&InteractionKind::Visit);
        add(kind, rng.random_range(0.0..360.0), None, None, None);
    }
    if rng.random_bool(0.3) {
        add(
            InteractionKind::Feedback,
            rng.random_range(0.0..360.0),
            None,
            Some(rng.random_range(1..=5)),
            None,
        );
    }
    if rng.random_bool(0.5) {
        add(
            InteractionKind::Survey,
            rng.random_range(0.0..200.0),
            None,
            Some(rng.random_range(0..=10)),
            None,
        );
    }
    if business {
        let mut owed = 0;
        for _ in 0..rng.random_range(1..6) {
            let shipped = rng.random_range(5_000..50_000) * 10_000;
            owed += shipped;
            add(
                InteractionKind::Shipment,
                rng.random_range(30.0..360.0),
                Some(shipped),
                None,
                None,
            );
        }
        let paid = owed / 10 * rng.random_range(5..=10);
        add(
            InteractionKind::Payment,
            rng.random_range(0.0..30.0),
            Some(paid),
            None,
            None,
        );
    }
    out
}

fn profiles(count: usize) -> Vec<ProfileInput> {
    let mut rng = StdRng::seed_from_u64(20261123);
    (0..count)
        .map(|i| {
            let business = rng.random_bool(0.2);
            let surname = SURNAMES.choose(&mut rng).copied().unwrap_or("Wang");
            let given = GIVEN.choose(&mut rng).copied().unwrap_or("Wei");
            let region = REGIONS.choose(&mut rng).copied().unwrap_or("Shanghai");
            let name = if business {
                format!("{region} {surname} {}", COMPANIES.choose(&mut rng).copied().unwrap_or("Trading"))
            } else {
                format!("{surname} {given}")
            };
            let slug = name.to_lowercase().replace(' ', ".");
            let tags: Vec<String> = TAGS.iter().filter(|_| rng.random_bool(0.25)).map(|t| (*t).to_owned()).collect();
            let interests: Vec<&str> = INTERESTS.iter().copied().filter(|_| rng.random_bool(0.3)).collect();
            let attributes = if business {
                serde_json::json!({
                    "companySize": ([10, 50, 200, 1000].choose(&mut rng).copied().unwrap_or(10)),
                    "contacts": [{ "name": format!("{surname} {given}"), "role": "purchasing" }],
                    "creditLimit": rng.random_range(1..=50) * 10_000,
                })
            } else {
                serde_json::json!({ "interests": interests, "family": { "children": rng.random_range(0..3) } })
            };
            ProfileInput {
                name,
                external_ref: Some(format!("DEMO-{:04}", i + 1)),
                email: rng.random_bool(0.8).then(|| format!("{slug}{}@example.cn", i + 1)),
                phone: rng.random_bool(0.7).then(|| format!("+86 13{:09}", rng.random_range(0..1_000_000_000u64))),
                kind: Some(if business { CustomerKind::Business } else { CustomerKind::Individual }),
                industry: business.then(|| INDUSTRIES.choose(&mut rng).copied().unwrap_or("retail").to_owned()),
                region: Some(region.to_owned()),
                birthday: (!business)
                    .then(|| chrono::NaiveDate::from_ymd_opt(rng.random_range(1960..2005), rng.random_range(1..=12), rng.random_range(1..=28)))
                    .flatten(),
                tags: Some(tags),
                attributes: Some(attributes),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_profiles_are_deterministic_and_valid_shaped() {
        let a = super::profiles(50);
        let b = super::profiles(50);
        assert_eq!(a.len(), 50);
        assert_eq!(
            a.iter().map(|p| &p.name).collect::<Vec<_>>(),
            b.iter().map(|p| &p.name).collect::<Vec<_>>()
        );
    }
}
