//! The demo data set: a few hundred customers across regions, industries and kinds, so
//! that GraphiQL has something to show on a fresh machine. Generated from a fixed seed:
//! every demo database is the same.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::domain::DomainResult;
use crate::service::customers::{self, ProfileInput};
use crate::store::Db;
use entity::enums::CustomerKind;

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

/// The demo customers; creates them all in one transaction and returns how many.
pub async fn load(db: &Db) -> DomainResult<usize> {
    let inputs = profiles(CUSTOMERS);
    let count = inputs.len();
    customers::create_many(db, inputs).await?;
    Ok(count)
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
