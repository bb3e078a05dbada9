//! What a delivery carries: the body's `data` for each event, built once per batch from
//! what the outbox names, and cut down per endpoint to what its owner may read. An owner
//! without `customers:read` gets a customer's id and `externalRef` and the event's own
//! figures; names, contact details and free-text notes only go to owners who may read
//! customers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::EventTopic;
use entity::{customer, tier};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::DomainResult;
use crate::domain::webhooks::event_type;
use crate::store::outbox::{self, Stored};
use crate::store::{customers, referrals, tiers};

/// One event ready to fan out: its type, when it happened, and its data in both cuts.
pub struct Prepared {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    /// When the outbox row was written.
    pub written_at: DateTime<Utc>,
    /// For owners who may read customers.
    pub full: Value,
    /// For the others.
    pub redacted: Value,
}

impl Prepared {
    pub fn data_for(&self, reads_customers: bool) -> &Value {
        if reads_customers {
            &self.full
        } else {
            &self.redacted
        }
    }
}

/// The batch's events as webhook payloads, in order. An event whose subject is gone (or
/// of a topic this version does not know) is skipped, with a log line.
pub async fn prepare(db: &impl ConnectionTrait, batch: &[Stored]) -> DomainResult<Vec<Prepared>> {
    let (changes, entries) = outbox::subjects(db, batch).await?;
    let referral_ids: Vec<Uuid> = batch
        .iter()
        .filter(|e| e.topic == Ok(EventTopic::ReferralRewarded))
        .map(|e| e.subject_id)
        .collect();
    let referrals: HashMap<Uuid, entity::referral::Model> = referrals::by_ids(db, &referral_ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut customer_ids: Vec<Uuid> = batch.iter().filter_map(|e| e.customer_id).collect();
    customer_ids.extend(
        referrals
            .values()
            .flat_map(|r| [r.referrer_id, r.referee_id]),
    );
    customer_ids.sort();
    customer_ids.dedup();
    let people: HashMap<Uuid, customer::Model> = customers::find_many(db, &customer_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let tier_keys: HashMap<Uuid, String> = tiers::all(db)
        .await?
        .into_iter()
        .map(|t: tier::Model| (t.id, t.key))
        .collect();
    let person = |id: Uuid| -> (Value, Value) {
        match people.get(&id) {
            Some(c) => (
                json!({
                    "id": c.id, "externalRef": c.external_ref, "name": c.name,
                    "email": c.email, "phone": c.phone,
                    "tier": tier_keys.get(&c.tier_id),
                }),
                json!({ "id": c.id, "externalRef": c.external_ref }),
            ),
            None => (json!({ "id": id }), json!({ "id": id })),
        }
    };
    let mut prepared = Vec::with_capacity(batch.len());
    for event in batch {
        let topic = match &event.topic {
            Ok(topic) => *topic,
            Err(unknown) => {
                tracing::warn!(topic = %unknown, "webhook fan-out skipped an event of a topic it does not know");
                continue;
            }
        };
        let built = match topic {
            EventTopic::TierChanged => changes.get(&event.subject_id).map(|change| {
                let (full, redacted) = person(change.customer_id);
                let own = json!({
                    "changeId": change.id,
                    "from": change.from_tier_id.and_then(|id| tier_keys.get(&id)),
                    "to": tier_keys.get(&change.to_tier_id),
                    "reason": change.reason.as_str(),
                    "score": change.score,
                    "changedAt": change.changed_at,
                });
                let private = json!({ "note": change.note });
                (change.changed_at, both(full, redacted, own, private))
            }),
            EventTopic::PointsChanged => entries.get(&event.subject_id).map(|entry| {
                let (full, redacted) = person(entry.customer_id);
                let own = json!({
                    "entryId": entry.id,
                    "kind": entry.kind.as_str(),
                    "delta": entry.delta,
                    "balanceAfter": entry.balance_after,
                    "expiresAt": entry.expires_at,
                    "createdAt": entry.created_at,
                });
                let private = json!({ "reason": entry.reason });
                (entry.created_at, both(full, redacted, own, private))
            }),
            EventTopic::ReferralRewarded => referrals.get(&event.subject_id).map(|referral| {
                let (referrer_full, referrer_redacted) = person(referral.referrer_id);
                let (referee_full, referee_redacted) = person(referral.referee_id);
                let own = json!({
                    "referralId": referral.id,
                    "referrerPoints": referral.referrer_points,
                    "refereePoints": referral.referee_points,
                    "rewardedAt": referral.rewarded_at,
                });
                let with = |referrer: Value, referee: Value| {
                    let mut data = own.clone();
                    data["referrer"] = referrer;
                    data["referee"] = referee;
                    data
                };
                (
                    referral.rewarded_at.unwrap_or(event.created_at),
                    (
                        with(referrer_full, referee_full),
                        with(referrer_redacted, referee_redacted),
                    ),
                )
            }),
            // Events that carry their own figures: the customer, and those figures.
            EventTopic::LifecycleChanged
            | EventTopic::PointsExpiring
            | EventTopic::CustomerBirthday => event.customer_id.map(|customer| {
                let (full, redacted) = person(customer);
                let own = event.payload.clone().unwrap_or_else(|| json!({}));
                (event.created_at, both(full, redacted, own, json!({})))
            }),
            // An erased customer has nothing left to show but its id.
            EventTopic::CustomerErased => Some((
                event.created_at,
                (
                    json!({ "customer": { "id": event.subject_id } }),
                    json!({ "customer": { "id": event.subject_id } }),
                ),
            )),
        };
        match built {
            Some((occurred_at, (full, redacted))) => prepared.push(Prepared {
                event_id: event.id,
                event_type: event_type(topic),
                occurred_at,
                written_at: event.created_at,
                full,
                redacted,
            }),
            None => {
                tracing::warn!(event = %event.id, "webhook fan-out found no subject for an event")
            }
        }
    }
    Ok(prepared)
}

/// `data` as a caller who may not read customers may see it (a delivery listed by such a
/// caller, though made when its endpoint's owner could): customers cut down to their id
/// and `externalRef`, free text removed.
pub fn redact(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(fields) = data.as_object_mut() {
        fields.remove("reason");
        fields.remove("note");
        for key in ["customer", "referrer", "referee"] {
            if let Some(person) = fields.get_mut(key) {
                *person = json!({ "id": person["id"], "externalRef": person["externalRef"] });
            }
        }
    }
    data
}

/// The data for both cuts: the customer (whole or cut down) with the event's own fields,
/// and its free text only in the whole one.
fn both(customer: Value, redacted_customer: Value, own: Value, private: Value) -> (Value, Value) {
    let mut full = own.clone();
    full["customer"] = customer;
    if let (Some(full), Some(private)) = (full.as_object_mut(), private.as_object()) {
        full.extend(private.clone());
    }
    let mut redacted = own;
    redacted["customer"] = redacted_customer;
    (full, redacted)
}
