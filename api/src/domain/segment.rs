//! What a valid segment is: a name, and either a rule (DYNAMIC) or a list of members
//! (STATIC), never both.

use entity::enums::SegmentKind;
use serde_json::Value as Json;

use super::customer::{optional_text, text};
use super::segment_rule::Rule;
use super::{DomainError, DomainResult};

/// The most customers one `addSegmentMembers` / `removeSegmentMembers` call may name.
pub const MAX_MEMBERS_PER_CALL: usize = 1000;

#[derive(Debug, Clone)]
pub struct SegmentDraft {
    pub name: String,
    pub description: Option<String>,
    pub kind: SegmentKind,
    /// The rule as the user wrote it (DYNAMIC only); stored as given, compiled when read.
    pub rule: Option<Json>,
}

impl SegmentDraft {
    /// Validates `input`; `tier_exists` checks the tier keys a rule names.
    pub fn new(
        name: &str,
        description: Option<&str>,
        kind: SegmentKind,
        rule: Option<Json>,
        tier_exists: &dyn Fn(&str) -> bool,
    ) -> DomainResult<Self> {
        let name = text(name, "input.name", 200)?;
        let description = optional_text(description, "input.description", 2000)?;
        let rule = rule.filter(|r| !r.is_null());
        match (kind, &rule) {
            (SegmentKind::Dynamic, None) => {
                return Err(DomainError::bad_input(
                    "input.rule",
                    "a DYNAMIC segment needs a rule",
                ));
            }
            (SegmentKind::Dynamic, Some(rule)) => {
                Rule::parse(rule, "input.rule", tier_exists)?;
            }
            (SegmentKind::Static, Some(_)) => {
                return Err(DomainError::bad_input(
                    "input.rule",
                    "a STATIC segment has no rule; add its members with addSegmentMembers",
                ));
            }
            (SegmentKind::Static, None) => {}
        }
        Ok(Self {
            name,
            description,
            kind,
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft(kind: SegmentKind, rule: Option<Json>) -> DomainResult<SegmentDraft> {
        SegmentDraft::new(" VIPs ", Some(""), kind, rule, &|_| true)
    }

    #[test]
    fn a_dynamic_segment_needs_a_valid_rule_and_a_static_one_none() {
        let rule = json!({"field": "score", "op": "gte", "value": 70});
        let ok = draft(SegmentKind::Dynamic, Some(rule.clone())).unwrap();
        assert_eq!((ok.name.as_str(), ok.description), ("VIPs", None));
        assert!(draft(SegmentKind::Static, None).is_ok());
        let refused = |kind, rule| draft(kind, rule).unwrap_err().to_string();
        assert!(refused(SegmentKind::Dynamic, None).starts_with("input.rule: a DYNAMIC"));
        assert!(refused(SegmentKind::Dynamic, Some(Json::Null)).starts_with("input.rule:"));
        assert!(refused(SegmentKind::Static, Some(rule)).starts_with("input.rule: a STATIC"));
        assert!(
            refused(
                SegmentKind::Dynamic,
                Some(json!({"field": "score", "op": "gte"}))
            )
            .starts_with("input.rule.value: is required")
        );
    }
}
