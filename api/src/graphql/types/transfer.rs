//! `PointsTransfer`: points one member gave another.

use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::points_transfer;

use super::customer::Customer;
use crate::auth::{Anyone, OwnedBy};
use crate::domain::{DomainError, DomainResult};
use crate::graphql::id::parse_id;
use crate::graphql::loaders::load_customer;
use crate::graphql::scalars::DateTime;
use crate::service::transfers::{Recipient, TransferRequest};

/// A transfer is the sender's record: its figures are the sender's (`OwnedBy`); the
/// recipient is shown as the caller may see it (a customer sees another member's public
/// view only).
pub struct PointsTransfer(pub points_transfer::Model);

#[Object(guard = "OwnedBy(self.0.from_customer_id)")]
impl PointsTransfer {
    #[graphql(guard = "Anyone")]
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn from(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.from_customer_id).await
    }

    async fn to(&self, ctx: &Context<'_>) -> Result<Customer> {
        load_customer(ctx, self.0.to_customer_id).await
    }

    async fn points(&self) -> i64 {
        self.0.points
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

/// Name the recipient by exactly one of `toCustomerId` (staff, admins and partners) and
/// `toReferralCode` (anyone: how a customer names the member it gives to).
#[derive(InputObject)]
pub struct TransferPointsInput {
    from_customer_id: ID,
    to_customer_id: Option<ID>,
    to_referral_code: Option<String>,
    points: i64,
    note: Option<String>,
    idempotency_key: Option<String>,
}

impl TransferPointsInput {
    pub fn into_request(self) -> DomainResult<TransferRequest> {
        let to = match (self.to_customer_id, self.to_referral_code) {
            (Some(id), None) => Recipient::Id(parse_id(&id, "input.toCustomerId")?),
            (None, Some(code)) => Recipient::ReferralCode(code.trim().to_owned()),
            _ => {
                return Err(DomainError::bad_input(
                    "input.toCustomerId",
                    "give exactly one of toCustomerId and toReferralCode",
                ));
            }
        };
        Ok(TransferRequest {
            from: parse_id(&self.from_customer_id, "input.fromCustomerId")?,
            to,
            points: self.points,
            note: self.note,
            idempotency_key: self.idempotency_key,
        })
    }
}
