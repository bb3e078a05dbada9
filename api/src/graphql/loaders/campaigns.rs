//! Campaigns by id (a ledger's `CAMPAIGN_BONUS` entries name theirs) and what each has
//! done (its firing log's totals), one statement per page.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::campaign;
use uuid::Uuid;

use super::{LoadResult, StoreLoader, every_key, ids};
use crate::domain::DomainError;
use crate::store::campaigns::{self, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignStats(pub Uuid);

impl Loader<CampaignById> for StoreLoader {
    type Value = campaign::Model;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CampaignById]) -> LoadResult<CampaignById, campaign::Model> {
        let found = campaigns::find_many(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(found
            .into_iter()
            .map(|(id, c)| (CampaignById(id), c))
            .collect::<HashMap<_, _>>())
    }
}

impl Loader<CampaignStats> for StoreLoader {
    type Value = Stats;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CampaignStats]) -> LoadResult<CampaignStats, Stats> {
        let found = campaigns::stats(self.db.conn(), &ids(keys, |k| k.0)).await?;
        Ok(every_key(
            keys,
            found.into_iter().map(|(id, s)| (CampaignStats(id), s)),
            |_| Stats::default(),
        ))
    }
}
