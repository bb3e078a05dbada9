//! A DYNAMIC segment's rule: the JSON language of CONTRACT.md ("Segments") parsed into a
//! typed tree, or refused with a message that names the path of the part to fix
//! (`input.rule.all[1].value: expected a number`). `store::segment_sql` compiles the tree
//! to one SQL condition; nothing here evaluates a rule against a customer.
//!
//! Operators come in positive form: `neq`, `nin` and `exists: false` are the negations
//! of `eq`, `in` and `exists`, so a customer without a value (no industry, no purchase,
//! a missing attribute) fails every comparison and matches every negation.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use super::money::decimal_to_e4;
use super::{DomainError, DomainResult};

/// How deep `all` / `any` / `not` may nest.
pub const MAX_DEPTH: usize = 16;
/// How many conditions one rule may hold.
pub const MAX_CONDITIONS: usize = 256;
/// How many values an `in` / `nin` list may hold.
pub const MAX_LIST: usize = 1000;
/// The longest text value a rule may compare with.
pub const MAX_TEXT: usize = 1000;
/// How many values (in lists and comparisons) a whole rule may hold: each is a bound
/// parameter, and SQLite takes at most 32,766 per statement.
pub const MAX_VALUES: usize = 5000;
/// How many keys an `attributes.<key>.<key>` path may have, and how long each may be.
pub const MAX_ATTRIBUTE_DEPTH: usize = 5;
const MAX_KEY_LENGTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Condition(Condition),
}

/// `field` passes `test`, or (when `negated`) does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub test: Test,
    pub negated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Tier,
    LifecycleStage,
    Kind,
    Industry,
    Region,
    Tags,
    Score,
    RecencyDays,
    PurchaseCount,
    NetSpend,
    LifetimeSpend,
    EngagementCount,
    LatestNps,
    PointsBalance,
    RfmSegment,
    RfmRecency,
    RfmFrequency,
    RfmMonetary,
    AbcClass,
    PAlive,
    CreatedAt,
    Birthday,
    /// A path of keys into the customer's `attributes` JSON.
    Attribute(Vec<String>),
}

/// The field names of the rule language, as users write them.
const FIELD_NAMES: &[(&str, Field)] = &[
    ("tier", Field::Tier),
    ("lifecycleStage", Field::LifecycleStage),
    ("kind", Field::Kind),
    ("industry", Field::Industry),
    ("region", Field::Region),
    ("tags", Field::Tags),
    ("score", Field::Score),
    ("recencyDays", Field::RecencyDays),
    ("purchaseCount", Field::PurchaseCount),
    ("netSpend", Field::NetSpend),
    ("lifetimeSpend", Field::LifetimeSpend),
    ("engagementCount", Field::EngagementCount),
    ("latestNps", Field::LatestNps),
    ("pointsBalance", Field::PointsBalance),
    ("rfmSegment", Field::RfmSegment),
    ("rfmRecency", Field::RfmRecency),
    ("rfmFrequency", Field::RfmFrequency),
    ("rfmMonetary", Field::RfmMonetary),
    ("abcClass", Field::AbcClass),
    ("pAlive", Field::PAlive),
    ("createdAt", Field::CreatedAt),
    ("birthday", Field::Birthday),
];

/// What a field's values are, which decides the operators and values it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ValueType {
    /// A tier key; ordering compares tier ranks.
    TierKey,
    /// One of a fixed set of names.
    Enum(&'static [&'static str]),
    Text,
    Tags,
    Number,
    Integer,
    Money,
    Instant,
    Date,
    /// A JSON scalar inside `attributes`.
    Json,
}

impl Field {
    fn value_type(&self) -> ValueType {
        match self {
            Field::Tier => ValueType::TierKey,
            Field::LifecycleStage => ValueType::Enum(LIFECYCLE_STAGES),
            Field::Kind => ValueType::Enum(CUSTOMER_KINDS),
            Field::RfmSegment => ValueType::Enum(RFM_SEGMENTS),
            Field::AbcClass => ValueType::Enum(ABC_CLASSES),
            Field::Industry | Field::Region => ValueType::Text,
            Field::Tags => ValueType::Tags,
            Field::Score | Field::PAlive => ValueType::Number,
            Field::RecencyDays
            | Field::PurchaseCount
            | Field::EngagementCount
            | Field::LatestNps
            | Field::PointsBalance
            | Field::RfmRecency
            | Field::RfmFrequency
            | Field::RfmMonetary => ValueType::Integer,
            Field::NetSpend | Field::LifetimeSpend => ValueType::Money,
            Field::CreatedAt => ValueType::Instant,
            Field::Birthday => ValueType::Date,
            Field::Attribute(_) => ValueType::Json,
        }
    }

    /// Whether a customer may have no value for this field (SQL NULL), which matters
    /// when a test is negated.
    pub fn may_be_missing(&self) -> bool {
        matches!(
            self,
            Field::Industry
                | Field::Region
                | Field::RecencyDays
                | Field::LatestNps
                | Field::RfmSegment
                | Field::RfmRecency
                | Field::RfmFrequency
                | Field::RfmMonetary
                | Field::PAlive
                | Field::Birthday
                | Field::Attribute(_)
        )
    }
}

// The API names of the enumerations a rule can test, spelled out because they are used in
// consts; a unit test checks them against the enums.
const LIFECYCLE_STAGES: &[&str] = &["PROSPECT", "NEW", "GROWING", "AT_RISK", "CHURNED"];
const CUSTOMER_KINDS: &[&str] = &["INDIVIDUAL", "BUSINESS"];
const RFM_SEGMENTS: &[&str] = &[
    "CHAMPIONS",
    "LOYAL",
    "POTENTIAL_LOYALIST",
    "NEW_CUSTOMERS",
    "PROMISING",
    "NEED_ATTENTION",
    "ABOUT_TO_SLEEP",
    "AT_RISK",
    "CANNOT_LOSE",
    "HIBERNATING",
    "LOST",
];
const ABC_CLASSES: &[&str] = &["A", "B", "C"];

/// A comparison in positive form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare(Comparison, Scalar),
    In(Vec<Scalar>),
    /// Text: a case-insensitive substring. Attributes: a substring of a string, or an
    /// element of an array. Tags: has every one of these tags.
    Contains(Vec<Scalar>),
    /// Has a value (for tags: at least one tag).
    Exists,
}

/// A value a rule compares with, in the unit of its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Number(f64),
    /// Money in ten-thousandths, like the `*_e4` columns.
    MoneyE4(i64),
    Instant(DateTime<Utc>),
    Date(NaiveDate),
    Bool(bool),
}

const OPERATORS: &str = "eq, neq, gt, gte, lt, lte, in, nin, contains, exists";

/// Where in the rule a problem is, for messages: `input.rule.all[1].value`.
#[derive(Clone)]
struct Path(String);

impl Path {
    fn key(&self, key: &str) -> Path {
        Path(format!("{}.{key}", self.0))
    }

    fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    fn error(&self, message: impl std::fmt::Display) -> DomainError {
        DomainError::bad_input(&self.0, message)
    }
}

impl Rule {
    /// Parses and validates a rule given at `path` (the input field, e.g. `input.rule`).
    /// `tier_exists` says whether a tier key is known; stored rules are re-read with a
    /// check that accepts every key, so that deleting a tier leaves its rules matching
    /// nobody rather than failing.
    pub fn parse(
        json: &Json,
        path: &str,
        tier_exists: &dyn Fn(&str) -> bool,
    ) -> DomainResult<Rule> {
        let mut parser = Parser {
            tier_exists,
            conditions: 0,
            values: 0,
        };
        parser.rule(json, &Path(path.to_owned()), 1)
    }
}

struct Parser<'a> {
    tier_exists: &'a dyn Fn(&str) -> bool,
    conditions: usize,
    values: usize,
}

impl Parser<'_> {
    fn rule(&mut self, json: &Json, path: &Path, depth: usize) -> DomainResult<Rule> {
        if depth > MAX_DEPTH {
            return Err(path.error(format!("rules nest at most {MAX_DEPTH} deep")));
        }
        let Some(object) = json.as_object() else {
            return Err(
                path.error("expected an object with \"all\", \"any\", \"not\" or \"field\"")
            );
        };
        for combinator in ["all", "any", "not"] {
            if let Some(inner) = object.get(combinator) {
                only_keys(object, &[combinator], path)?;
                let path = path.key(combinator);
                return match combinator {
                    "not" => Ok(Rule::Not(Box::new(self.rule(inner, &path, depth + 1)?))),
                    _ => {
                        let Some(items) = inner.as_array() else {
                            return Err(path.error("expected an array of rules"));
                        };
                        let rules = items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| self.rule(item, &path.index(i), depth + 1))
                            .collect::<DomainResult<Vec<_>>>()?;
                        Ok(if combinator == "all" {
                            Rule::All(rules)
                        } else {
                            Rule::Any(rules)
                        })
                    }
                };
            }
        }
        if object.contains_key("field") {
            self.conditions += 1;
            if self.conditions > MAX_CONDITIONS {
                return Err(path.error(format!("a rule holds at most {MAX_CONDITIONS} conditions")));
            }
            let condition = self.condition(object, path)?;
            self.values += match &condition.test {
                Test::In(values) | Test::Contains(values) => values.len(),
                Test::Compare(..) | Test::Exists => 1,
            };
            if self.values > MAX_VALUES {
                return Err(path.error(format!("a rule holds at most {MAX_VALUES} values in all")));
            }
            return Ok(Rule::Condition(condition));
        }
        Err(path.error("expected an object with \"all\", \"any\", \"not\" or \"field\""))
    }

    fn condition(&self, object: &Map<String, Json>, path: &Path) -> DomainResult<Condition> {
        only_keys(object, &["field", "op", "value"], path)?;
        let field = field(object.get("field"), &path.key("field"))?;
        let op_path = path.key("op");
        let op = match object.get("op") {
            Some(Json::String(op)) => op.as_str(),
            Some(_) => return Err(op_path.error("expected a string")),
            None => return Err(op_path.error(format!("is required: one of {OPERATORS}"))),
        };
        let value_type = field.value_type();
        let value_path = path.key("value");
        let value = object.get("value");
        let required = || {
            value
                .filter(|v| !v.is_null())
                .ok_or_else(|| value_path.error("is required"))
        };
        let refuse = |advice: &str| {
            Err(op_path.error(format!(
                "\"{op}\" does not apply to {}; {advice}",
                field_name(&field)
            )))
        };
        let (test, negated) = match op {
            "eq" | "neq" | "gt" | "gte" | "lt" | "lte" => {
                let comparison = match op {
                    "eq" | "neq" => Comparison::Eq,
                    "gt" => Comparison::Gt,
                    "gte" => Comparison::Gte,
                    "lt" => Comparison::Lt,
                    _ => Comparison::Lte,
                };
                match value_type {
                    ValueType::Tags => return refuse("use contains, in, nin or exists"),
                    ValueType::Enum(_) | ValueType::Text if comparison != Comparison::Eq => {
                        return refuse("use eq, neq, in, nin or exists");
                    }
                    _ => {}
                }
                let scalar = self.scalar(value_type, required()?, &value_path)?;
                if comparison != Comparison::Eq && matches!(scalar, Scalar::Bool(_)) {
                    return Err(value_path.error("expected a number or a string"));
                }
                (Test::Compare(comparison, scalar), op == "neq")
            }
            "in" | "nin" => {
                let items = non_empty_list(required()?, &value_path)?;
                let scalars = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.scalar(value_type, item, &value_path.index(i)))
                    .collect::<DomainResult<Vec<_>>>()?;
                (Test::In(scalars), op == "nin")
            }
            "contains" => {
                let scalars = match value_type {
                    ValueType::Text => vec![Scalar::Text(string(required()?, &value_path)?)],
                    ValueType::Tags => match required()? {
                        Json::Array(_) => non_empty_list(required()?, &value_path)?
                            .iter()
                            .enumerate()
                            .map(|(i, item)| self.scalar(value_type, item, &value_path.index(i)))
                            .collect::<DomainResult<Vec<_>>>()?,
                        other => vec![self.scalar(value_type, other, &value_path)?],
                    },
                    ValueType::Json => vec![self.scalar(value_type, required()?, &value_path)?],
                    _ => return refuse("contains is for text, tags and attributes"),
                };
                (Test::Contains(scalars), false)
            }
            "exists" => match value {
                None | Some(Json::Bool(true)) => (Test::Exists, false),
                Some(Json::Bool(false)) => (Test::Exists, true),
                Some(_) => return Err(value_path.error("expected true or false")),
            },
            other => {
                return Err(op_path.error(format!(
                    "unknown operator \"{other}\"; expected one of {OPERATORS}"
                )));
            }
        };
        Ok(Condition {
            field,
            test,
            negated,
        })
    }

    /// One value of a field's type.
    fn scalar(&self, value_type: ValueType, json: &Json, path: &Path) -> DomainResult<Scalar> {
        match value_type {
            ValueType::TierKey => {
                let key = string(json, path)?;
                if !(self.tier_exists)(&key) {
                    return Err(path.error(format!("no tier has key \"{key}\"")));
                }
                Ok(Scalar::Text(key))
            }
            ValueType::Enum(names) => {
                let name = json.as_str().filter(|n| names.contains(n));
                name.map(|n| Scalar::Text(n.to_owned()))
                    .ok_or_else(|| path.error(format!("expected one of {}", names.join(", "))))
            }
            ValueType::Text | ValueType::Tags => string(json, path).map(Scalar::Text),
            ValueType::Number => json
                .as_f64()
                .filter(|n| n.is_finite())
                .map(Scalar::Number)
                .ok_or_else(|| path.error("expected a number")),
            ValueType::Integer => integer(json)
                .map(Scalar::Integer)
                .ok_or_else(|| path.error("expected an integer")),
            ValueType::Money => money(json, path).map(Scalar::MoneyE4),
            ValueType::Instant => json
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| Scalar::Instant(t.with_timezone(&Utc)))
                .ok_or_else(|| {
                    path.error("expected a date-time (RFC 3339, e.g. 2026-03-01T10:00:00Z)")
                }),
            ValueType::Date => json
                .as_str()
                .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
                .map(Scalar::Date)
                .ok_or_else(|| path.error("expected a date (YYYY-MM-DD)")),
            ValueType::Json => match json {
                Json::String(text) => bounded_text(text, path).map(Scalar::Text),
                Json::Bool(flag) => Ok(Scalar::Bool(*flag)),
                Json::Number(n) => n
                    .as_f64()
                    .filter(|n| n.is_finite())
                    .map(Scalar::Number)
                    .ok_or_else(|| path.error("expected a finite number")),
                _ => Err(path.error("expected a string, a number or a boolean")),
            },
        }
    }
}

fn field(json: Option<&Json>, path: &Path) -> DomainResult<Field> {
    let Some(name) = json.and_then(Json::as_str) else {
        return Err(path.error("expected a field name"));
    };
    if let Some(keys) = name.strip_prefix("attributes.") {
        let keys: Vec<String> = keys.split('.').map(str::to_owned).collect();
        let valid_key = |key: &String| {
            !key.is_empty()
                && key.len() <= MAX_KEY_LENGTH
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if keys.len() > MAX_ATTRIBUTE_DEPTH || !keys.iter().all(valid_key) {
            return Err(path.error(format!(
                "\"{name}\": attribute paths are attributes.<key>, up to {MAX_ATTRIBUTE_DEPTH} \
                 keys deep, each of letters, digits, _ and - (at most {MAX_KEY_LENGTH})"
            )));
        }
        return Ok(Field::Attribute(keys));
    }
    FIELD_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, field)| field.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = FIELD_NAMES.iter().map(|(n, _)| *n).collect();
            path.error(format!(
                "unknown field \"{name}\"; expected one of {} or attributes.<key>",
                names.join(", ")
            ))
        })
}

/// The name a user writes for `field`.
fn field_name(field: &Field) -> String {
    match field {
        Field::Attribute(keys) => format!("attributes.{}", keys.join(".")),
        other => FIELD_NAMES
            .iter()
            .find(|(_, f)| f == other)
            .map_or_else(String::new, |(name, _)| (*name).to_owned()),
    }
}

fn only_keys(object: &Map<String, Json>, allowed: &[&str], path: &Path) -> DomainResult<()> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(path.error(format!(
            "unexpected key \"{extra}\" (expected {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn string(json: &Json, path: &Path) -> DomainResult<String> {
    let text = json
        .as_str()
        .ok_or_else(|| path.error("expected a string"))?;
    bounded_text(text, path)
}

/// A text value no longer than `MAX_TEXT` characters: a longer one matches no stored
/// value (names, regions, attributes are bounded when written) and SQLite refuses
/// `LIKE` patterns past 50,000 bytes when the rule runs, long after it was saved.
fn bounded_text(text: &str, path: &Path) -> DomainResult<String> {
    if text.chars().count() > MAX_TEXT {
        return Err(path.error(format!("a text value holds at most {MAX_TEXT} characters")));
    }
    Ok(text.to_owned())
}

fn non_empty_list<'j>(json: &'j Json, path: &Path) -> DomainResult<&'j Vec<Json>> {
    match json.as_array() {
        Some(items) if !items.is_empty() && items.len() <= MAX_LIST => Ok(items),
        Some(items) if items.len() > MAX_LIST => {
            Err(path.error(format!("at most {MAX_LIST} values")))
        }
        _ => Err(path.error("expected a non-empty array")),
    }
}

/// An integral JSON number (`3` or `3.0`) that fits an i64.
fn integer(json: &Json) -> Option<i64> {
    json.as_i64().or_else(|| {
        json.as_f64()
            .filter(|n| n.fract() == 0.0 && n.abs() < 9.0e15)
            .map(|n| n as i64)
    })
}

/// An amount as a JSON number or a decimal string ("129.90"), in ten-thousandths.
fn money(json: &Json, path: &Path) -> DomainResult<i64> {
    let text = match json {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.trim().to_owned(),
        _ => return Err(path.error("expected an amount (a number or a decimal string)")),
    };
    let decimal = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| path.error("expected an amount (a number or a decimal string)"))?;
    decimal_to_e4(decimal, &path.0)
}

#[cfg(test)]
mod tests {
    use entity::enums::{AbcClass, CustomerKind, LifecycleStage, RfmSegment};
    use sea_orm::Iterable;
    use serde_json::json;

    use super::*;

    fn parse(json: Json) -> DomainResult<Rule> {
        Rule::parse(&json, "rule", &|key| {
            ["potential", "regular", "vip"].contains(&key)
        })
    }

    fn refusal(json: Json) -> String {
        parse(json.clone())
            .expect_err(&format!("{json} should be refused"))
            .to_string()
    }

    #[test]
    fn enum_names_are_those_of_the_api() {
        let names = |values: Vec<&'static str>| values;
        assert_eq!(
            names(LifecycleStage::iter().map(|s| s.as_str()).collect()),
            LIFECYCLE_STAGES
        );
        assert_eq!(
            names(CustomerKind::iter().map(|s| s.as_str()).collect()),
            CUSTOMER_KINDS
        );
        assert_eq!(
            names(RfmSegment::iter().map(|s| s.as_str()).collect()),
            RFM_SEGMENTS
        );
        assert_eq!(
            names(AbcClass::iter().map(|s| s.as_str()).collect()),
            ABC_CLASSES
        );
    }

    #[test]
    fn a_nested_rule_parses_into_positive_tests() {
        let rule = parse(json!({"all": [
            {"field": "tier", "op": "gte", "value": "regular"},
            {"not": {"field": "region", "op": "neq", "value": "Shanghai"}},
            {"any": [
                {"field": "netSpend", "op": "gt", "value": "129.90"},
                {"field": "attributes.company.size", "op": "nin", "value": [1, "x", true]},
                {"field": "tags", "op": "exists", "value": false},
            ]},
        ]}))
        .unwrap();
        let Rule::All(parts) = rule else {
            panic!("expected all")
        };
        assert_eq!(
            parts[0],
            Rule::Condition(Condition {
                field: Field::Tier,
                test: Test::Compare(Comparison::Gte, Scalar::Text("regular".into())),
                negated: false,
            })
        );
        assert_eq!(
            parts[1],
            Rule::Not(Box::new(Rule::Condition(Condition {
                field: Field::Region,
                test: Test::Compare(Comparison::Eq, Scalar::Text("Shanghai".into())),
                negated: true,
            })))
        );
        let Rule::Any(alternatives) = &parts[2] else {
            panic!("expected any")
        };
        assert_eq!(
            alternatives[0],
            Rule::Condition(Condition {
                field: Field::NetSpend,
                test: Test::Compare(Comparison::Gt, Scalar::MoneyE4(1_299_000)),
                negated: false,
            })
        );
        assert_eq!(
            alternatives[1],
            Rule::Condition(Condition {
                field: Field::Attribute(vec!["company".into(), "size".into()]),
                test: Test::In(vec![
                    Scalar::Number(1.0),
                    Scalar::Text("x".into()),
                    Scalar::Bool(true)
                ]),
                negated: true,
            })
        );
        assert_eq!(
            alternatives[2],
            Rule::Condition(Condition {
                field: Field::Tags,
                test: Test::Exists,
                negated: true,
            })
        );
    }

    #[test]
    fn every_refusal_names_the_path_to_fix() {
        let cases = [
            (json!([1]), "rule: expected an object"),
            (json!({"all": {}}), "rule.all: expected an array of rules"),
            (
                json!({"all": [{"field": "score", "op": "gt", "value": 1}, {"field": "score", "op": "gt", "value": "high"}]}),
                "rule.all[1].value: expected a number",
            ),
            (
                json!({"field": "purchaseCount", "op": "gte", "value": 2.5}),
                "rule.value: expected an integer",
            ),
            (
                json!({"any": [{"not": {"field": "colour", "op": "eq", "value": 1}}]}),
                "rule.any[0].not.field: unknown field \"colour\"",
            ),
            (
                json!({"field": "score", "op": "like", "value": 1}),
                "rule.op: unknown operator \"like\"",
            ),
            (
                json!({"field": "tags", "op": "gt", "value": "a"}),
                "rule.op: \"gt\" does not apply to tags",
            ),
            (
                json!({"field": "score", "op": "contains", "value": 1}),
                "rule.op: \"contains\" does not apply to score",
            ),
            (
                json!({"field": "region", "op": "lt", "value": "A"}),
                "rule.op: \"lt\" does not apply to region",
            ),
            (
                json!({"field": "tier", "op": "eq", "value": "gold"}),
                "rule.value: no tier has key \"gold\"",
            ),
            (
                json!({"field": "lifecycleStage", "op": "in", "value": ["NEW", "OLD"]}),
                "rule.value[1]: expected one of PROSPECT, NEW",
            ),
            (
                json!({"field": "birthday", "op": "eq", "value": "1990-02-30"}),
                "rule.value: expected a date (YYYY-MM-DD)",
            ),
            (
                json!({"field": "createdAt", "op": "gt", "value": "yesterday"}),
                "rule.value: expected a date-time",
            ),
            (
                json!({"field": "netSpend", "op": "gt", "value": "lots"}),
                "rule.value: expected an amount",
            ),
            (
                json!({"field": "netSpend", "op": "gt", "value": "0.00001"}),
                "rule.value: at most 4 decimal places",
            ),
            (
                json!({"field": "region", "op": "in", "value": []}),
                "rule.value: expected a non-empty array",
            ),
            (
                json!({"field": "region", "op": "eq"}),
                "rule.value: is required",
            ),
            (
                json!({"field": "region", "op": "exists", "value": "yes"}),
                "rule.value: expected true or false",
            ),
            (
                json!({"field": "attributes.a b", "op": "eq", "value": 1}),
                "rule.field: \"attributes.a b\": attribute paths",
            ),
            (
                json!({"field": "attributes.", "op": "eq", "value": 1}),
                "rule.field: \"attributes.\": attribute paths",
            ),
            (
                json!({"field": "attributes.size", "op": "eq", "value": {"a": 1}}),
                "rule.value: expected a string, a number or a boolean",
            ),
            (
                json!({"field": "attributes.vip", "op": "gt", "value": true}),
                "rule.value: expected a number or a string",
            ),
            (
                json!({"field": "score", "op": "gt", "value": 1, "note": "x"}),
                "rule: unexpected key \"note\"",
            ),
            (json!({"all": [], "any": []}), "rule: unexpected key"),
        ];
        for (rule, expected) in cases {
            let message = refusal(rule.clone());
            assert!(
                message.starts_with(expected),
                "{rule}: got {message:?}, expected it to start with {expected:?}"
            );
        }
    }

    #[test]
    fn rules_are_bounded() {
        let mut deep = json!({"field": "score", "op": "gt", "value": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!({ "not": deep });
        }
        assert!(refusal(deep).contains("nest at most"));
        let many: Vec<Json> = (0..=MAX_CONDITIONS)
            .map(|_| json!({"field": "score", "op": "gt", "value": 1}))
            .collect();
        assert!(refusal(json!({ "any": many })).contains("at most 256 conditions"));
        let long: Vec<i64> = (0..=MAX_LIST as i64).collect();
        assert!(
            refusal(json!({"field": "pointsBalance", "op": "in", "value": long}))
                .contains("at most 1000 values")
        );
    }

    #[test]
    fn exists_defaults_to_true_and_tags_contain_lists() {
        assert_eq!(
            parse(json!({"field": "birthday", "op": "exists"})).unwrap(),
            Rule::Condition(Condition {
                field: Field::Birthday,
                test: Test::Exists,
                negated: false
            })
        );
        assert_eq!(
            parse(json!({"field": "tags", "op": "contains", "value": ["a", "b"]})).unwrap(),
            Rule::Condition(Condition {
                field: Field::Tags,
                test: Test::Contains(vec![Scalar::Text("a".into()), Scalar::Text("b".into())]),
                negated: false
            })
        );
    }

    #[test]
    fn stored_rules_reread_without_the_tier_check() {
        let rule = json!({"field": "tier", "op": "eq", "value": "retired"});
        assert!(Rule::parse(&rule, "rule", &|_| true).is_ok());
    }
}
