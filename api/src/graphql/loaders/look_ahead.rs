//! Priming from the query's look-ahead: the relations a page of customers selects are
//! loaded with one `load_many` each before the page's fields resolve.

use async_graphql::{Context, Name, Result, Value};
use entity::customer;
use entity::enums::InteractionKind;

use super::{
    CurrentChurnModel, CustomerById, InteractionsOf, LatestFullRun, LedgerLots, LedgerOf,
    MembersOfTier, ProgressOf, ReferralsBy, RequestLoader, RewardsOnOffer, SegmentsOfCustomer,
    TagsOfCustomer, TierById, TierHistoryOf,
};
use crate::auth::Permission;
use crate::auth::guard::principal;
use crate::store::paging::PageRequest;

/// Loads, in one query each, the relations of a page of customers that the query selects
/// under `nodes` or `edges.node`, so that each customer's fields then come from the cache.
pub async fn prime_customers(ctx: &Context<'_>, customers: &[customer::Model]) -> Result<()> {
    use crate::graphql::error::Gql;
    let look_ahead = ctx.look_ahead();
    let nodes = [
        look_ahead.field("nodes"),
        look_ahead.field("edges").field("node"),
    ];
    let selects = |field: &str| nodes.iter().any(|node| node.field(field).exists());
    let loader = ctx.data::<RequestLoader>()?;
    if selects("tags") {
        loader
            .load_many(customers.iter().map(|c| TagsOfCustomer(c.id)))
            .await
            .gql()?;
    }
    if selects("tier") {
        loader
            .load_many(customers.iter().map(|c| TierById(c.tier_id)))
            .await
            .gql()?;
        if nodes
            .iter()
            .any(|node| node.field("tier").field("memberCount").exists())
        {
            loader
                .load_many(customers.iter().map(|c| MembersOfTier(c.tier_id)))
                .await
                .gql()?;
        }
    }
    // The page's customers are what history entries point back to.
    loader
        .feed_many(customers.iter().map(|c| (CustomerById(c.id), c.clone())))
        .await;
    if selects("tierProgress") {
        let db = ctx.data::<crate::store::Db>()?;
        let grace_days = db
            .programs()
            .recent(db.conn())
            .await
            .gql()?
            .model
            .downgrade_grace_days;
        let keys = customers.iter().map(|c| ProgressOf::of(c, grace_days));
        futures_util::try_join!(loader.load_many(keys), loader.load_one(RewardsOnOffer)).gql()?;
    }
    if selects("pointsExpiring") {
        loader
            .load_many(customers.iter().map(|c| LedgerLots(c.id)))
            .await
            .gql()?;
    }
    if selects("segments") && principal(ctx)?.may(Permission::ReadSegments) {
        loader
            .load_many(customers.iter().map(|c| SegmentsOfCustomer(c.id)))
            .await
            .gql()?;
    }
    if selects("referrals") {
        loader
            .load_many(customers.iter().map(|c| ReferralsBy(c.id)))
            .await
            .gql()?;
    }
    if selects("referredBy") {
        let referrers = customers.iter().filter_map(|c| c.referred_by_id);
        loader.load_many(referrers.map(CustomerById)).await.gql()?;
    }
    for node in &nodes {
        for field in node.field("tierHistory").selection_fields() {
            let Some(first) = first_page_size(&field.arguments()?)? else {
                continue;
            };
            let pages = loader
                .load_many(customers.iter().map(|c| TierHistoryOf {
                    customer: c.id,
                    first,
                    counted: counts(&field),
                }))
                .await
                .gql()?;
            let tiers = pages
                .values()
                .flat_map(|page| &page.items)
                .flat_map(|change| change.from_tier_id.into_iter().chain([change.to_tier_id]));
            loader.load_many(tiers.map(TierById)).await.gql()?;
        }
        for field in node.field("pointsLedger").selection_fields() {
            let Some(first) = first_page_size(&field.arguments()?)? else {
                continue;
            };
            loader
                .load_many(customers.iter().map(|c| LedgerOf {
                    customer: c.id,
                    first,
                    counted: counts(&field),
                }))
                .await
                .gql()?;
        }
        for field in node.field("interactions").selection_fields() {
            let arguments = field.arguments()?;
            let Some(first) = first_page_size(&arguments)? else {
                continue;
            };
            let kinds = kinds_argument(&arguments);
            loader
                .load_many(customers.iter().map(|c| InteractionsOf {
                    customer: c.id,
                    first,
                    counted: counts(&field),
                    kinds: kinds.clone(),
                }))
                .await
                .gql()?;
        }
    }
    // The metrics' instant (and the recency counted up to it) may come from the latest run.
    if nodes.iter().any(|node| {
        let metrics = node.field("metrics");
        metrics.field("asOf").exists() || metrics.field("recencyDays").exists()
    }) {
        loader.load_one(LatestFullRun).await.gql()?;
    }
    if nodes.iter().any(|node| {
        let metrics = node.field("metrics");
        ["pAlive", "expectedPurchases90d", "clv365"]
            .iter()
            .any(|field| metrics.field(field).exists())
    }) {
        loader.load_one(CurrentChurnModel).await.gql()?;
    }
    Ok(())
}

/// Whether a connection field selects `totalCount`.
fn counts(field: &async_graphql::SelectionField<'_>) -> bool {
    field
        .selection_set()
        .any(|selected| selected.name() == "totalCount")
}

/// The page size a connection field asks for, when it asks for a first page (no
/// `after`); invalid sizes are left for the resolver to report.
fn first_page_size(arguments: &[(Name, Value)]) -> Result<Option<u64>> {
    let argument = |name: &str| arguments.iter().find(|(n, _)| n.as_str() == name);
    if argument("after").is_some_and(|(_, v)| *v != Value::Null) {
        return Ok(None);
    }
    let first = match argument("first").map(|(_, v)| v) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64().map(|n| n as i32),
        Some(_) => return Ok(None),
    };
    Ok(PageRequest::new(first, None, "").ok().map(|p| p.first))
}

fn kinds_argument(arguments: &[(Name, Value)]) -> Vec<InteractionKind> {
    let mut kinds: Vec<InteractionKind> = arguments
        .iter()
        .find(|(n, _)| n.as_str() == "kinds")
        .and_then(|(_, v)| match v {
            Value::List(items) => Some(
                items
                    .iter()
                    .filter_map(|item| match item {
                        Value::Enum(name) => parse_kind(name.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    normalize_kinds(&mut kinds);
    kinds
}

fn parse_kind(name: &str) -> Option<InteractionKind> {
    use sea_orm::Iterable;
    InteractionKind::iter().find(|k| k.as_str() == name)
}

/// Kinds in a canonical order, so that the same filter makes the same loader key.
pub fn normalize_kinds(kinds: &mut Vec<InteractionKind>) {
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
}
