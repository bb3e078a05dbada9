//! `PointsEntry`: one entry of a customer's points ledger.

use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::points_entry;

use super::customer::Customer;
use super::enums::PointsEntryKind;
use crate::auth::{Anyone, OwnedBy};
use crate::domain::DomainResult;
use crate::graphql::id::parse_id;
use crate::graphql::loaders::load_customer;
use crate::graphql::scalars::DateTime;
use crate::service::points::Adjustment;

/// One movement of a customer's points. The movement itself (delta, kind, dates) is
/// shown to whoever may see the entry (the writer that made it, an events subscriber);
/// the balance it left and its free-text reason are the customer's (`OwnedBy`).
#[derive(Clone)]
pub struct PointsEntry(pub points_entry::Model);

#[Object(guard = "OwnedBy(self.0.customer_id)")]
impl PointsEntry {
    #[graphql(guard = "Anyone")]
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The customer as the caller may see it (its public view, or all of it).
    #[graphql(guard = "Anyone")]
    async fn customer(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.customer_id).await
    }

    #[graphql(guard = "Anyone")]
    async fn delta(&self) -> i64 {
        self.0.delta
    }

    /// The customer's balance after the entry: a personal figure.
    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }

    #[graphql(guard = "Anyone")]
    async fn kind(&self) -> PointsEntryKind {
        self.0.kind.into()
    }

    /// Free text that may speak of the person.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// The campaign a `CAMPAIGN_BONUS` came from (its name for the customer; the rest
    /// for staff).
    async fn campaign(&self, ctx: &Context<'_>) -> Result<Option<super::campaign::Campaign>> {
        let Some(id) = self.0.campaign_id else {
            return Ok(None);
        };
        use crate::graphql::error::Gql;
        Ok(ctx
            .data::<crate::graphql::loaders::RequestLoader>()?
            .load_one(crate::graphql::loaders::CampaignById(id))
            .await
            .gql()?
            .map(super::campaign::Campaign))
    }

    #[graphql(guard = "Anyone")]
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(Into::into)
    }

    /// When the entry's points became (or become) spendable, for an entry written while
    /// its purchase's return window was open (`pendingDays`); null: at once. Until then
    /// they count in `Customer.pointsPending`, not in the balance.
    #[graphql(guard = "Anyone")]
    async fn available_at(&self) -> Option<DateTime> {
        self.0.available_at.map(Into::into)
    }

    #[graphql(guard = "Anyone")]
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
