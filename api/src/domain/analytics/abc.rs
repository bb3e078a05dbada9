//! ABC classes (CONTRACT.md, "ABC"): with customers ordered by lifetime spend, highest
//! first, a customer is A while the spend ranked above it is below 80% of all spend, B
//! below 95%, else C; a customer without spend is C.

use entity::enums::AbcClass;

/// `spend_above`: the lifetime spend of every customer ranked above this one; `total`:
/// all customers' spend. Integer comparisons, exact at the boundaries.
pub fn class(own_spend: i64, spend_above: i64, total: i64) -> AbcClass {
    if own_spend <= 0 || total <= 0 {
        return AbcClass::C;
    }
    let above = i128::from(spend_above) * 100;
    let total = i128::from(total);
    if above < total * 80 {
        AbcClass::A
    } else if above < total * 95 {
        AbcClass::B
    } else {
        AbcClass::C
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_exact() {
        assert_eq!(class(10, 0, 100), AbcClass::A);
        assert_eq!(class(10, 79, 100), AbcClass::A);
        assert_eq!(class(10, 80, 100), AbcClass::B);
        assert_eq!(class(10, 94, 100), AbcClass::B);
        assert_eq!(class(5, 95, 100), AbcClass::C);
        assert_eq!(class(0, 0, 100), AbcClass::C);
        assert_eq!(class(-3, 0, 100), AbcClass::C);
    }
}
