//! The single mapping from domain errors to GraphQL errors with `extensions.code`.
//! Internal errors are logged here and reach the client as "internal error" only.

use async_graphql::{Error, ErrorExtensions};

use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::DomainError;

impl ErrorExtensions for DomainError {
    fn extend(&self) -> Error {
        if let DomainError::Internal(source) = self {
            tracing::error!(error = ?source, "internal error");
        }
        let mut error = Error::new(self.to_string()).extend_with(|_, e| e.set("code", self.code()));
        if let DomainError::BadInput { field, .. } = self {
            error = error.extend_with(|_, e| e.set("field", field.as_str()));
        }
        error
    }
}

/// Turns a domain result into a GraphQL one, code attached. Resolvers use this instead of
/// `?` on a domain error, which would compile but drop the code.
pub trait Gql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> Gql<T> for Result<T, DomainError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.extend())
    }
}

/// Leaves out of a failed operation's error what the caller may not know of the customer
/// it acted on (`DomainError::without_personal_figures`): a partner that may redeem or
/// adjust, but not read, learns that points are short, not the balance.
pub trait Disclose<T> {
    fn disclosed_to(self, caller: &Principal, customer: Uuid) -> Result<T, DomainError>;
}

impl<T> Disclose<T> for Result<T, DomainError> {
    fn disclosed_to(self, caller: &Principal, customer: Uuid) -> Result<T, DomainError> {
        self.map_err(|error| {
            if caller.may_read_customer(customer) {
                error
            } else {
                error.without_personal_figures()
            }
        })
    }
}

/// Gives every error of a response a contract code: errors raised before execution
/// (syntax, validation, limits) and values that do not fit their input type are
/// `BAD_USER_INPUT`; any other error from a resolver that lacks a code would be a bug, and
/// is `INTERNAL`.
pub fn ensure_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            // Input values are coerced as fields resolve, so their errors carry a path.
            let coercion = ["Failed to parse", "Expected input type", "Invalid value"]
                .iter()
                .any(|prefix| error.message.starts_with(prefix));
            let bad_input = error.path.is_empty() || coercion;
            let code = if bad_input {
                "BAD_USER_INPUT"
            } else {
                "INTERNAL"
            };
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
}

impl<T> Gql<T> for Result<T, std::sync::Arc<DomainError>> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.extend())
    }
}
