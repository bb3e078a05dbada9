//! Lifecycle stages (CONTRACT.md, "Lifecycle"): the first rule that applies wins.

use entity::enums::LifecycleStage;

/// What the stage depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifecycleFacts {
    /// PURCHASE interactions ever.
    pub purchases: i64,
    /// Whole days since the last purchase ever.
    pub days_since_last_purchase: Option<i64>,
    /// BG/NBD probability of being alive, where a churn model exists.
    pub p_alive: Option<f64>,
    pub at_risk_days: i32,
    pub churn_days: i32,
}

pub fn stage(facts: &LifecycleFacts) -> LifecycleStage {
    let Some(days) = facts
        .days_since_last_purchase
        .filter(|_| facts.purchases > 0)
    else {
        return LifecycleStage::Prospect;
    };
    if days > facts.churn_days.into() {
        LifecycleStage::Churned
    } else if days > facts.at_risk_days.into() || facts.p_alive.is_some_and(|p| p < 0.5) {
        LifecycleStage::AtRisk
    } else if facts.purchases == 1 {
        LifecycleStage::New
    } else {
        LifecycleStage::Growing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(purchases: i64, days: Option<i64>) -> LifecycleFacts {
        LifecycleFacts {
            purchases,
            days_since_last_purchase: days,
            p_alive: None,
            at_risk_days: 180,
            churn_days: 365,
        }
    }

    #[test]
    fn every_stage_and_its_boundaries() {
        use LifecycleStage::*;
        assert_eq!(stage(&facts(0, None)), Prospect);
        assert_eq!(stage(&facts(1, Some(0))), New);
        assert_eq!(stage(&facts(2, Some(180))), Growing);
        assert_eq!(stage(&facts(2, Some(181))), AtRisk);
        assert_eq!(stage(&facts(1, Some(365))), AtRisk);
        assert_eq!(stage(&facts(5, Some(366))), Churned);
        let unlikely_alive = LifecycleFacts {
            p_alive: Some(0.49),
            ..facts(3, Some(10))
        };
        assert_eq!(stage(&unlikely_alive), AtRisk);
        let likely_alive = LifecycleFacts {
            p_alive: Some(0.5),
            ..facts(3, Some(10))
        };
        assert_eq!(stage(&likely_alive), Growing);
    }
}
