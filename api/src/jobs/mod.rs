//! Background work: evaluation runs (tiers, and the points upkeep they do) and their
//! schedule.

pub mod evaluation;
pub mod points_upkeep;
pub mod schedule;
