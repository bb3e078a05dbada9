//! Background work: the supervisor that owns a server's background tasks, evaluation
//! runs (tiers, and the points upkeep they do) and their schedule. A new periodic job
//! goes here and is started by `Application` through the supervisor.

pub mod automations;
pub mod evaluation;
pub mod outbox_pruning;
pub mod pending_activation;
pub mod points_upkeep;
pub mod program_follower;
pub mod reminders;
pub mod schedule;
pub mod supervisor;
pub mod webhook_pruning;
