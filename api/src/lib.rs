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
//! - `events`: live events — the outbox relay and the in-process bus subscriptions read.
//! - `jobs`: evaluation runs and their schedule.
//! - `demo`: the demo data set.
//!
//! Data flows one way: HTTP → GraphQL → service → domain/store → database.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod events;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod service;
pub mod store;
pub mod telemetry;
