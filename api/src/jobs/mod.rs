//! Background work: evaluation runs and their schedule.

pub mod evaluation;
pub mod schedule;
