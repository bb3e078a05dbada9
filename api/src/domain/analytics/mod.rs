//! The standard value models: RFM scores and segments, ABC classes, and the churn and
//! spend models (BG/NBD, Gamma-Gamma) behind pAlive and CLV.

pub mod abc;
pub mod bgnbd;
pub mod churn;
pub mod gamma_gamma;
pub mod rfm;
