//! Exact money and rates, stored as integer ten-thousandths (`*_e4` columns).

use rust_decimal::Decimal;

use super::{DomainError, DomainResult};

/// Ten-thousandths per unit.
pub const SCALE: u32 = 4;
const UNIT: i64 = 10_000;

/// A decimal amount as integer ten-thousandths; refuses amounts with more than four
/// decimal places or beyond ±900 trillion rather than rounding them.
pub fn decimal_to_e4(value: Decimal, field: &str) -> DomainResult<i64> {
    let normalized = value.normalize();
    if normalized.scale() > SCALE {
        return Err(DomainError::bad_input(field, "at most 4 decimal places"));
    }
    // `*` panics past Decimal's range (79228162514264337593543950335 × 10,000).
    normalized
        .checked_mul(Decimal::from(UNIT))
        .and_then(|scaled| i64::try_from(scaled.trunc()).ok())
        .ok_or_else(|| DomainError::bad_input(field, "amount is too large"))
}

/// An amount for display: at least two decimal places ("129.90"), more only when present.
pub fn e4_to_decimal(value: i64) -> Decimal {
    let mut decimal = Decimal::new(value, SCALE).normalize();
    if decimal.scale() < 2 {
        decimal.rescale(2);
    }
    decimal
}

/// A rate given as a float (a multiplier, points per currency unit) as ten-thousandths.
pub fn rate_to_e4(value: f64, field: &str) -> DomainResult<i64> {
    if !value.is_finite() || value < 0.0 {
        return Err(DomainError::bad_input(field, "must be a finite number ≥ 0"));
    }
    let scaled = value * UNIT as f64;
    if scaled > 1e15 {
        return Err(DomainError::bad_input(field, "is too large"));
    }
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(DomainError::bad_input(field, "at most 4 decimal places"));
    }
    Ok(rounded as i64)
}

pub fn e4_to_rate(value: i64) -> f64 {
    value as f64 / UNIT as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_round_trip_exactly() {
        let d = Decimal::from_str("129.90").unwrap();
        assert_eq!(decimal_to_e4(d, "amount").unwrap(), 1_299_000);
        assert_eq!(e4_to_decimal(1_299_000).to_string(), "129.90");
        assert_eq!(e4_to_decimal(12_345).to_string(), "1.2345");
        assert_eq!(e4_to_decimal(0).to_string(), "0.00");
        assert_eq!(e4_to_decimal(-50_000).to_string(), "-5.00");
    }

    #[test]
    fn amounts_with_too_many_places_are_refused() {
        let d = Decimal::from_str("1.00001").unwrap();
        assert!(decimal_to_e4(d, "amount").is_err());
        let trailing_zeros = Decimal::from_str("1.500000").unwrap();
        assert_eq!(decimal_to_e4(trailing_zeros, "amount").unwrap(), 15_000);
    }

    #[test]
    fn amounts_past_any_range_are_refused_not_panicked_on() {
        for text in [
            "79228162514264337593543950335",
            "1e28",
            "922337203685477.5808",
        ] {
            let d = Decimal::from_scientific(text)
                .or_else(|_| Decimal::from_str(text))
                .unwrap();
            assert!(decimal_to_e4(d, "amount").is_err(), "{text}");
        }
    }

    #[test]
    fn rates_convert_exactly() {
        assert_eq!(rate_to_e4(1.1, "r").unwrap(), 11_000);
        assert_eq!(rate_to_e4(2.0, "r").unwrap(), 20_000);
        assert!(rate_to_e4(0.00001, "r").is_err());
        assert!(rate_to_e4(-1.0, "r").is_err());
        assert!(rate_to_e4(f64::NAN, "r").is_err());
        assert_eq!(e4_to_rate(15_000), 1.5);
    }
}
