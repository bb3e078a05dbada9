use async_graphql::{Context, ID, Object, Result};

use crate::auth::guard::principal;
use crate::auth::{Allow, Permission};
use crate::graphql::error::Gql;
use crate::graphql::id::parse_id_or_none;
use crate::graphql::types::webhook::WebhookEndpoint;
use crate::service::webhooks::{self, Manager};
use crate::store::Db;

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Oldest first: every endpoint for an admin, a partner's own for a partner.
    #[graphql(
        guard = "Allow(Permission::ManageWebhooks)",
        complexity = "crate::graphql::cost::list(crate::service::webhooks::MAX_ENDPOINTS_PER_OWNER as usize, child_complexity)"
    )]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let principal = principal(ctx)?;
        let endpoints = webhooks::list(ctx.data::<Db>()?, &Manager::of(principal))
            .await
            .gql()?;
        Ok(endpoints.into_iter().map(WebhookEndpoint).collect())
    }

    /// `null` when no endpoint the caller manages has this id.
    #[graphql(guard = "Allow(Permission::ManageWebhooks)")]
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<Option<WebhookEndpoint>> {
        let Some(id) = parse_id_or_none(&id) else {
            return Ok(None);
        };
        let principal = principal(ctx)?;
        Ok(
            webhooks::find(ctx.data::<Db>()?, &Manager::of(principal), id)
                .await
                .gql()?
                .map(WebhookEndpoint),
        )
    }
}
