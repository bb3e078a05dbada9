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

/// One event ready to fan out: its type, when it happened, and its data in both cuts
/// (the cut-down one derived from the whole one by `redact`, the one rule of what an
/// owner without `customers:read` sees).
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
    let person = |id: Uuid| -> Value {
        match people.get(&id) {
            Some(c) => json!({
                "id": c.id, "externalRef": c.external_ref, "name": c.name,
                "email": c.email, "phone": c.phone,
                "tier": tier_keys.get(&c.tier_id),
            }),
            None => json!({ "id": id }),
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
                let data = json!({
                    "customer": person(change.customer_id),
                    "changeId": change.id,
                    "from": change.from_tier_id.and_then(|id| tier_keys.get(&id)),
                    "to": tier_keys.get(&change.to_tier_id),
                    "reason": change.reason.as_str(),
                    "score": change.score,
                    "changedAt": change.changed_at,
                    "note": change.note,
                });
                (change.changed_at, data)
            }),
            EventTopic::PointsChanged => entries.get(&event.subject_id).map(|entry| {
                let data = json!({
                    "customer": person(entry.customer_id),
                    "entryId": entry.id,
                    "kind": entry.kind.as_str(),
                    "delta": entry.delta,
                    "balanceAfter": entry.balance_after,
                    "expiresAt": entry.expires_at,
                    "availableAt": entry.available_at,
                    "createdAt": entry.created_at,
                    "reason": entry.reason,
                });
                (entry.created_at, data)
            }),
            EventTopic::ReferralRewarded => referrals.get(&event.subject_id).map(|referral| {
                let data = json!({
                    "referralId": referral.id,
                    "referrer": person(referral.referrer_id),
                    "referee": person(referral.referee_id),
                    "referrerPoints": referral.referrer_points,
                    "refereePoints": referral.referee_points,
                    "rewardedAt": referral.rewarded_at,
                });
                (referral.rewarded_at.unwrap_or(event.created_at), data)
            }),
            // Events that carry their own figures: the customer, and those figures.
            EventTopic::LifecycleChanged
            | EventTopic::PointsExpiring
            | EventTopic::CustomerBirthday
            | EventTopic::AutomationFired
            | EventTopic::CustomerMerged => event.customer_id.map(|customer| {
                // Indexing a JSON value that is not an object panics: anything else
                // (a newer replica's shape) leaves only the customer.
                let mut data = match &event.payload {
                    Some(figures @ Value::Object(_)) => figures.clone(),
                    _ => json!({}),
                };
                data["customer"] = person(customer);
                (event.created_at, data)
            }),
            // An erased customer has nothing left to show but its id.
            EventTopic::CustomerErased => Some((
                event.created_at,
                json!({ "customer": { "id": event.subject_id } }),
            )),
        };
        match built {
            Some((occurred_at, full)) => prepared.push(Prepared {
                event_id: event.id,
                event_type: event_type(topic),
                occurred_at,
                written_at: event.created_at,
                redacted: redact(event_type(topic), &full),
                full,
            }),
            None => {
                tracing::warn!(event = %event.id, "webhook fan-out found no subject for an event")
            }
        }
    }
    Ok(prepared)
}

/// The customers an event's data names.
const PEOPLE: [&str; 3] = ["customer", "referrer", "referee"];

/// `data` of an event of `event_type` as someone who may not read customers may see it:
/// each customer cut down to its id and `externalRef`, and the free text tied to a
/// customer (a ledger entry's `reason`, a tier change's `note`) removed. The event's own
/// figures stay. Used for the payloads of endpoints whose owner may not read customers,
/// and for any payload listed to such a caller.
pub fn redact(event_type: &str, data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(fields) = data.as_object_mut() {
        let free_text = if event_type == self::event_type(EventTopic::PointsChanged) {
            Some("reason")
        } else if event_type == self::event_type(EventTopic::TierChanged) {
            Some("note")
        } else {
            None
        };
        if let Some(key) = free_text {
            fields.remove(key);
        }
        for key in PEOPLE {
            if let Some(Value::Object(person)) = fields.get_mut(key) {
                person.retain(|field, _| field == "id" || field == "externalRef");
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_down_payload_keeps_ids_and_the_events_own_figures() {
        let person = json!({ "id": "c1", "externalRef": "POS-9", "name": "Sun Li", "email": "li@example.com" });
        let change =
            json!({ "customer": person, "reason": "EVALUATION", "note": "called", "to": "vip" });
        assert_eq!(
            redact("customer.tier_changed", &change),
            json!({ "customer": { "id": "c1", "externalRef": "POS-9" }, "reason": "EVALUATION", "to": "vip" }),
            "a tier change's reason is its own figure; its note is free text"
        );
        let entry = json!({ "customer": person, "reason": "called about her order", "delta": 7 });
        assert_eq!(
            redact("points.changed", &entry),
            json!({ "customer": { "id": "c1", "externalRef": "POS-9" }, "delta": 7 })
        );
        let referral = json!({ "referrer": person, "referee": { "id": "c2", "name": "Li Lei" } });
        assert_eq!(
            redact("referral.rewarded", &referral),
            json!({ "referrer": { "id": "c1", "externalRef": "POS-9" }, "referee": { "id": "c2" } })
        );
        let erased = json!({ "customer": { "id": "c3" } });
        assert_eq!(redact("customer.erased", &erased), erased);
    }
}
