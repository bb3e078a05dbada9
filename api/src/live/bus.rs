//! The in-process bus between this server's relay and its subscriptions: a bounded
//! broadcast channel of batches (what the relay read in one go, shared by every
//! subscriber). Publishing never waits for a subscriber; a subscriber that falls more
//! than the channel's capacity of batches behind loses its place (and is told so), so a
//! slow client delays nobody.

use std::collections::HashMap;
use std::sync::Arc;

use entity::{customer, points_entry, tier, tier_change};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events the relay read in one go, in commit order.
pub type Batch = Arc<Vec<Arc<LiveEvent>>>;

/// A committed change, with what a subscriber's answer needs, read once per server
/// rather than once per subscriber.
#[derive(Debug)]
pub enum LiveEvent {
    TierChanged {
        change: tier_change::Model,
        customer: customer::Model,
        tiers: Arc<HashMap<Uuid, tier::Model>>,
    },
    PointsChanged {
        entry: points_entry::Model,
        customer: customer::Model,
        tiers: Arc<HashMap<Uuid, tier::Model>>,
    },
    CampaignFired {
        fired: Fired,
        customer: customer::Model,
        tiers: Arc<HashMap<Uuid, tier::Model>>,
    },
}

/// A campaign's `NOTIFY`, as its `automation.fired` event carries it.
#[derive(Debug, Clone)]
pub struct Fired {
    pub campaign_id: Uuid,
    pub customer_id: Uuid,
    pub message: Option<String>,
    pub cause: String,
    pub points: i64,
    pub fired_at: chrono::DateTime<chrono::Utc>,
}

impl Fired {
    /// The notice an `AUTOMATION_FIRED` outbox event carries; `None` for a shape this
    /// version does not know.
    pub fn of_event(
        customer_id: Uuid,
        payload: &serde_json::Value,
        written_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<Self> {
        let campaign_id = payload.get("campaign")?.get("id")?.as_str()?.parse().ok()?;
        Some(Self {
            campaign_id,
            customer_id,
            message: payload
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned),
            cause: payload.get("cause")?.as_str()?.to_owned(),
            points: payload.get("points").and_then(|p| p.as_i64()).unwrap_or(0),
            fired_at: payload
                .get("firedAt")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or(written_at),
        })
    }
}

impl LiveEvent {
    pub fn customer(&self) -> &customer::Model {
        match self {
            LiveEvent::TierChanged { customer, .. }
            | LiveEvent::PointsChanged { customer, .. }
            | LiveEvent::CampaignFired { customer, .. } => customer,
        }
    }

    pub fn tiers(&self) -> &HashMap<Uuid, tier::Model> {
        match self {
            LiveEvent::TierChanged { tiers, .. }
            | LiveEvent::PointsChanged { tiers, .. }
            | LiveEvent::CampaignFired { tiers, .. } => tiers,
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Batch>,
    capacity: usize,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        Self { sender, capacity }
    }

    pub fn publish(&self, batch: Vec<LiveEvent>) {
        // No subscriber is not an error: the events are simply not wanted here.
        let _ = self
            .sender
            .send(Arc::new(batch.into_iter().map(Arc::new).collect()));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.sender.subscribe()
    }

    /// How many batches a subscriber may fall behind.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A place on the bus taken when a subscription was accepted, for the operation that
/// serves it to start from (request data): events that commit while the operation is
/// still being set up on another task are not missed.
pub struct TakenPlace(std::sync::Mutex<Option<broadcast::Receiver<Batch>>>);

impl TakenPlace {
    pub fn on(bus: &EventBus) -> Self {
        Self(std::sync::Mutex::new(Some(bus.subscribe())))
    }

    /// The place, once: a subscription operation has exactly one root field.
    pub fn take(&self) -> Option<broadcast::Receiver<Batch>> {
        self.0.lock().ok()?.take()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_EVENT_BUFFER)
    }
}
