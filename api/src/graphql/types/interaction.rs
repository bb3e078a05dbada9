//! `Interaction`, the input that records one, and what recording returns.

use async_graphql::{ID, InputObject, Object, SimpleObject};
use entity::interaction;
use rust_decimal::Decimal;

use super::customer::Customer;
use super::enums::{Channel, InteractionKind};
use super::tier::TierChange;
use crate::domain::DomainResult;
use crate::domain::interaction::RawInteraction;
use crate::domain::money::e4_to_decimal;
use crate::graphql::id::parse_id;
use crate::graphql::scalars::DateTime;
use crate::service::interactions::{CustomerRef, RecordRequest, Recorded};

#[derive(Clone)]
pub struct Interaction(pub interaction::Model);

#[Object]
impl Interaction {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn kind(&self) -> InteractionKind {
        self.0.kind.into()
    }

    async fn occurred_at(&self) -> DateTime {
        self.0.occurred_at.into()
    }

    async fn amount(&self) -> Option<Decimal> {
        self.0.amount_e4.map(e4_to_decimal)
    }

    async fn currency(&self) -> Option<&str> {
        self.0.currency.as_deref()
    }

    async fn channel(&self) -> Option<Channel> {
        self.0.channel.map(Into::into)
    }

    async fn rating(&self) -> Option<i32> {
        self.0.rating
    }

    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    async fn order_ref(&self) -> Option<&str> {
        self.0.order_ref.as_deref()
    }

    /// The `sub` of the token that recorded it.
    async fn recorded_by(&self) -> &str {
        &self.0.recorded_by
    }

    async fn recorded_at(&self) -> DateTime {
        self.0.recorded_at.into()
    }
}

super::connection::connection!(InteractionConnection, InteractionEdge, Interaction);

#[derive(InputObject)]
pub struct RecordInteractionInput {
    /// Exactly one of `customerId` and `customerExternalRef`.
    customer_id: Option<ID>,
    customer_external_ref: Option<String>,
    kind: InteractionKind,
    /// Default now; may be past (backfill); at most 5 minutes ahead.
    occurred_at: Option<DateTime>,
    /// Required and > 0 for PURCHASE, REFUND, SHIPMENT, PAYMENT.
    amount: Option<Decimal>,
    /// Must equal the base currency when given.
    currency: Option<String>,
    channel: Option<Channel>,
    /// SURVEY: 0..10 (NPS); FEEDBACK: 1..5.
    rating: Option<i32>,
    note: Option<String>,
    order_ref: Option<String>,
    /// Same caller + same key: recorded once, later calls get `duplicate: true`.
    idempotency_key: Option<String>,
}

impl RecordInteractionInput {
    /// The service's request; `prefix` names the input in field errors.
    pub fn into_request(self, prefix: &str) -> DomainResult<RecordRequest> {
        let customer = match (self.customer_id, self.customer_external_ref) {
            (Some(id), None) => Some(CustomerRef::Id(parse_id(
                &id,
                &format!("{prefix}.customerId"),
            )?)),
            (None, Some(reference)) => Some(CustomerRef::ExternalRef(reference)),
            _ => None,
        };
        Ok(RecordRequest {
            customer,
            interaction: RawInteraction {
                kind: self.kind.into(),
                occurred_at: self.occurred_at.map(|at| at.0),
                amount: self.amount,
                currency: self.currency,
                channel: self.channel.map(Into::into),
                rating: self.rating,
                note: self.note,
                order_ref: self.order_ref,
            },
            idempotency_key: self.idempotency_key,
        })
    }
}

#[derive(SimpleObject)]
pub struct RecordInteractionPayload {
    interaction: Interaction,
    customer: Customer,
    /// Net points change it caused (negative for a refund).
    points_earned: i64,
    /// `null` when the tier did not change.
    tier_change: Option<TierChange>,
    /// The idempotency key was seen before: nothing new recorded.
    duplicate: bool,
}

impl From<Recorded> for RecordInteractionPayload {
    fn from(recorded: Recorded) -> Self {
        Self {
            interaction: Interaction(recorded.interaction),
            customer: Customer(recorded.customer),
            points_earned: recorded.points_earned,
            tier_change: recorded.tier_change.map(TierChange),
            duplicate: recorded.duplicate,
        }
    }
}
