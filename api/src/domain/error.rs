//! The errors a business operation can end with, one variant per contract error code.

use std::fmt;

pub type DomainResult<T> = Result<T, DomainError>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    NotFound(String),
    /// `field` names the input field at fault, e.g. `input.email`.
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// `balance` is `None` once hidden from a caller who may not read the customer.
    #[error("insufficient points: {}", shortfall(*.balance, *.needed))]
    InsufficientPoints { balance: Option<i64>, needed: i64 },
    #[error("{0}")]
    OutOfStock(String),
    #[error("{0}")]
    TierTooLow(String),
    /// Anything the caller cannot act on; its details are logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError {
    pub fn bad_input(field: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self::BadInput {
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    /// The same error without the customer's personal figures (its balance), for a
    /// caller who may act on the customer but not read it: a till learns that points are
    /// short, not how many the customer has.
    pub fn without_personal_figures(self) -> Self {
        match self {
            Self::InsufficientPoints { needed, .. } => Self::InsufficientPoints {
                balance: None,
                needed,
            },
            other => other,
        }
    }

    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The contract's `extensions.code` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::InsufficientPoints { .. } => "INSUFFICIENT_POINTS",
            Self::OutOfStock(_) => "OUT_OF_STOCK",
            Self::TierTooLow(_) => "TIER_TOO_LOW",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

fn shortfall(balance: Option<i64>, needed: i64) -> String {
    match balance {
        Some(balance) => format!("balance {balance}, needed {needed}"),
        None => format!("{needed} needed"),
    }
}

impl From<sea_orm::DbErr> for DomainError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sea_orm::TransactionError<DomainError>> for DomainError {
    fn from(error: sea_orm::TransactionError<DomainError>) -> Self {
        match error {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(domain) => domain,
        }
    }
}

/// Accumulates field errors so that a caller learns of the first problem with a clear
/// message; validation stops at the first error to keep messages short.
pub fn ensure(condition: bool, field: &str, message: impl FnOnce() -> String) -> DomainResult<()> {
    if condition {
        Ok(())
    } else {
        Err(DomainError::bad_input(field, message()))
    }
}
