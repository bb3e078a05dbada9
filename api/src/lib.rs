//! Tierwise: customer tiering, loyalty points and referral rewards over GraphQL.
//!
//! # Layout
//!
//! - `cli`, `config`, `app`, `telemetry`: the process — commands, configuration, startup.
//! - `http`: routes — GraphQL over HTTP and WebSocket, health, metrics.
//! - `auth`: JWT verification, the caller, the permission table and its guards.
//! - `graphql`: the schema — roots per domain, types, dataloaders, error codes.
//! - `service`: business operations, each one transaction.
//! - `domain`: the rules, free of GraphQL and SQL.
//! - `store`: sea-orm queries, one module per aggregate, and the connection pool.
//! - `outbox`: the one reader of the outbox that every consumer of committed changes uses.
//! - `live`: live events — the outbox consumer that feeds subscriptions, and their bus.
//! - `jobs`: background work under the supervisor — evaluation runs and their schedule,
//!   the lease-based scheduler, outbox pruning, the program follower.
//! - `webhooks`: partner webhooks — the outbox consumer that makes deliveries, the
//!   dispatcher that sends them, the guarded HTTP client.
//! - `demo`: the demo data set.
//!
//! Data flows one way: HTTP → GraphQL → service → domain/store → database.
//!
//! # Where new things go
//!
//! - A periodic job: a function in `jobs/`, run by `jobs::schedule::every_slot` (one
//!   replica per slot), spawned by `Application::build` through the supervisor.
//! - A consumer of committed changes (webhooks): an `outbox::Consumer`, spawned with
//!   `outbox::follow` by `Application::build`; a new topic is a variant of
//!   `entity::enums::EventTopic`, and every consumer's `match` on it must then decide.
//! - A customer field: the entity and a migration; its rule in `domain::customer`, applied
//!   by `service::customers::ProfileInput`; written by `store::profiles` (and by
//!   `store::import` for `tierwise import`), read and filtered by `store::customers`; shown
//!   by `graphql/types/customer.rs`, authorised on the type, not per door.
//! - A ledger kind: `entity::enums::PointsEntryKind` and `domain::points::may_overdraw`;
//!   `store::points::append` enforces it.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod live;
pub mod outbox;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod webhooks;
