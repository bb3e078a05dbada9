//! What one row points to or owns: a tier, a customer, tags, member counts, segments,
//! ledger lots, referrals.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::{customer, referral, segment, tier};
use uuid::Uuid;

use super::{LoadResult, StoreLoader, every_key, ids};
use crate::domain::DomainError;
use crate::store::{customers, points, referrals, segments, tiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagsOfCustomer(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MembersOfTier(pub Uuid);

/// The members merged into a customer (its tombstones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MergedInto(pub Uuid);

impl Loader<MergedInto> for StoreLoader {
    type Value = Vec<Uuid>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[MergedInto]) -> LoadResult<MergedInto, Vec<Uuid>> {
        let found = customers::merged_ids_of(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found
                .into_iter()
                .map(|(id, merged)| (MergedInto(id), merged)),
            |_| Vec::new(),
        ))
    }
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
