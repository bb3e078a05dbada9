//! Live events: what committed (ledger entries, tier changes) delivered to this server's
//! subscribers, whichever replica made the change.
//!
//! Writers put an event row in the outbox in the transaction of the change
//! (`store::events`). Each server runs one relay (`relay`) that reads the outbox in
//! commit order, woken by Postgres `NOTIFY` (or, on SQLite, by the commit itself), and
//! publishes what it read on an in-process bus (`bus`) that subscriptions listen to;
//! each distinct subscription is resolved once per event and shared by every socket that
//! holds it (`feeds`).

pub mod bus;
pub mod feeds;
pub mod relay;

pub use bus::{Event, EventBus};
