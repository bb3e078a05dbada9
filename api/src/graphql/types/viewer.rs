//! `Viewer`: who the token speaks for.

use async_graphql::{Context, Object, Result};

use super::customer::Customer;
use super::enums::Role;
use crate::auth::Principal;
use crate::graphql::error::Gql;
use crate::store::{Db, customers};

pub struct Viewer(pub Principal);

#[Object]
impl Viewer {
    async fn subject(&self) -> &str {
        &self.0.subject
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }

    /// The customer a customer token speaks for; `null` for other roles.
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        match self.0.customer_id {
            Some(id) if self.0.role == crate::auth::Role::Customer => {
                let db = ctx.data::<Db>()?;
                Ok(customers::find(db.conn(), id).await.gql()?.map(Customer))
            }
            _ => Ok(None),
        }
    }
}
