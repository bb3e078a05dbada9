//! `Referral`: who brought whom, and what it paid.

use async_graphql::{Context, ID, Object, Result};
use entity::referral;

use super::customer::Customer;
use super::enums::ReferralStatus;
use crate::graphql::loaders::load_customer;
use crate::graphql::scalars::DateTime;

pub struct Referral(pub referral::Model);

#[Object]
impl Referral {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn referrer(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.referrer_id).await
    }

    async fn referee(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.referee_id).await
    }

    async fn code(&self) -> &str {
        &self.0.code
    }

    async fn status(&self) -> ReferralStatus {
        self.0.status.into()
    }

    async fn referrer_points(&self) -> i64 {
        self.0.referrer_points
    }

    async fn referee_points(&self) -> i64 {
        self.0.referee_points
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn rewarded_at(&self) -> Option<DateTime> {
        self.0.rewarded_at.map(Into::into)
    }
}
