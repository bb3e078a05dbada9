use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission, ReadCustomer};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id_or_none;
use crate::graphql::types::customer::{
    Customer, CustomerConnection, CustomerFilter, CustomerOrderBy, list_customers,
};
use crate::store::Db;
use crate::store::customers;

#[derive(Default)]
pub struct CustomerQuery;

#[Object]
impl CustomerQuery {
    /// `null` when no customer has this id.
    #[graphql(guard = "ReadCustomer::id(&id)")]
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Customer>> {
        let Some(id) = parse_id_or_none(&id) else {
            return Ok(None);
        };
        // A merged member's id finds its survivor.
        Ok(
            customers::find_following_merge(ctx.data::<Db>()?.conn(), id)
                .await
                .gql()?
                .map(Customer),
        )
    }

    #[graphql(guard = "Allow(Permission::ReadCustomers)")]
    async fn customer_by_external_ref(
        &self,
        ctx: &Context<'_>,
        external_ref: String,
    ) -> Result<Option<Customer>> {
        Ok(
            customers::find_by_external_ref_following_merge(
                ctx.data::<Db>()?.conn(),
                &external_ref,
            )
            .await
            .gql()?
            .map(Customer),
        )
    }

    /// `first` defaults to 20 and is at most 100; the default order is by creation.
    #[graphql(
        guard = "Allow(Permission::ReadCustomers)",
        complexity = "crate::graphql::cost::page(first, child_complexity)"
    )]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        filter: Option<CustomerFilter>,
        order_by: Option<CustomerOrderBy>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CustomerConnection> {
        let filter = filter.unwrap_or_default();
        filter.validate().gql()?;
        list_customers(ctx, filter.into(), order_by.map(Into::into), first, after).await
    }
}
