//! async-graphql guards: authorisation declared on the field, decided by the permission
//! table in `auth`.

use async_graphql::{Context, ErrorExtensions, Guard, ID, Result};
use uuid::Uuid;

use super::{Permission, Principal};
use crate::domain::DomainError;

/// The caller of this request. Every request reaching the schema is authenticated (the
/// HTTP layer refuses the others), so its absence is a wiring bug, reported as such.
pub fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal> {
    ctx.data::<Principal>()
        .map_err(|_| DomainError::Unauthenticated("a bearer token is required".into()).extend())
}

fn forbidden() -> async_graphql::Error {
    DomainError::Forbidden("you are not allowed to do this".into()).extend()
}

/// Refuses a field of a customer the caller may not read; the error's path names it.
fn not_yours() -> async_graphql::Error {
    DomainError::Forbidden(
        "you may not read this customer: only its public view (id, name initial) is shown".into(),
    )
    .extend()
}

/// Allows the field when the caller has `permission`.
pub struct Allow(pub Permission);

impl Guard for Allow {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if principal(ctx)?.may(self.0) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

/// Allows reading the customer with this id: staff and readers may read any, a customer
/// only itself.
pub struct ReadCustomer(Option<Uuid>);

impl ReadCustomer {
    pub fn id(id: &ID) -> Self {
        Self(Uuid::parse_str(id).ok())
    }
}

/// Guards what belongs to one customer — its profile, figures, history and free text —
/// wherever the object carrying it is reached: a nested field, a mutation payload, a
/// live event or a replay. Who may read the customer (`Principal::may_read_customer`)
/// sees it; anyone else gets `FORBIDDEN` on the field, its path naming it.
pub struct OwnedBy(pub Uuid);

impl Guard for OwnedBy {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if principal(ctx)?.may_read_customer(self.0) {
            Ok(())
        } else {
            Err(not_yours())
        }
    }
}

/// Allows the field to anyone authenticated: the few fields of an object that its
/// object-wide guard does not cover (a customer's public view).
pub struct Anyone;

impl Guard for Anyone {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        principal(ctx).map(|_| ())
    }
}

impl Guard for ReadCustomer {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let principal = principal(ctx)?;
        let allowed = match self.0 {
            Some(id) => principal.may_read_customer(id),
            // A malformed id finds nothing; say so only to those who may read customers.
            None => principal.may(Permission::ReadCustomers),
        };
        if allowed { Ok(()) } else { Err(forbidden()) }
    }
}
