//! The dispatcher: claims due deliveries, sends one attempt each, records what came of
//! it. Every replica runs one; a claim holds a delivery for one attempt (plus a margin),
//! so no two replicas send the same attempt at once, and an attempt whose replica died
//! is made again once the claim lapses: delivery is at least once.
//!
//! Attempts run in a pipeline of `SLOTS`: a slot freed is filled at once, so a slow
//! receiver holds one slot, not a whole batch. And no owner has more than `PER_OWNER`
//! attempts in flight here: one partner's dead endpoints cannot take the slots every
//! other partner's deliveries need.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::enums::WebhookDeliveryStatus;
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio::task::JoinSet;

use super::client::Client;
use super::{Settings, Wakeup};
use crate::domain::webhooks::{retry_delay, signature};
use crate::domain::{DomainError, DomainResult};
use crate::store::Db;
use crate::store::webhooks::{self, AttemptResult};

/// Attempts in flight at once, per replica.
const SLOTS: usize = 16;
/// Attempts in flight at once for one owner (admin or partner), per replica.
const PER_OWNER: usize = 4;
/// How often the queue's depth is measured for `/metrics`.
const DEPTH_EVERY: Duration = Duration::from_secs(10);

/// Runs until the supervisor stops it.
pub async fn dispatch_forever(db: Db, settings: Arc<Settings>, wakeup: Wakeup) {
    let own = loop {
        match db.jobs().await {
            Ok(own) => break own,
            Err(error) => {
                tracing::warn!(%error, "webhook dispatcher cannot connect yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let client = match Client::new(&settings) {
        Ok(client) => Arc::new(client),
        Err(error) => {
            tracing::error!(%error, "webhook dispatcher cannot build its HTTP client");
            return;
        }
    };
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Whose attempt each task makes: its slot is the owner's until the task ends.
    let mut owners_of: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut per_owner: HashMap<String, usize> = HashMap::new();
    let mut measured = Instant::now() - DEPTH_EVERY;
    loop {
        if measured.elapsed() >= DEPTH_EVERY {
            measured = Instant::now();
            if let Ok(depth) = webhooks::pending_count(&own).await {
                metrics::gauge!("tierwise_webhook_queue_depth").set(depth as f64);
            }
        }
        // Slots are refilled a few at a time: a claim per finished attempt would double
        // the statements each delivery costs.
        let free = SLOTS - in_flight.len();
        if free >= SLOTS / 4 || in_flight.is_empty() {
            match claim(&own, &settings, free, &per_owner).await {
                Ok(claimed) => {
                    for (delivery, endpoint) in claimed {
                        let who = endpoint.as_ref().map(owner_key).unwrap_or_default();
                        *per_owner.entry(who.clone()).or_default() += 1;
                        let (db, client, settings) =
                            (own.clone(), client.clone(), settings.clone());
                        let task = in_flight.spawn(async move {
                            if let Err(error) =
                                attempt(&db, &client, &settings, &delivery, endpoint.as_ref()).await
                            {
                                tracing::warn!(delivery = %delivery.id, %error, "could not record a webhook attempt");
                            }
                        });
                        owners_of.insert(task.id(), who);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "webhook dispatcher could not claim deliveries")
                }
            }
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                // A task that panicked frees its owner's slot too.
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(error) => error.id(),
                };
                if let Some(who) = owners_of.remove(&task)
                    && let Some(count) = per_owner.get_mut(&who)
                {
                    *count -= 1;
                    if *count == 0 {
                        per_owner.remove(&who);
                    }
                }
            }
            _ = wakeup.0.notified() => {}
            _ = tokio::time::sleep(settings.poll) => {}
        }
    }
}

/// How an endpoint's owner is told apart from others: its role and `sub`.
fn owner_key(endpoint: &webhook_endpoint::Model) -> String {
    format!("{}:{}", endpoint.owner_role, endpoint.owner)
}

/// Claims up to `free` due deliveries, none for an owner already at `PER_OWNER`; returns
/// them with their endpoints (`None` for one deleted meanwhile).
async fn claim(
    db: &DatabaseConnection,
    settings: &Settings,
    free: usize,
    per_owner: &HashMap<String, usize>,
) -> DomainResult<Vec<(webhook_delivery::Model, Option<webhook_endpoint::Model>)>> {
    let now = Utc::now();
    let hold = chrono::TimeDelta::from_std(settings.timeout * 2 + Duration::from_secs(10))
        .unwrap_or(chrono::TimeDelta::minutes(1));
    let busy: Vec<String> = per_owner
        .iter()
        .filter(|(_, n)| **n >= PER_OWNER)
        .map(|(who, _)| who.clone())
        .collect();
    let ids =
        webhooks::claim_due(db, now, now + hold, free as u64, PER_OWNER as u64, &busy).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = webhooks::deliveries(db, &ids).await?;
    let endpoints: HashMap<_, webhook_endpoint::Model> =
        webhooks::endpoints_by_ids(db, deliveries.iter().map(|d| d.endpoint_id))
            .await?
            .into_iter()
            .map(|endpoint| (endpoint.id, endpoint))
            .collect();
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let endpoint = endpoints.get(&d.endpoint_id).cloned();
            (d, endpoint)
        })
        .collect())
}

/// Sends one attempt of `delivery` and records its outcome.
async fn attempt(
    db: &DatabaseConnection,
    client: &Client,
    settings: &Settings,
    delivery: &webhook_delivery::Model,
    endpoint: Option<&webhook_endpoint::Model>,
) -> Result<(), DomainError> {
    let now = Utc::now();
    let Some(endpoint) = endpoint.filter(|e| e.enabled) else {
        // Disabled (or deleted) since the delivery was made: nothing is sent; a
        // redelivery once it is enabled again sends it.
        let result = AttemptResult {
            status_code: None,
            error: Some("the endpoint is disabled".into()),
            status: WebhookDeliveryStatus::Failed,
            next_attempt_at: None,
            at: now,
        };
        return webhooks::record_attempt(db, delivery.id, &result).await;
    };
    let body = serde_json::to_vec(&json!({
        "type": delivery.event_type,
        "timestamp": delivery.occurred_at,
        "data": delivery.payload,
    }))
    .map_err(|e| DomainError::Internal(e.into()))?;
    let id = delivery.event_id.to_string();
    let timestamp = now.timestamp();
    let mut signatures = signature(&endpoint.secret, &id, timestamp, &body);
    if let (Some(previous), Some(until)) =
        (&endpoint.previous_secret, endpoint.previous_secret_until)
        && until > now
    {
        signatures.push(' ');
        signatures.push_str(&signature(previous, &id, timestamp, &body));
    }
    let headers = [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures),
    ];
    let started = Instant::now();
    let sent = client.post(&endpoint.url, &headers, body).await;
    metrics::histogram!("tierwise_webhook_attempt_seconds").record(started.elapsed().as_secs_f64());
    let at = Utc::now();
    let attempts = delivery.attempts as usize + 1;
    if sent.succeeded() {
        metrics::counter!("tierwise_webhook_attempts_total", "outcome" => "succeeded").increment(1);
        webhooks::record_attempt(
            db,
            delivery.id,
            &AttemptResult {
                status_code: sent.status.map(i32::from),
                error: None,
                status: WebhookDeliveryStatus::Succeeded,
                next_attempt_at: None,
                at,
            },
        )
        .await?;
        return webhooks::endpoint_succeeded(db, endpoint.id).await;
    }
    let next = retry_delay(&settings.retry_schedule, attempts, sent.retry_after)
        .and_then(|wait| chrono::TimeDelta::from_std(wait).ok())
        .map(|wait| at + wait);
    let status = match next {
        Some(_) => WebhookDeliveryStatus::Pending,
        None => WebhookDeliveryStatus::Failed,
    };
    let outcome = match status {
        WebhookDeliveryStatus::Failed => "failed",
        _ => "retrying",
    };
    metrics::counter!("tierwise_webhook_attempts_total", "outcome" => outcome).increment(1);
    tracing::info!(
        delivery = %delivery.id, endpoint = %endpoint.id, attempts,
        error = sent.error.as_deref().unwrap_or_default(), outcome,
        "webhook attempt failed"
    );
    webhooks::record_attempt(
        db,
        delivery.id,
        &AttemptResult {
            status_code: sent.status.map(i32::from),
            error: sent.error.clone(),
            status,
            next_attempt_at: next,
            at,
        },
    )
    .await?;
    let disable_after =
        chrono::TimeDelta::from_std(settings.disable_after).unwrap_or(chrono::TimeDelta::days(5));
    let reason = format!(
        "every attempt failed for {} (the last: {})",
        humantime::format_duration(settings.disable_after),
        sent.error.as_deref().unwrap_or("unknown")
    );
    if webhooks::endpoint_failed(db, endpoint.id, at, at - disable_after, &reason).await? {
        tracing::warn!(endpoint = %endpoint.id, %reason, "webhook endpoint disabled");
        metrics::counter!("tierwise_webhook_endpoints_disabled_total").increment(1);
    }
    Ok(())
}
