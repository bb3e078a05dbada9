//! GraphQL object, input and enum types: thin adapters over entities and domain values.

pub mod campaign;
pub mod connection;
pub mod customer;
pub mod enums;
pub mod evaluation;
pub mod interaction;
pub mod metrics;
pub mod points;
pub mod program;
pub mod progress;
pub mod referral;
pub mod reward;
pub mod segment;
pub mod stats;
pub mod tier;
pub mod transfer;
pub mod viewer;
pub mod webhook;
