//! What the latest evaluation run left: the instants of the latest run over everyone, and
//! the churn model in use. One query per request, shared by every customer on the page.

use std::sync::Arc;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};

use super::{LoadResult, StoreLoader};
use crate::domain::DomainError;
use crate::domain::analytics::churn::ChurnModel;
use crate::store::evaluation_runs;

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
