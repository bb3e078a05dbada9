//! Dataloaders, one key type per relation, created per request with a per-request cache:
//! every relation a page of results asks for costs one query per page, not one per row.
//!
//! Batching by delay alone depends on timing (a busy server splits a page's keys over
//! several batches), so connections also prime the relations their query selects, with
//! one `load_many` per relation (`prime_customers`).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, Result};
use entity::{customer, tier};
use uuid::Uuid;

use crate::domain::DomainError;
use crate::store::{Db, customers, tiers};

pub struct StoreLoader {
    db: Db,
}

impl StoreLoader {
    pub fn new(db: Db) -> Self {
        Self { db }
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
    Ok(())
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

impl Loader<TierById> for StoreLoader {
    type Value = tier::Model;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[TierById]) -> LoadResult<TierById, tier::Model> {
        let found = tiers::by_ids(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found.into_iter().map(|(id, t)| (TierById(id), t)).collect())
    }
}

impl Loader<CustomerById> for StoreLoader {
    type Value = customer::Model;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CustomerById]) -> LoadResult<CustomerById, customer::Model> {
        let found = customers::find_many(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found.into_iter().map(|c| (CustomerById(c.id), c)).collect())
    }
}

impl Loader<TagsOfCustomer> for StoreLoader {
    type Value = Vec<String>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[TagsOfCustomer]) -> LoadResult<TagsOfCustomer, Vec<String>> {
        let found = customers::tags_of(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found
            .into_iter()
            .map(|(id, tags)| (TagsOfCustomer(id), tags))
            .collect())
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
