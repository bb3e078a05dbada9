//! Managing webhook endpoints: an admin manages every endpoint, a partner with
//! `webhooks:manage` only those it registered (another's, or an admin's, is `NOT_FOUND`,
//! as if it did not exist). Whether payloads carry personal data is fixed when the
//! endpoint is registered, from what its owner may read then, and only ever lowered: a
//! change by a token that may not read customers takes it away (so that such a token
//! cannot point a data-carrying endpoint somewhere else).

use entity::{webhook_delivery, webhook_endpoint};
use serde_json::json;
use uuid::Uuid;

use super::Patch;
use crate::auth::{Permission, Principal, Role};
use crate::domain::webhooks::{self as rules, MAX_DESCRIPTION_CHARS, ROTATION_OVERLAP, TEST_EVENT};
use crate::domain::{DomainError, DomainResult};
use crate::store::webhooks::{self, EndpointChanges, NewDelivery, NewEndpoint};
use crate::store::{Db, now};
use crate::webhooks::Settings;

/// The most endpoints one owner may register: each is fanned out to and delivered to,
/// and listed unpaged.
pub const MAX_ENDPOINTS_PER_OWNER: u64 = 100;

/// Who manages endpoints, as this module needs to know it.
pub struct Manager<'a> {
    pub subject: &'a str,
    pub admin: bool,
    pub reads_customers: bool,
}

impl<'a> Manager<'a> {
    pub fn of(principal: &'a Principal) -> Self {
        Self {
            subject: &principal.subject,
            admin: principal.role == Role::Admin,
            reads_customers: principal.may(Permission::ReadCustomers),
        }
    }

    fn role(&self) -> &'static str {
        if self.admin { "admin" } else { "partner" }
    }

    fn owns(&self, endpoint: &webhook_endpoint::Model) -> bool {
        owns(self.admin, self.subject, endpoint)
    }
}

fn owns(admin: bool, subject: &str, endpoint: &webhook_endpoint::Model) -> bool {
    admin || (endpoint.owner == subject && endpoint.owner_role == "partner")
}

pub struct EndpointInput {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Patch<String>,
    pub enabled: Option<bool>,
}

fn description(text: Option<&str>, field: &str) -> DomainResult<Option<String>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::bad_input(
            field,
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Registers an endpoint; returns it with its secret (shown this once).
#[tracing::instrument(name = "webhooks::create", skip_all)]
pub async fn create(
    db: &Db,
    settings: &Settings,
    manager: &Manager<'_>,
    input: EndpointInput,
) -> DomainResult<(webhook_endpoint::Model, String)> {
    let url = rules::endpoint_url(
        &input.url,
        settings.allow_http,
        settings.allow_private,
        "input.url",
    )?;
    let events = rules::event_types(&input.events, "input.events")?;
    let description = description(input.description.as_deref(), "input.description")?;
    let secret = rules::new_secret();
    let new = NewEndpoint {
        url: url.to_string(),
        description,
        events,
        enabled: input.enabled.unwrap_or(true),
        owner: manager.subject.to_owned(),
        owner_role: manager.role().to_owned(),
        owner_reads_customers: manager.reads_customers,
        secret: secret.clone(),
    };
    let endpoint = db
        .write(move |txn| {
            Box::pin(async move {
                let held = webhooks::count_endpoints(txn, &new.owner, &new.owner_role).await?;
                if held >= MAX_ENDPOINTS_PER_OWNER {
                    return Err(DomainError::Conflict(format!(
                        "at most {MAX_ENDPOINTS_PER_OWNER} webhook endpoints per owner; delete one first"
                    )));
                }
                webhooks::insert_endpoint(txn, new).await
            })
        })
        .await?;
    Ok((endpoint, secret))
}

/// The endpoints the manager may see, oldest first.
pub async fn list(db: &Db, manager: &Manager<'_>) -> DomainResult<Vec<webhook_endpoint::Model>> {
    let owner = (!manager.admin).then_some((manager.subject, "partner"));
    webhooks::endpoints(db.conn(), owner).await
}

/// The endpoint, if it exists and the manager may see it.
pub async fn find(
    db: &Db,
    manager: &Manager<'_>,
    id: Uuid,
) -> DomainResult<Option<webhook_endpoint::Model>> {
    Ok(webhooks::find_endpoint(db.conn(), id)
        .await?
        .filter(|e| manager.owns(e)))
}

async fn owned(
    txn: &impl sea_orm::ConnectionTrait,
    admin: bool,
    subject: &str,
    id: Uuid,
) -> DomainResult<webhook_endpoint::Model> {
    webhooks::find_endpoint(txn, id)
        .await?
        .filter(|e| owns(admin, subject, e))
        .ok_or_else(|| DomainError::not_found("webhook endpoint"))
}

#[tracing::instrument(name = "webhooks::update", skip_all)]
pub async fn update(
    db: &Db,
    settings: &Settings,
    manager: &Manager<'_>,
    id: Uuid,
    patch: EndpointPatch,
) -> DomainResult<webhook_endpoint::Model> {
    let url = patch
        .url
        .as_deref()
        .map(|url| {
            rules::endpoint_url(
                url,
                settings.allow_http,
                settings.allow_private,
                "input.url",
            )
        })
        .transpose()?
        .map(|url| url.to_string());
    let events = patch
        .events
        .as_deref()
        .map(|events| rules::event_types(events, "input.events"))
        .transpose()?;
    let description = match patch.description {
        Patch::Keep => None,
        Patch::Clear => Some(None),
        Patch::Set(text) => Some(description(Some(&text), "input.description")?),
    };
    let changes = EndpointChanges {
        url,
        description,
        events,
        enabled: patch.enabled,
        reads_customers: manager.reads_customers,
    };
    let (admin, subject) = (manager.admin, manager.subject.to_owned());
    db.write(move |txn| {
        Box::pin(async move {
            let existing = owned(txn, admin, &subject, id).await?;
            webhooks::update_endpoint(txn, existing, changes).await
        })
    })
    .await
}

/// Deletes the endpoint and its deliveries; `NOT_FOUND` for one the manager may not see.
#[tracing::instrument(name = "webhooks::delete", skip_all)]
pub async fn delete(db: &Db, manager: &Manager<'_>, id: Uuid) -> DomainResult<()> {
    let (admin, subject) = (manager.admin, manager.subject.to_owned());
    db.write(move |txn| {
        Box::pin(async move {
            owned(txn, admin, &subject, id).await?;
            webhooks::delete_endpoint(txn, id).await.map(|_| ())
        })
    })
    .await
}

/// A new secret; the old one keeps signing for `ROTATION_OVERLAP`.
#[tracing::instrument(name = "webhooks::rotate_secret", skip_all)]
pub async fn rotate_secret(
    db: &Db,
    manager: &Manager<'_>,
    id: Uuid,
) -> DomainResult<(webhook_endpoint::Model, String)> {
    let (admin, subject) = (manager.admin, manager.subject.to_owned());
    let reads_customers = manager.reads_customers;
    let secret = rules::new_secret();
    let kept = secret.clone();
    let endpoint = db
        .write(move |txn| {
            Box::pin(async move {
                let existing = owned(txn, admin, &subject, id).await?;
                let until = now() + ROTATION_OVERLAP;
                webhooks::rotate_secret(txn, existing, kept, until, reads_customers).await
            })
        })
        .await?;
    Ok((endpoint, secret))
}

/// Makes a delivery due again now, whatever its status.
#[tracing::instrument(name = "webhooks::redeliver", skip_all)]
pub async fn redeliver(
    db: &Db,
    manager: &Manager<'_>,
    delivery_id: Uuid,
) -> DomainResult<webhook_delivery::Model> {
    let (admin, subject) = (manager.admin, manager.subject.to_owned());
    db.write(move |txn| {
        Box::pin(async move {
            let delivery = webhooks::find_delivery(txn, delivery_id)
                .await?
                .ok_or_else(|| DomainError::not_found("webhook delivery"))?;
            owned(txn, admin, &subject, delivery.endpoint_id)
                .await
                .map_err(|_| DomainError::not_found("webhook delivery"))?;
            webhooks::make_due(txn, delivery_id, now()).await
        })
    })
    .await
}

/// A `webhook.test` event for this endpoint alone, due now.
#[tracing::instrument(name = "webhooks::send_test", skip_all)]
pub async fn send_test(
    db: &Db,
    manager: &Manager<'_>,
    endpoint_id: Uuid,
) -> DomainResult<webhook_delivery::Model> {
    let (admin, subject) = (manager.admin, manager.subject.to_owned());
    db.write(move |txn| {
        Box::pin(async move {
            let endpoint = owned(txn, admin, &subject, endpoint_id).await?;
            let at = now();
            webhooks::insert_delivery(
                txn,
                NewDelivery {
                    endpoint_id: endpoint.id,
                    event_id: Uuid::now_v7(),
                    event_type: TEST_EVENT.to_owned(),
                    payload: json!({
                        "endpointId": endpoint.id,
                        "message": "a test event from Tierwise",
                    }),
                    occurred_at: at,
                },
            )
            .await
        })
    })
    .await
}
