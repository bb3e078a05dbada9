//! Dataloaders, one key type per relation, created per request with a per-request cache:
//! every relation a page of results asks for costs one query per page, not one per row.
//!
//! Batching by delay alone depends on timing (a busy server splits a page's keys over
//! several batches), so connections also prime the relations their query selects, with
//! one `load_many` per relation (`prime_customers`).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, Name, Result, Value};
use chrono::{DateTime, Utc};
use entity::enums::InteractionKind;
use entity::{customer, interaction, points_entry, referral, segment, tier, tier_change};
use uuid::Uuid;

use crate::domain::analytics::churn::ChurnModel;

use crate::auth::Permission;
use crate::auth::guard::principal;
use crate::domain::DomainError;
use crate::store::paging::{Page, PageRequest};
use crate::store::{
    Db, customers, evaluation_runs, interactions, points, referrals, segments, tier_changes, tiers,
};

pub struct StoreLoader {
    db: Db,
    /// The customer and tiers of the live event being answered (subscriptions only):
    /// what the event brought is answered from here rather than read again per
    /// subscriber.
    event: std::sync::Mutex<Option<Arc<crate::events::Event>>>,
}

impl StoreLoader {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            event: std::sync::Mutex::new(None),
        }
    }

    /// Answers from `event` the customer and tiers it carries, until the next event.
    pub fn show_event(&self, event: Arc<crate::events::Event>) {
        if let Ok(mut current) = self.event.lock() {
            *current = Some(event);
        }
    }

    fn current_event(&self) -> Option<Arc<crate::events::Event>> {
        self.event.lock().ok().and_then(|e| e.clone())
    }
}

/// The per-request loader: batches, and caches what it loaded for the rest of the request.
pub fn per_request(db: &Db) -> DataLoader<StoreLoader, HashMapCache> {
    DataLoader::with_cache(
        StoreLoader::new(db.clone()),
        tokio::spawn,
        HashMapCache::default(),
    )
}

pub type RequestLoader = DataLoader<StoreLoader, HashMapCache>;

/// A customer that must exist (it is referenced by a row the caller already has).
pub async fn load_customer(
    ctx: &Context<'_>,
    id: Uuid,
) -> Result<crate::graphql::types::customer::Customer> {
    use crate::graphql::error::Gql;
    ctx.data::<RequestLoader>()?
        .load_one(CustomerById(id))
        .await
        .gql()?
        .map(crate::graphql::types::customer::Customer)
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("customer {id} is missing")))
        .gql()
}

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

/// The page size a connection field asks for, when it asks for a first page (no
/// `after`); invalid sizes are left for the resolver to report.
/// Whether a connection field selects `totalCount`.
fn counts(field: &async_graphql::SelectionField<'_>) -> bool {
    field
        .selection_set()
        .any(|selected| selected.name() == "totalCount")
}

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

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DomainError>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagsOfCustomer(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersOfTier(pub Uuid);

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(|k| id(*k)).collect()
}

/// `found`, plus `empty` for every key the store found nothing for. The cache keeps only
/// what a load returns: without an entry, the resolver of a customer with no tags (no
/// ledger, no segments…) misses it and starts another batch, with its delay.
fn every_key<K, V>(
    keys: &[K],
    found: impl IntoIterator<Item = (K, V)>,
    empty: impl Fn(&K) -> V,
) -> HashMap<K, V>
where
    K: Clone + Eq + std::hash::Hash,
{
    let mut values: HashMap<K, V> = found.into_iter().collect();
    for key in keys {
        values.entry(key.clone()).or_insert_with(|| empty(key));
    }
    values
}

impl Loader<TierById> for StoreLoader {
    type Value = tier::Model;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[TierById]) -> LoadResult<TierById, tier::Model> {
        if let Some(event) = self.current_event()
            && keys.iter().all(|k| event.tiers().contains_key(&k.0))
        {
            return Ok(keys
                .iter()
                .filter_map(|k| event.tiers().get(&k.0).map(|t| (*k, t.clone())))
                .collect());
        }
        // Tiers come from the process's program snapshot; only an id it does not know
        // (a tier created since, on another replica) is read.
        let program = self.db.programs().recent(self.db.conn()).await?;
        let mut found: HashMap<TierById, tier::Model> = HashMap::with_capacity(keys.len());
        let mut unknown = Vec::new();
        for key in keys {
            match program.tiers.get(&key.0) {
                Some(tier) => {
                    found.insert(*key, tier.clone());
                }
                None => unknown.push(key.0),
            }
        }
        if !unknown.is_empty() {
            let read = tiers::by_ids(self.db.conn(), &unknown).await?;
            found.extend(read.into_iter().map(|(id, t)| (TierById(id), t)));
        }
        Ok(found)
    }
}

impl Loader<CustomerById> for StoreLoader {
    type Value = customer::Model;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CustomerById]) -> LoadResult<CustomerById, customer::Model> {
        if let Some(event) = self.current_event()
            && keys.iter().all(|k| k.0 == event.customer().id)
        {
            let customer = event.customer().clone();
            return Ok(keys.iter().map(|k| (*k, customer.clone())).collect());
        }
        let found = customers::find_many(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found.into_iter().map(|c| (CustomerById(c.id), c)).collect())
    }
}

impl Loader<TagsOfCustomer> for StoreLoader {
    type Value = Vec<String>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[TagsOfCustomer]) -> LoadResult<TagsOfCustomer, Vec<String>> {
        let found = customers::tags_of(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found
                .into_iter()
                .map(|(id, tags)| (TagsOfCustomer(id), tags)),
            |_| Vec::new(),
        ))
    }
}

impl Loader<MembersOfTier> for StoreLoader {
    type Value = i64;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[MembersOfTier]) -> LoadResult<MembersOfTier, i64> {
        let found = customers::count_by_tier(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found
            .into_iter()
            .map(|(id, count)| (MembersOfTier(id), count))
            .collect())
    }
}

/// How many customers a segment has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersOfSegment(pub Uuid);

impl Loader<MembersOfSegment> for StoreLoader {
    type Value = i64;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[MembersOfSegment]) -> LoadResult<MembersOfSegment, i64> {
        let db = self.db.conn();
        let found = segments::find_many(db, &ids(keys, |k| k.0)).await?;
        let counts = segments::member_counts(db, &found).await?;
        Ok(counts
            .into_iter()
            .map(|(id, count)| (MembersOfSegment(id), count))
            .collect())
    }
}

/// The segments a customer is in now, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentsOfCustomer(pub Uuid);

impl Loader<SegmentsOfCustomer> for StoreLoader {
    type Value = Vec<segment::Model>;
    type Error = Arc<DomainError>;

    async fn load(
        &self,
        keys: &[SegmentsOfCustomer],
    ) -> LoadResult<SegmentsOfCustomer, Vec<segment::Model>> {
        let found = segments::segments_of(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found
                .into_iter()
                .map(|(id, list)| (SegmentsOfCustomer(id), list)),
            |_| Vec::new(),
        ))
    }
}

/// The first page of a customer's tier history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierHistoryOf {
    pub customer: Uuid,
    pub first: u64,
    /// Whether `totalCount` is selected: the count is a statement of its own.
    pub counted: bool,
}

/// A customer's whole ledger, oldest first, for lot accounting (points about to expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LedgerLots(pub Uuid);

impl Loader<LedgerLots> for StoreLoader {
    type Value = Vec<crate::domain::points::LedgerItem>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[LedgerLots]) -> LoadResult<LedgerLots, Self::Value> {
        let found = points::ledgers_of(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found
                .into_iter()
                .map(|(id, ledger)| (LedgerLots(id), ledger)),
            |_| Vec::new(),
        ))
    }
}

/// The referrals a customer made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReferralsBy(pub Uuid);

impl Loader<ReferralsBy> for StoreLoader {
    type Value = Vec<referral::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[ReferralsBy]) -> LoadResult<ReferralsBy, Self::Value> {
        let found = referrals::made_by(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found.into_iter().map(|(id, made)| (ReferralsBy(id), made)),
            |_| Vec::new(),
        ))
    }
}

/// The first page of a customer's points ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LedgerOf {
    pub customer: Uuid,
    pub first: u64,
    pub counted: bool,
}

/// The first page of a customer's interactions of some kinds (all when empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InteractionsOf {
    pub customer: Uuid,
    pub first: u64,
    pub counted: bool,
    pub kinds: Vec<InteractionKind>,
}

/// The latest successful run over everyone: its `asOf` and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LatestFullRun;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullRunInstants {
    pub as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// The churn model in use (the latest one a run fitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrentChurnModel;

fn first_request(first: u64, counted: bool) -> PageRequest {
    PageRequest {
        first,
        after: None,
        count_total: counted,
    }
}

/// The first page of a customer who has no rows.
fn empty_page<M>(first: u64) -> Page<M> {
    Page::from_overfetch(Vec::new(), &first_request(first, false), 0)
}

/// Loads first pages for `(customer, page size, counted)` keys with one `load` per
/// distinct size and counting.
async fn pages_by_size<M, Fut>(
    keys: impl Iterator<Item = (Uuid, u64, bool)>,
    load: impl Fn(Vec<Uuid>, PageRequest) -> Fut,
) -> Result<Vec<(Uuid, u64, bool, Page<M>)>, Arc<DomainError>>
where
    Fut: std::future::Future<Output = crate::domain::DomainResult<HashMap<Uuid, Page<M>>>>,
{
    let mut by_shape: HashMap<(u64, bool), Vec<Uuid>> = HashMap::new();
    for (customer, first, counted) in keys {
        by_shape.entry((first, counted)).or_default().push(customer);
    }
    let mut result = Vec::new();
    for ((first, counted), ids) in by_shape {
        let pages = load(ids, first_request(first, counted)).await?;
        result.extend(
            pages
                .into_iter()
                .map(|(customer, page)| (customer, first, counted, page)),
        );
    }
    Ok(result)
}

impl Loader<TierHistoryOf> for StoreLoader {
    type Value = Page<tier_change::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[TierHistoryOf]) -> LoadResult<TierHistoryOf, Self::Value> {
        let conn = self.db.conn();
        let pages = pages_by_size(
            keys.iter().map(|k| (k.customer, k.first, k.counted)),
            |ids, request| async move { tier_changes::first_pages(conn, &ids, &request).await },
        )
        .await?;
        Ok(every_key(
            keys,
            pages.into_iter().map(|(customer, first, counted, page)| {
                (
                    TierHistoryOf {
                        customer,
                        first,
                        counted,
                    },
                    page,
                )
            }),
            |key| empty_page(key.first),
        ))
    }
}

impl Loader<LedgerOf> for StoreLoader {
    type Value = Page<points_entry::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[LedgerOf]) -> LoadResult<LedgerOf, Self::Value> {
        let conn = self.db.conn();
        let pages = pages_by_size(
            keys.iter().map(|k| (k.customer, k.first, k.counted)),
            |ids, request| async move { points::first_pages(conn, &ids, &request).await },
        )
        .await?;
        Ok(every_key(
            keys,
            pages.into_iter().map(|(customer, first, counted, page)| {
                (
                    LedgerOf {
                        customer,
                        first,
                        counted,
                    },
                    page,
                )
            }),
            |key| empty_page(key.first),
        ))
    }
}

impl Loader<InteractionsOf> for StoreLoader {
    type Value = Page<interaction::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[InteractionsOf]) -> LoadResult<InteractionsOf, Self::Value> {
        let mut result = HashMap::new();
        let mut shapes: Vec<(u64, bool, Vec<InteractionKind>)> = keys
            .iter()
            .map(|k| (k.first, k.counted, k.kinds.clone()))
            .collect();
        shapes.sort_by_key(|(first, counted, kinds)| {
            let kinds: Vec<_> = kinds.iter().map(|k| k.as_str()).collect();
            (*first, *counted, kinds)
        });
        shapes.dedup();
        for (first, counted, kinds) in shapes {
            let ids: Vec<Uuid> = keys
                .iter()
                .filter(|k| k.first == first && k.counted == counted && k.kinds == kinds)
                .map(|k| k.customer)
                .collect();
            let request = first_request(first, counted);
            let pages = interactions::first_pages(self.db.conn(), &ids, &kinds, &request).await?;
            result.extend(pages.into_iter().map(|(customer, page)| {
                (
                    InteractionsOf {
                        customer,
                        first,
                        counted,
                        kinds: kinds.clone(),
                    },
                    page,
                )
            }));
        }
        Ok(every_key(keys, result, |key| empty_page(key.first)))
    }
}

impl Loader<LatestFullRun> for StoreLoader {
    type Value = FullRunInstants;
    type Error = Arc<DomainError>;

    async fn load(&self, _: &[LatestFullRun]) -> LoadResult<LatestFullRun, FullRunInstants> {
        let run = evaluation_runs::latest_full(self.db.conn()).await?;
        Ok(run
            .map(|run| {
                let instants = FullRunInstants {
                    as_of: run.as_of,
                    started_at: run.started_at,
                };
                (LatestFullRun, instants)
            })
            .into_iter()
            .collect())
    }
}

impl Loader<CurrentChurnModel> for StoreLoader {
    type Value = Arc<ChurnModel>;
    type Error = Arc<DomainError>;

    async fn load(
        &self,
        _: &[CurrentChurnModel],
    ) -> LoadResult<CurrentChurnModel, Arc<ChurnModel>> {
        let model = evaluation_runs::current_churn_model(self.db.conn()).await?;
        Ok(model
            .map(|model| (CurrentChurnModel, Arc::new(model)))
            .into_iter()
            .collect())
    }
}
