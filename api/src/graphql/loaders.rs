//! Dataloaders, one key type per relation, created per request: every relation a page of
//! results asks for costs one query per page, not one per row.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{customer, tier, tier_change};
use uuid::Uuid;

use crate::domain::DomainError;
use crate::store::{Db, customers, tier_changes, tiers};

pub struct StoreLoader {
    db: Db,
}

impl StoreLoader {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierChangeById(pub Uuid);

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

impl Loader<TierChangeById> for StoreLoader {
    type Value = tier_change::Model;
    type Error = Arc<DomainError>;

    async fn load(
        &self,
        keys: &[TierChangeById],
    ) -> LoadResult<TierChangeById, tier_change::Model> {
        let found = tier_changes::by_ids(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found
            .into_iter()
            .map(|(id, c)| (TierChangeById(id), c))
            .collect())
    }
}
