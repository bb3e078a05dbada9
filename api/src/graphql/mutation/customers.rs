use async_graphql::{Context, ID, Object, Result};

use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::types::customer::{
    CreateCustomerInput, Customer, UpdateCustomerInput, UpsertCustomerInput,
};
use crate::graphql::types::referral::Referral;
use crate::service::customers::{self, ProfilePatch};
use crate::service::referrals;
use crate::store::Db;

#[derive(Default)]
pub struct CustomerMutation;

#[Object]
impl CustomerMutation {
    #[graphql(guard = "Allow(Permission::WriteCustomers)")]
    async fn create_customer(
        &self,
        ctx: &Context<'_>,
        input: CreateCustomerInput,
    ) -> Result<Customer> {
        let referral_code = input.referral_code.clone();
        Ok(Customer(
            customers::create(ctx.data::<Db>()?, input.into(), referral_code)
                .await
                .gql()?,
        ))
    }

    /// Links a customer who has not bought yet to the referrer whose code it is.
    #[graphql(guard = "Allow(Permission::WriteCustomers)")]
    async fn apply_referral_code(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        code: String,
    ) -> Result<Referral> {
        let id = parse_id(&customer_id, "customerId").gql()?;
        Ok(Referral(
            referrals::apply_code(ctx.data::<Db>()?, id, code)
                .await
                .gql()?,
        ))
    }

    /// Keyed by `externalRef`.
    #[graphql(guard = "Allow(Permission::WriteCustomers)")]
    async fn upsert_customer(
        &self,
        ctx: &Context<'_>,
        input: UpsertCustomerInput,
    ) -> Result<Customer> {
        Ok(Customer(
            customers::upsert(ctx.data::<Db>()?, input.into())
                .await
                .gql()?,
        ))
    }

    #[graphql(guard = "Allow(Permission::WriteCustomers)")]
    async fn update_customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCustomerInput,
    ) -> Result<Customer> {
        let id = parse_id(&id, "id").gql()?;
        let patch = ProfilePatch::try_from(input).gql()?;
        Ok(Customer(
            customers::update(ctx.data::<Db>()?, id, patch)
                .await
                .gql()?,
        ))
    }

    /// Merges a duplicate member into `survivorId`: its points (each lot with its expiry
    /// date, pending ones still pending), interactions, referrals, tags and static
    /// segment memberships move; the survivor keeps the higher tier and its metrics are
    /// recomputed; the merged id and external reference then find the survivor.
    /// Idempotent; all or nothing.
    #[graphql(guard = "Allow(Permission::MergeCustomers)")]
    async fn merge_customers(
        &self,
        ctx: &Context<'_>,
        survivor_id: ID,
        merged_id: ID,
        idempotency_key: Option<String>,
    ) -> Result<Customer> {
        let survivor_id = parse_id(&survivor_id, "survivorId").gql()?;
        let merged_id = parse_id(&merged_id, "mergedId").gql()?;
        let caller = crate::auth::guard::principal(ctx)?;
        let survivor = crate::service::merge::merge(
            ctx.data::<Db>()?,
            caller.caller(),
            survivor_id,
            merged_id,
            idempotency_key,
        )
        .await
        .gql()?;
        Ok(Customer(survivor))
    }

    /// Removes personal data; keeps anonymous aggregates.
    #[graphql(guard = "Allow(Permission::EraseCustomers)")]
    async fn erase_customer(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id(&id, "id").gql()?;
        customers::erase(ctx.data::<Db>()?, id).await.gql()?;
        Ok(true)
    }
}
