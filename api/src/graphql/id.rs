//! GraphQL `ID`s are UUIDs.

use async_graphql::ID;
use uuid::Uuid;

use crate::domain::{DomainError, DomainResult};

/// An id a mutation acts on: malformed is `BAD_USER_INPUT` naming `field`.
pub fn parse_id(id: &ID, field: &str) -> DomainResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| DomainError::bad_input(field, "is not a valid id"))
}

/// An id a query looks up: malformed finds nothing.
pub fn parse_id_or_none(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}
