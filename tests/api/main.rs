//! End-to-end tests: each starts the real server on a random port against a fresh
//! database and talks HTTP with real JWTs. Every test runs on SQLite and on Postgres
//! (`on_both!`); Postgres tests are skipped when it is unreachable, unless `CI` is set,
//! in which case they fail.

mod helpers;
mod ws_client;

mod abuse;
mod auth;
mod batches;
mod campaigns;
mod churn;
mod cli;
mod customers;
mod demo;
mod evaluation;
mod events;
mod expiry;
mod faults;
mod fuzz;
mod graphiql;
mod graphql_over_http;
mod http;
mod import;
mod interactions;
mod isolation;
mod jwks;
mod ledger;
mod lifecycle;
mod outbox;
mod pagination;
mod persisted;
mod program;
mod program_snapshot;
mod progress;
mod readme;
mod referrals;
mod replicas;
mod rewards;
mod roles;
mod run_races;
mod schedule;
mod schema;
mod segments;
mod stats_and_events;
mod telemetry;
mod webhooks;
