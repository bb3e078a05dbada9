//! sea-orm entities: one module per table, plain data and nothing else.
//!
//! Money columns end in `_e4`: integer ten-thousandths of the base currency. Enumerations
//! are stored as their upper-case names, so the database reads like the API.

pub mod campaign;
pub mod campaign_firing;
pub mod campaign_segment_member;
pub mod customer;
pub mod customer_points_rank;
pub mod customer_tag;
pub mod enums;
pub mod evaluation_run;
pub mod event_outbox;
pub mod idempotency_key;
pub mod interaction;
pub mod pending_points;
pub mod points_entry;
pub mod points_transfer;
pub mod program_settings;
pub mod redemption;
pub mod referral;
pub mod reward;
pub mod scoring_model;
pub mod segment;
pub mod segment_member;
pub mod tier;
pub mod tier_change;
pub mod webhook_delivery;
pub mod webhook_endpoint;
