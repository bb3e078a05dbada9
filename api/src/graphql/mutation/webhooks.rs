use async_graphql::{Context, ID, Object, Result};

use crate::auth::guard::principal;
use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id;
use crate::graphql::types::webhook::{
    CreatedWebhookEndpoint, WebhookDelivery, WebhookEndpoint, WebhookEndpointInput,
    WebhookEndpointPatch,
};
use crate::service::webhooks::{self, Manager};
use crate::store::Db;
use crate::webhooks::{Settings, Wakeup};

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint; its signing secret is in the answer, and shown only there.
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<CreatedWebhookEndpoint> {
        let principal = principal(ctx)?;
        let created = webhooks::create(
            ctx.data::<Db>()?,
            ctx.data::<std::sync::Arc<Settings>>()?,
            &Manager::of(principal),
            input.into(),
        )
        .await
        .gql()?;
        Ok(created.into())
    }

    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookEndpointPatch,
    ) -> Result<WebhookEndpoint> {
        let id = parse_id(&id, "id").gql()?;
        let principal = principal(ctx)?;
        let endpoint = webhooks::update(
            ctx.data::<Db>()?,
            ctx.data::<std::sync::Arc<Settings>>()?,
            &Manager::of(principal),
            id,
            input.into(),
        )
        .await
        .gql()?;
        Ok(WebhookEndpoint(endpoint))
    }

    /// Deletes the endpoint and its deliveries.
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id(&id, "id").gql()?;
        let principal = principal(ctx)?;
        webhooks::delete(ctx.data::<Db>()?, &Manager::of(principal), id)
            .await
            .gql()?;
        Ok(true)
    }

    /// A new signing secret, shown here only; the old one also signs for 24 hours.
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<CreatedWebhookEndpoint> {
        let id = parse_id(&id, "id").gql()?;
        let principal = principal(ctx)?;
        let rotated = webhooks::rotate_secret(ctx.data::<Db>()?, &Manager::of(principal), id)
            .await
            .gql()?;
        Ok(rotated.into())
    }

    /// Sends a delivery again now, whatever its status (a FAILED one gets one more
    /// attempt).
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> Result<WebhookDelivery> {
        let id = parse_id(&delivery_id, "deliveryId").gql()?;
        let principal = principal(ctx)?;
        let delivery = webhooks::redeliver(ctx.data::<Db>()?, &Manager::of(principal), id).await;
        due_now(ctx, delivery)
    }

    /// Sends a `webhook.test` event to this endpoint.
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
    ) -> Result<WebhookDelivery> {
        let id = parse_id(&endpoint_id, "endpointId").gql()?;
        let principal = principal(ctx)?;
        let delivery = webhooks::send_test(ctx.data::<Db>()?, &Manager::of(principal), id).await;
        due_now(ctx, delivery)
    }
}

/// A delivery made due now: this server's dispatcher is woken rather than left to its
/// next poll.
fn due_now(
    ctx: &Context<'_>,
    delivery: crate::domain::DomainResult<entity::webhook_delivery::Model>,
) -> Result<WebhookDelivery> {
    let delivery = delivery.gql()?;
    ctx.data::<Wakeup>()?.wake();
    Ok(WebhookDelivery(delivery, None))
}
