//! Live events: committed changes (ledger entries, tier changes) delivered to this
//! server's GraphQL subscribers, whichever replica made the change.
//!
//! The live relay (`relay`) is one consumer of the outbox (`crate::outbox`): it publishes
//! what it read on an in-process bus (`bus`) that subscriptions listen to; each distinct
//! subscription is resolved once per event and shared by every socket that holds it
//! (`feeds`).

pub mod bus;
pub mod feeds;
pub mod relay;

pub use bus::{EventBus, LiveEvent};
