//! `WebhookEndpoint`, `WebhookDelivery` and their inputs. Every field of an endpoint is
//! its manager's to read: the endpoint is only ever produced for an admin or its owner
//! (`service::webhooks`).

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject};
use entity::{webhook_delivery, webhook_endpoint};

use super::connection::connection;
use super::customer::patch;
use super::enums::WebhookDeliveryStatus;
use crate::auth::Permission;
use crate::auth::guard::principal;
use crate::domain::DomainError;
use crate::graphql::error::Gql;
use crate::graphql::scalars::DateTime;
use crate::service::webhooks::{EndpointInput, EndpointPatch};
use crate::store::paging::{self, PageRequest};
use crate::store::{Db, webhooks};

#[derive(Clone)]
pub struct WebhookEndpoint(pub webhook_endpoint::Model);

connection!(
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookDelivery
);

#[Object]
impl WebhookEndpoint {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn url(&self) -> &str {
        &self.0.url
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The event types it receives; `*` for all.
    async fn events(&self) -> Vec<String> {
        serde_json::from_value(self.0.events.clone()).unwrap_or_default()
    }

    async fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// Why the server disabled it (every attempt failing for `WEBHOOK_DISABLE_AFTER`);
    /// `null` when enabled or disabled by hand.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    /// The `sub` of the token that registered it.
    async fn owner(&self) -> &str {
        &self.0.owner
    }

    /// Its deliveries, newest first.
    #[graphql(complexity = "crate::graphql::cost::page(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<WebhookDeliveryStatus>,
    ) -> Result<WebhookDeliveryConnection> {
        let request = PageRequest::new(first, after.as_deref(), webhooks::ORDER).gql()?;
        let page = webhooks::deliveries_page(
            ctx.data::<Db>()?.conn(),
            self.0.id,
            status.map(Into::into),
            &request,
        )
        .await
        .gql()?;
        let endpoint = self.0.clone();
        Ok(WebhookDeliveryConnection::from_page(
            page,
            |d| paging::time_cursor(webhooks::ORDER, d.created_at, d.id),
            |d| WebhookDelivery(d, Some(endpoint.clone())),
        ))
    }
}

/// A delivery, with its endpoint when the producer already had it.
#[derive(Clone)]
pub struct WebhookDelivery(
    pub webhook_delivery::Model,
    pub Option<webhook_endpoint::Model>,
);

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn endpoint(&self, ctx: &Context<'_>) -> Result<WebhookEndpoint> {
        if let Some(endpoint) = &self.1 {
            return Ok(WebhookEndpoint(endpoint.clone()));
        }
        webhooks::find_endpoint(ctx.data::<Db>()?.conn(), self.0.endpoint_id)
            .await
            .gql()?
            .map(WebhookEndpoint)
            .ok_or_else(|| DomainError::not_found("webhook endpoint"))
            .gql()
    }

    /// The `webhook-id` header: the same on every attempt.
    async fn event_id(&self) -> ID {
        ID(self.0.event_id.to_string())
    }

    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    async fn status(&self) -> WebhookDeliveryStatus {
        self.0.status.into()
    }

    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }

    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// When the next attempt is due; `null` once SUCCEEDED or FAILED.
    async fn next_attempt_at(&self) -> Option<DateTime> {
        self.0.next_attempt_at.map(DateTime)
    }

    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }

    async fn delivered_at(&self) -> Option<DateTime> {
        self.0.delivered_at.map(DateTime)
    }

    /// The body's `data`, as the endpoint's owner may see it (and, for a caller who may
    /// not read customers, without their personal data).
    #[graphql(complexity = "crate::graphql::cost::FREE_FORM_JSON")]
    async fn payload(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        if principal(ctx)?.may(Permission::ReadCustomers) {
            Ok(Json(self.0.payload.clone()))
        } else {
            Ok(Json(crate::webhooks::payload::redact(
                &self.0.event_type,
                &self.0.payload,
            )))
        }
    }
}

/// A new endpoint, or one with a new secret: the secret is shown here only.
#[derive(SimpleObject)]
pub struct CreatedWebhookEndpoint {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it.
    pub secret: String,
}

impl From<(webhook_endpoint::Model, String)> for CreatedWebhookEndpoint {
    fn from((endpoint, secret): (webhook_endpoint::Model, String)) -> Self {
        Self {
            endpoint: WebhookEndpoint(endpoint),
            secret,
        }
    }
}

#[derive(InputObject)]
pub struct WebhookEndpointInput {
    url: String,
    /// Event types (`customer.tier_changed`, `points.changed`, `points.expiring`,
    /// `referral.rewarded`, `customer.lifecycle_changed`, `customer.birthday`,
    /// `customer.erased`, `webhook.test`), or `*` for all.
    events: Vec<String>,
    description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    enabled: Option<bool>,
}

impl From<WebhookEndpointInput> for EndpointInput {
    fn from(input: WebhookEndpointInput) -> Self {
        Self {
            url: input.url,
            events: input.events,
            description: input.description,
            enabled: input.enabled,
        }
    }
}

#[derive(InputObject)]
pub struct WebhookEndpointPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    /// `null` clears it.
    description: MaybeUndefined<String>,
    /// Enabling an endpoint the server disabled forgives its failures.
    enabled: Option<bool>,
}

impl From<WebhookEndpointPatch> for EndpointPatch {
    fn from(patch_input: WebhookEndpointPatch) -> Self {
        Self {
            url: patch_input.url,
            events: patch_input.events,
            description: patch(patch_input.description),
            enabled: patch_input.enabled,
        }
    }
}
