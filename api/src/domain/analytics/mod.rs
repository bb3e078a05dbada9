//! The standard value models: RFM scores and segments, ABC classes.

pub mod abc;
pub mod bgnbd;
pub mod gamma_gamma;
pub mod rfm;
