//! The business rules, free of GraphQL and SQL plumbing.

pub mod analytics;
pub mod campaign;
pub mod customer;
pub mod error;
pub mod interaction;
pub mod lifecycle;
pub mod metrics;
pub mod money;
pub mod points;
pub mod program;
pub mod progress;
pub mod referral_code;
pub mod schedule;
pub mod scoring;
pub mod segment;
pub mod segment_rule;
pub mod tiering;
pub mod webhooks;

pub use error::{DomainError, DomainResult};
