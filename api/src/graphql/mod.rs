//! The GraphQL API: schema, roots, types and dataloaders. Resolvers are thin adapters
//! over `service` and `store`; authorisation is declared on fields with guards.

pub mod cost;
pub mod error;
pub mod id;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use async_graphql::{Schema, SchemaBuilder};

use crate::auth::Principal;
use crate::store::Db;

pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Deepest nesting a query may have.
pub const MAX_DEPTH: usize = 12;
/// The most a query may cost by default (`cost`, `MAX_QUERY_COST`): each field counts 1,
/// times the rows of every page or list it is in. A console page of 100 customers with
/// 20 fields each costs about 2,100; one with each customer's last 10 ledger entries
/// about 7,000.
pub const MAX_COST: usize = 10_000;

/// The schema with its limits and no data, so that the SDL can be exported without a
/// database; `serve` adds the data.
pub fn builder() -> SchemaBuilder<query::Query, mutation::Mutation, subscription::Subscription> {
    Schema::build(
        query::Query::default(),
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .limit_depth(MAX_DEPTH)
}

/// The schema `serve` runs: the builder's, with the data, and queries costing at most
/// `max_cost`. One-shot work a mutation starts (an evaluation run) goes to `background`.
pub fn schema(
    db: Db,
    bus: crate::live::EventBus,
    background: std::sync::Arc<crate::jobs::supervisor::Supervisor>,
    webhooks: (
        std::sync::Arc<crate::webhooks::Settings>,
        crate::webhooks::Wakeup,
    ),
    max_cost: usize,
) -> AppSchema {
    builder()
        .extension(cost::CostLimit { max: max_cost })
        .data(db)
        .data(bus)
        .data(background)
        .data(webhooks.0)
        .data(webhooks.1)
        .finish()
}

/// The SDL that `schema.graphql` holds, sorted so that it is stable.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}

/// A request made ready for execution: the caller and fresh per-request loaders.
pub fn prepare(
    request: async_graphql::Request,
    principal: Principal,
    db: &Db,
) -> async_graphql::Request {
    request.data(principal).data(loaders::per_request(db))
}

/// The type of the operation a request would run; `None` for a document that does not
/// parse or names no operation it has, left to execution to report. Call only on a
/// request that passed `Limits::check_request`, which parsed it.
pub fn operation_type(
    request: &mut async_graphql::Request,
) -> Option<async_graphql::parser::types::OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    match &document.operations {
        DocumentOperations::Single(operation) => Some(operation.node.ty),
        DocumentOperations::Multiple(operations) => match &operation_name {
            Some(name) => operations.get(name.as_str()).map(|o| o.node.ty),
            None => operations.values().next().map(|o| o.node.ty),
        },
    }
}
