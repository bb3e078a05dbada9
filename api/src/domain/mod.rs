//! The business rules, free of GraphQL and SQL plumbing.

pub mod customer;
pub mod error;
pub mod money;
pub mod program;
pub mod referral_code;

pub use error::{DomainError, DomainResult};
