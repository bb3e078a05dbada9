//! What a query may cost, decided before it runs.
//!
//! async-graphql counts each field once, so `customers(first: 100) { nodes {
//! pointsLedger(first: 100) { … } } }` cost as much as one customer with one entry: 200
//! aliases of such a query returned 107 MB after 13 s. Here a page costs its children
//! times the rows it may return (`first`, or the default page), and a list without
//! paging its children times the most it can hold, so a query's cost bounds the rows it
//! can read. The limit is checked by an extension after validation, so that the error
//! says what the query cost.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

use crate::store::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// What `simulateCampaign` costs: more than half the default limit, so one request holds
/// one simulation (aliases cannot queue a hundred of them behind the limit's back).
pub const SIMULATION: usize = crate::graphql::MAX_COST / 2 + 1;

/// The cost of a page of `first` rows whose fields cost `child` each. An out-of-range
/// `first` is costed at the largest page: resolving it refuses it anyway.
pub fn page(first: Option<i32>, child: usize) -> usize {
    let rows = match first {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if (0..=MAX_PAGE_SIZE as i32).contains(&n) => n as u64,
        Some(_) => MAX_PAGE_SIZE,
    };
    list(rows as usize, child)
}

/// The cost of a list of `items` whose fields cost `child` each.
pub fn list(items: usize, child: usize) -> usize {
    1 + items.saturating_mul(child).min(CEILING)
}

/// No field costs more than this. async-graphql adds the costs of sibling fields with a
/// plain `+`, which wraps in a release build: nested pages multiply past `u64`, and two
/// such aliases could wrap to a small total. A document is at most 1 MiB long
/// (`MAX_QUERY_BYTES`' ceiling), so it has fewer than 2^20 fields, and 2^20 fields at
/// this ceiling still sum below 2^61.
const CEILING: usize = 1 << 40;

/// Rows an unpaged list of a customer's (its referrals, its segments) is costed at.
pub const UNPAGED_LIST: usize = 20;

/// What a free-form JSON field (`attributes`, up to 64 KiB) costs: answering it is
/// closer to fifty fields than to one, and aliases of it multiplied a response's memory.
pub const FREE_FORM_JSON: usize = 50;

/// Refuses, before execution, an operation costing more than `max`.
pub struct CostLimit {
    pub max: usize,
}

impl ExtensionFactory for CostLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostLimitExtension { max: self.max })
    }
}

struct CostLimitExtension {
    max: usize,
}

#[async_trait::async_trait]
impl Extension for CostLimitExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.max {
            let mut error = ServerError::new(
                format!(
                    "the query costs {}, more than the limit of {} (a page costs its fields \
                     times its `first`; ask for smaller pages or fewer fields)",
                    result.complexity, self.max
                ),
                None,
            );
            let mut extensions = async_graphql::ErrorExtensionValues::default();
            extensions.set("code", "BAD_USER_INPUT");
            extensions.set("cost", result.complexity as u64);
            extensions.set("maxCost", self.max as u64);
            error.extensions = Some(extensions);
            return Err(vec![error]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cost_their_rows() {
        assert_eq!(page(None, 3), 61);
        assert_eq!(page(Some(100), 3), 301);
        assert_eq!(page(Some(0), 3), 1);
        assert_eq!(page(Some(1_000_000), 3), 301);
        assert_eq!(page(Some(-5), 3), 301);
        assert_eq!(list(1000, 2), 2001);
        assert_eq!(page(Some(100), list(usize::MAX, 2)), 1 + CEILING);
    }
}
