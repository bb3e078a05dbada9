//! The live relay: the outbox consumer that publishes committed changes on this
//! server's bus, for its subscribers. One per server; every replica runs its own and sees
//! every event, whichever replica wrote it. It starts at the outbox's head (a subscriber
//! is told about what commits after it subscribed) and keeps no position across
//! restarts: a server that restarts has no subscribers to catch up.

use std::collections::HashMap;
use std::sync::Arc;

use entity::enums::EventTopic;
use sea_orm::DatabaseConnection;

use super::bus::{EventBus, LiveEvent};
use crate::domain::DomainResult;
use crate::outbox::Consumer;
use crate::store::outbox::{self, Position, Stored};
use crate::store::{customers, tiers};

pub struct LiveRelay {
    bus: EventBus,
}

impl LiveRelay {
    pub fn new(bus: EventBus) -> Self {
        Self { bus }
    }
}

impl Consumer for LiveRelay {
    fn name(&self) -> &'static str {
        "live relay"
    }

    async fn start(&mut self, outbox: &DatabaseConnection) -> DomainResult<Position> {
        outbox::head(outbox).await
    }

    async fn consume(&mut self, db: &DatabaseConnection, batch: &[Stored]) -> DomainResult<()> {
        let events = load(db, batch).await?;
        self.bus.publish(events);
        metrics::counter!("tierwise_events_relayed_total").increment(batch.len() as u64);
        Ok(())
    }
}

/// The batch's changes with their customers and the tiers, in three queries. Only
/// events about a customer reach subscribers (every subscription follows customers).
async fn load(db: &DatabaseConnection, batch: &[Stored]) -> DomainResult<Vec<LiveEvent>> {
    let (changes, entries) = outbox::subjects(db, batch).await?;
    let customer_ids: Vec<_> = batch.iter().filter_map(|e| e.customer_id).collect();
    let customers: HashMap<_, _> = customers::find_many(db, &customer_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let tiers = Arc::new(
        tiers::all(db)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect::<HashMap<_, _>>(),
    );
    Ok(batch
        .iter()
        .filter_map(|stored| {
            let topic = match &stored.topic {
                Ok(topic) => *topic,
                Err(unknown) => {
                    tracing::warn!(
                        topic = %unknown,
                        position = ?stored.position,
                        "live relay skipped an event of a topic it does not know"
                    );
                    return None;
                }
            };
            let customer = customers.get(&stored.customer_id?)?.clone();
            let tiers = tiers.clone();
            match topic {
                EventTopic::TierChanged => {
                    changes
                        .get(&stored.subject_id)
                        .map(|change| LiveEvent::TierChanged {
                            change: change.clone(),
                            customer,
                            tiers,
                        })
                }
                EventTopic::PointsChanged => {
                    entries
                        .get(&stored.subject_id)
                        .map(|entry| LiveEvent::PointsChanged {
                            entry: entry.clone(),
                            customer,
                            tiers,
                        })
                }
                EventTopic::AutomationFired => stored
                    .payload
                    .as_ref()
                    .and_then(|payload| {
                        super::bus::Fired::of_event(customer.id, payload, stored.created_at)
                    })
                    .map(|fired| LiveEvent::CampaignFired {
                        fired,
                        customer,
                        tiers,
                    }),
                // No subscription shows these: partners receive them as webhooks.
                EventTopic::ReferralRewarded
                | EventTopic::CustomerErased
                | EventTopic::LifecycleChanged
                | EventTopic::PointsExpiring
                | EventTopic::CustomerBirthday
                | EventTopic::CustomerMerged => None,
            }
        })
        .collect())
}
