//! `PointsEntry`: one entry of a customer's points ledger.

use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::points_entry;

use super::customer::Customer;
use super::enums::PointsEntryKind;
use crate::domain::DomainResult;
use crate::graphql::id::parse_id;
use crate::graphql::loaders::load_customer;
use crate::graphql::scalars::DateTime;
use crate::service::points::Adjustment;

#[derive(Clone)]
pub struct PointsEntry(pub points_entry::Model);

#[Object]
impl PointsEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn customer(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.customer_id).await
    }

    async fn delta(&self) -> i64 {
        self.0.delta
    }

    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }

    async fn kind(&self) -> PointsEntryKind {
        self.0.kind.into()
    }

    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(Into::into)
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

super::connection::connection!(PointsEntryConnection, PointsEntryEdge, PointsEntry);

#[derive(InputObject)]
pub struct AdjustPointsInput {
    customer_id: ID,
    delta: i64,
    reason: String,
    idempotency_key: Option<String>,
}

impl AdjustPointsInput {
    pub fn into_adjustment(self) -> DomainResult<Adjustment> {
        Ok(Adjustment {
            customer_id: parse_id(&self.customer_id, "input.customerId")?,
            delta: self.delta,
            reason: self.reason,
            idempotency_key: self.idempotency_key,
        })
    }
}
