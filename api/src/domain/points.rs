//! Points rules that need no database: what a valid adjustment and a valid reward are.

use super::DomainResult;
use super::customer::{optional_text, text};
use super::error::ensure;

/// The largest number of points one entry or reward may carry.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// A hand adjustment: a non-zero delta and a reason someone can read later.
pub fn adjustment(delta: i64, reason: &str) -> DomainResult<(i64, String)> {
    ensure(delta != 0, "input.delta", || "must not be 0".into())?;
    ensure(delta.abs() <= MAX_POINTS, "input.delta", || {
        format!("must be between -{MAX_POINTS} and {MAX_POINTS}")
    })?;
    Ok((delta, text(reason, "input.reason", 500)?))
}

/// A reward as given, before its `minTierKey` is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardDraft {
    pub name: String,
    pub description: Option<String>,
    pub cost_points: i64,
    pub stock: Option<i32>,
    pub active: bool,
}

impl RewardDraft {
    pub fn new(
        name: &str,
        description: Option<&str>,
        cost_points: i64,
        stock: Option<i32>,
        active: bool,
    ) -> DomainResult<Self> {
        ensure(
            (1..=MAX_POINTS).contains(&cost_points),
            "input.costPoints",
            || format!("must be between 1 and {MAX_POINTS}"),
        )?;
        if let Some(stock) = stock {
            ensure(stock >= 0, "input.stock", || {
                "must be 0 or more (leave it out for unlimited)".into()
            })?;
        }
        Ok(Self {
            name: text(name, "input.name", 200)?,
            description: optional_text(description, "input.description", 2000)?,
            cost_points,
            stock,
            active,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_need_a_delta_and_a_reason() {
        assert!(adjustment(0, "x").is_err());
        assert!(adjustment(5, " ").is_err());
        assert!(adjustment(MAX_POINTS + 1, "x").is_err());
        assert_eq!(
            adjustment(-5, " goodwill ").unwrap(),
            (-5, "goodwill".into())
        );
    }

    #[test]
    fn rewards_cost_something_and_stock_is_not_negative() {
        assert!(RewardDraft::new("Mug", None, 0, None, true).is_err());
        assert!(RewardDraft::new("Mug", None, 10, Some(-1), true).is_err());
        assert!(RewardDraft::new("", None, 10, None, true).is_err());
        let mug = RewardDraft::new("Mug", Some(""), 10, Some(0), false).unwrap();
        assert_eq!((mug.description, mug.stock), (None, Some(0)));
    }
}
