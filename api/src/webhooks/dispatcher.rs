//! The dispatcher: claims due deliveries, sends one attempt each, records what came of
//! it. Every replica runs one; a claim holds a delivery for one attempt (plus a margin),
//! so no two replicas send the same attempt at once, and an attempt whose replica died
//! is made again once the claim lapses: delivery is at least once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::enums::WebhookDeliveryStatus;
use entity::{webhook_delivery, webhook_endpoint};
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::client::Client;
use super::{Settings, Wakeup};
use crate::domain::webhooks::{retry_delay, signature};
use crate::domain::{DomainError, DomainResult};
use crate::store::Db;
use crate::store::webhooks::{self, AttemptResult};

/// Deliveries claimed at a time, and sent at once.
const CLAIM: u64 = 64;
const CONCURRENCY: usize = 16;
/// How often the queue's depth is measured for `/metrics`.
const DEPTH_EVERY: Duration = Duration::from_secs(10);

/// Runs until the supervisor stops it.
pub async fn dispatch_forever(db: Db, settings: Arc<Settings>, wakeup: Wakeup) {
    let own = loop {
        match db.background().await {
            Ok(own) => break own,
            Err(error) => {
                tracing::warn!(%error, "webhook dispatcher cannot connect yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let client = match Client::new(&settings) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhook dispatcher cannot build its HTTP client");
            return;
        }
    };
    let mut measured = Instant::now() - DEPTH_EVERY;
    loop {
        if measured.elapsed() >= DEPTH_EVERY {
            measured = Instant::now();
            if let Ok(depth) = webhooks::pending_count(&own).await {
                metrics::gauge!("tierwise_webhook_queue_depth").set(depth as f64);
            }
        }
        match dispatch_due(&own, &client, &settings).await {
            // A full claim: more may be due.
            Ok(claimed) if claimed as u64 == CLAIM => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "webhook dispatcher could not claim deliveries"),
        }
        tokio::select! {
            _ = wakeup.0.notified() => {}
            _ = tokio::time::sleep(settings.poll) => {}
        }
    }
}

/// Claims what is due and sends it; returns how many it claimed.
pub async fn dispatch_due(
    db: &DatabaseConnection,
    client: &Client,
    settings: &Settings,
) -> DomainResult<usize> {
    let now = Utc::now();
    let hold = chrono::TimeDelta::from_std(settings.timeout * 2 + Duration::from_secs(10))
        .unwrap_or(chrono::TimeDelta::minutes(1));
    let ids = webhooks::claim_due(db, now, now + hold, CLAIM).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let deliveries = webhooks::deliveries(db, &ids).await?;
    let mut endpoint_ids: Vec<_> = deliveries.iter().map(|d| d.endpoint_id).collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    let mut endpoints: HashMap<_, webhook_endpoint::Model> = HashMap::new();
    for id in endpoint_ids {
        if let Some(endpoint) = webhooks::find_endpoint(db, id).await? {
            endpoints.insert(id, endpoint);
        }
    }
    let claimed = deliveries.len();
    futures_util::stream::iter(deliveries)
        .for_each_concurrent(CONCURRENCY, |delivery| {
            let endpoint = endpoints.get(&delivery.endpoint_id);
            async move {
                if let Err(error) = attempt(db, client, settings, &delivery, endpoint).await {
                    tracing::warn!(delivery = %delivery.id, %error, "could not record a webhook attempt");
                }
            }
        })
        .await;
    Ok(claimed)
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
