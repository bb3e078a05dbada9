//! Dataloaders, one key type per relation, created per request with a per-request cache:
//! every relation a page of results asks for costs one query per page, not one per row.
//!
//! - `relations`: what one row points to or owns (its tier, its tags, its segments…).
//! - `first_pages`: the first page of a child list for many customers at once.
//! - `run_results`: what the latest evaluation run left (its instants, the churn model).
//! - `progress`: what tier progress reads (a customer's sums as of an instant, the
//!   rewards on offer).
//! - `look_ahead`: batching by delay alone depends on timing (a busy server splits a
//!   page's keys over several batches), so connections also prime the relations their
//!   query selects, with one `load_many` per relation (`prime_customers`).
//!
//! A subscription answers from the live event it is showing (`show_event`): the customer
//! and tiers the event carries are not read again per subscriber.

mod campaigns;
mod first_pages;
mod look_ahead;
mod progress;
mod relations;
mod run_results;

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, Result};
use uuid::Uuid;

use crate::domain::DomainError;
use crate::live::LiveEvent;
use crate::store::Db;

pub use campaigns::{CampaignById, CampaignStats};
pub use first_pages::{InteractionsOf, LedgerOf, TierHistoryOf};
pub use look_ahead::{normalize_kinds, prime_customers};
pub use progress::{ProgressOf, RewardsOnOffer};
pub use relations::{
    CustomerById, LedgerLots, MembersOfSegment, MembersOfTier, MergedInto, ReferralsBy,
    SegmentsOfCustomer, TagsOfCustomer, TierById,
};
pub use run_results::{CurrentChurnModel, FullRunInstants, LatestFullRun};

pub struct StoreLoader {
    db: Db,
    /// The customer and tiers of the live event being answered (subscriptions only):
    /// what the event brought is answered from here rather than read again per
    /// subscriber.
    event: std::sync::Mutex<Option<Arc<LiveEvent>>>,
}

impl StoreLoader {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            event: std::sync::Mutex::new(None),
        }
    }

    /// Answers from `event` the customer and tiers it carries, until the next event.
    pub fn show_event(&self, event: Arc<LiveEvent>) {
        if let Ok(mut current) = self.event.lock() {
            *current = Some(event);
        }
    }

    fn current_event(&self) -> Option<Arc<LiveEvent>> {
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

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DomainError>>;

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
