//! First pages of a customer's child lists (tier history, ledger, interactions) for many
//! customers at once: one query per distinct page shape, not one per customer.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::enums::InteractionKind;
use entity::{interaction, points_entry, tier_change};
use uuid::Uuid;

use super::{LoadResult, StoreLoader, every_key};
use crate::domain::DomainError;
use crate::store::paging::{Page, PageRequest};
use crate::store::{interactions, points, tier_changes};

/// The first page of a customer's tier history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierHistoryOf {
    pub customer: Uuid,
    pub first: u64,
    /// Whether `totalCount` is selected: the count is a statement of its own.
    pub counted: bool,
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
