//! A segment rule compiled to one SQL condition on `customer`, so that membership is
//! decided by the database (with its indexes) and always reflects the current data.
//!
//! Negation is pushed down to the conditions (De Morgan), and a negated condition on a
//! value the customer may lack is `NOT COALESCE(test, FALSE)`: a missing value fails the
//! test and so matches its negation, whatever SQL's three-valued logic would say.
//! Positive conditions stay plain comparisons, so that their indexes serve.

use chrono::{DateTime, Duration, Utc};
use entity::{customer, customer_points_rank, customer_tag, tier};
use sea_orm::DbBackend;
use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Func, LikeExpr, Query};
use serde_json::json;

use super::customers::escape_like;
use crate::domain::analytics::churn::ChurnModel;
use crate::domain::segment_rule::{Comparison, Condition, Field, Rule, Scalar, Test};

/// Compiles `rule` for `backend`; `now` is the instant `recencyDays` counts to,
/// `tiers` the program's tiers (tier keys become the tiers' ids, so that the planner
/// knows how many customers a tier holds and can use the tier index), and `churn` the
/// churn model `pAlive` comes from (without one, every customer lacks a pAlive).
pub fn compile(
    rule: &Rule,
    backend: DbBackend,
    now: DateTime<Utc>,
    tiers: &[tier::Model],
    churn: Option<&ChurnModel>,
) -> Expr {
    Compiler {
        backend,
        now,
        tiers,
        churn,
    }
    .rule(rule, false)
}

/// A customer's pAlive under `model`, as SQL: NULL without purchases, 1 without repeat
/// purchases, else the BG/NBD closed form computed in logs as `ChurnModel::p_alive`
/// does (`ln` and `exp` exist on SQLite through `sqlite_math`); NULL without a model.
pub fn p_alive(model: Option<&ChurnModel>) -> Expr {
    let Some(model) = model else {
        return Expr::cust("CAST(NULL AS DOUBLE PRECISION)");
    };
    let num = |value: f64| format!("{value:e}");
    let x = "customer.repeat_purchase_days";
    let (first, last) = ("customer.first_purchase_day", "customer.last_purchase_day");
    let end = format!(
        "(CASE WHEN {last} > {as_of} THEN {last} ELSE {as_of} END)",
        as_of = model.as_of_day()
    );
    // ln of the odds of having dropped out: ln a − ln(b+x−1) + (r+x)(ln(α+T) − ln(α+t_x)).
    let ln_odds = format!(
        "({ln_a} - ln({b} + {x} - 1) + ({r} + {x}) * (ln({alpha} + ({end} - {first}) / 7.0) \
         - ln({alpha} + ({last} - {first}) / 7.0)))",
        ln_a = num(model.purchases.a.ln()),
        b = num(model.purchases.b),
        r = num(model.purchases.r),
        alpha = num(model.purchases.alpha),
    );
    Expr::cust(format!(
        "(CASE WHEN {first} IS NULL THEN NULL WHEN {x} = 0 THEN 1.0 \
         WHEN {ln_odds} > 700 THEN 0.0 ELSE 1.0 / (1.0 + exp({ln_odds})) END)"
    ))
}

pub fn always() -> Expr {
    Expr::cust("1 = 1")
}

pub fn never() -> Expr {
    Expr::cust("1 = 0")
}

struct Compiler<'t> {
    backend: DbBackend,
    now: DateTime<Utc>,
    tiers: &'t [tier::Model],
    churn: Option<&'t ChurnModel>,
}

/// The largest day count `recencyDays` bounds are computed for; beyond it every
/// purchase is on the same side of the bound anyway.
const MAX_DAYS: i64 = 100_000;

fn column(column: customer::Column) -> Expr {
    Expr::col((customer::Entity, column))
}

impl Compiler<'_> {
    fn rule(&self, rule: &Rule, negated: bool) -> Expr {
        match rule {
            Rule::Not(inner) => self.rule(inner, !negated),
            // not(all) = any(not …) and not(any) = all(not …).
            Rule::All(rules) if !negated => fold(rules.iter().map(|r| self.rule(r, false)), true),
            Rule::All(rules) => fold(rules.iter().map(|r| self.rule(r, true)), false),
            Rule::Any(rules) if !negated => fold(rules.iter().map(|r| self.rule(r, false)), false),
            Rule::Any(rules) => fold(rules.iter().map(|r| self.rule(r, true)), true),
            Rule::Condition(condition) => {
                let test = self.condition(condition);
                match (
                    negated != condition.negated,
                    condition.field.may_be_missing(),
                ) {
                    (false, _) => test,
                    (true, false) => test.not(),
                    (true, true) => Expr::expr(Func::coalesce([test, never()])).not(),
                }
            }
        }
    }

    /// The positive test of one condition (NULL where the customer has no value).
    fn condition(&self, condition: &Condition) -> Expr {
        let test = &condition.test;
        match &condition.field {
            Field::Tier => self.tier(test),
            Field::Tags => tags(test),
            Field::RecencyDays => self.recency(test),
            Field::Attribute(keys) => Attribute::new(self.backend, keys).test(test),
            Field::PointsBalance if matches!(test, Test::Compare(..) | Test::In(_)) => {
                points_balance(test)
            }
            field => {
                let (col, nullable) = plain_column(field);
                let col = match field {
                    Field::PAlive => p_alive(self.churn),
                    _ => column(col),
                };
                match test {
                    Test::Compare(comparison, scalar) => compare(col, *comparison, value(scalar)),
                    Test::In(scalars) => col.is_in(scalars.iter().map(value)),
                    Test::Contains(scalars) => fold(
                        scalars
                            .iter()
                            .map(|s| contains_text(col.clone(), text_of(s))),
                        true,
                    ),
                    Test::Exists if nullable => col.is_not_null(),
                    Test::Exists => always(),
                }
            }
        }
    }

    /// `recencyDays` (whole days from the last purchase to now) as bounds on
    /// `last_purchase_at`: `recencyDays >= n` is `last_purchase_at <= now - n days`, which
    /// the column's index serves.
    fn recency(&self, test: &Test) -> Expr {
        let last = || column(customer::Column::LastPurchaseAt);
        let bound = |days: i64| self.now - Duration::days(days.clamp(0, MAX_DAYS));
        let at_least = |n: i64| last().lte(bound(n));
        let below = |n: i64| last().gt(bound(n));
        let days = |scalar: &Scalar| match scalar {
            Scalar::Integer(n) => *n,
            _ => 0,
        };
        let equal = |n: i64| at_least(n).and(below(n.saturating_add(1)));
        match test {
            Test::Compare(Comparison::Gte, n) => at_least(days(n)),
            Test::Compare(Comparison::Gt, n) => at_least(days(n).saturating_add(1)),
            Test::Compare(Comparison::Lt, n) => below(days(n)),
            Test::Compare(Comparison::Lte, n) => below(days(n).saturating_add(1)),
            Test::Compare(Comparison::Eq, n) => equal(days(n)),
            Test::In(values) => fold(values.iter().map(|n| equal(days(n))), false),
            Test::Exists | Test::Contains(_) => last().is_not_null(),
        }
    }
}

/// The column of a field stored as one column of `customer`, and whether it may be NULL.
fn plain_column(field: &Field) -> (customer::Column, bool) {
    use customer::Column as C;
    match field {
        Field::LifecycleStage => (C::LifecycleStage, false),
        Field::Kind => (C::Kind, false),
        Field::Industry => (C::Industry, true),
        Field::Region => (C::Region, true),
        Field::Score => (C::Score, false),
        Field::PurchaseCount => (C::PurchaseCount, false),
        Field::NetSpend => (C::NetSpendE4, false),
        Field::LifetimeSpend => (C::LifetimeSpendE4, false),
        Field::EngagementCount => (C::EngagementCount, false),
        Field::LatestNps => (C::LatestNps, true),
        Field::PointsBalance => (C::PointsBalance, false),
        Field::RfmSegment => (C::RfmSegment, true),
        Field::RfmRecency => (C::RfmRecency, true),
        Field::RfmFrequency => (C::RfmFrequency, true),
        Field::RfmMonetary => (C::RfmMonetary, true),
        Field::AbcClass => (C::AbcClass, false),
        Field::CreatedAt => (C::CreatedAt, false),
        Field::Birthday => (C::Birthday, true),
        // Compiled by their own functions.
        Field::Tier | Field::Tags | Field::RecencyDays | Field::Attribute(_) => (C::Id, false),
        // Computed from the churn model (`p_alive`); may be missing.
        Field::PAlive => (C::Id, true),
    }
}

/// `all` (AND) or `any` (OR) of `parts`; the empty `all` holds, the empty `any` does not.
/// Joined as a balanced tree: a chain of 1,000 ORs is an expression 1,000 deep, which
/// SQLite refuses ("Expression tree is too large"); balanced it is 10 deep.
fn fold(parts: impl Iterator<Item = Expr>, all: bool) -> Expr {
    let join = |left: Expr, right: Expr| if all { left.and(right) } else { left.or(right) };
    let mut level: Vec<Expr> = parts.collect();
    if level.is_empty() {
        return if all { always() } else { never() };
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut pairs = level.into_iter();
        while let Some(left) = pairs.next() {
            next.push(match pairs.next() {
                Some(right) => join(left, right),
                None => left,
            });
        }
        level = next;
    }
    level.pop().unwrap_or_else(never)
}

fn compare(left: Expr, comparison: Comparison, right: sea_orm::Value) -> Expr {
    match comparison {
        Comparison::Eq => left.eq(right),
        Comparison::Gt => left.gt(right),
        Comparison::Gte => left.gte(right),
        Comparison::Lt => left.lt(right),
        Comparison::Lte => left.lte(right),
    }
}

fn value(scalar: &Scalar) -> sea_orm::Value {
    match scalar {
        Scalar::Text(text) => text.clone().into(),
        Scalar::Integer(n) | Scalar::MoneyE4(n) => (*n).into(),
        Scalar::Number(n) => (*n).into(),
        Scalar::Instant(at) => (*at).into(),
        Scalar::Date(date) => (*date).into(),
        Scalar::Bool(flag) => if *flag { "true" } else { "false" }.into(),
    }
}

fn text_of(scalar: &Scalar) -> String {
    match scalar {
        Scalar::Text(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A case-insensitive substring test.
fn contains_text(text: Expr, needle: String) -> Expr {
    let pattern = format!("%{}%", escape_like(&needle.to_lowercase()));
    Expr::expr(Func::lower(text)).like(LikeExpr::new(pattern).escape('!'))
}

impl Compiler<'_> {
    /// Tier keys name tiers; ordering compares their ranks (`gte "regular"`: regular or
    /// higher). Written as the matching tiers' ids.
    fn tier(&self, test: &Test) -> Expr {
        let key = |scalar: &Scalar| text_of(scalar);
        let rank_of = |scalar: &Scalar| {
            self.tiers
                .iter()
                .find(|t| t.key == key(scalar))
                .map(|t| t.rank)
        };
        let holding = |matches: &dyn Fn(&tier::Model) -> bool| {
            let ids: Vec<uuid::Uuid> = self
                .tiers
                .iter()
                .filter(|t| matches(t))
                .map(|t| t.id)
                .collect();
            if ids.is_empty() {
                never()
            } else {
                column(customer::Column::TierId).is_in(ids)
            }
        };
        let by_rank = |scalar: &Scalar, keep: fn(i32, i32) -> bool| match rank_of(scalar) {
            Some(rank) => holding(&|t| keep(t.rank, rank)),
            None => never(),
        };
        match test {
            Test::Compare(Comparison::Eq, k) => holding(&|t| t.key == key(k)),
            Test::Compare(Comparison::Gt, k) => by_rank(k, |r, of| r > of),
            Test::Compare(Comparison::Gte, k) => by_rank(k, |r, of| r >= of),
            Test::Compare(Comparison::Lt, k) => by_rank(k, |r, of| r < of),
            Test::Compare(Comparison::Lte, k) => by_rank(k, |r, of| r <= of),
            Test::In(keys) => holding(&|t| keys.iter().any(|k| t.key == key(k))),
            // Every customer holds a tier.
            Test::Exists | Test::Contains(_) => always(),
        }
    }
}

/// A comparison of the points balance, as the customers whose copy of it in
/// `customer_points_rank` passes: the copy has the balance's index (the customer row's
/// balance has none, so that moving it can be a HOT update). Every customer has exactly
/// one copy, so the test and its negation mean what they would on the column.
fn points_balance(test: &Test) -> Expr {
    let balance = || {
        Expr::col((
            customer_points_rank::Entity,
            customer_points_rank::Column::PointsBalance,
        ))
    };
    let passing = match test {
        Test::Compare(comparison, scalar) => compare(balance(), *comparison, value(scalar)),
        Test::In(scalars) => balance().is_in(scalars.iter().map(value)),
        Test::Exists | Test::Contains(_) => return always(),
    };
    column(customer::Column::Id).in_subquery(
        Query::select()
            .column((
                customer_points_rank::Entity,
                customer_points_rank::Column::CustomerId,
            ))
            .from(customer_points_rank::Entity)
            .and_where(passing)
            .to_owned(),
    )
}

/// `contains`: has every one of these tags; `in`: any of them; `exists`: any tag at all.
fn tags(test: &Test) -> Expr {
    let has_tag = |condition: Option<Expr>| {
        let mut query = Query::select();
        query
            .expr(Expr::val(1))
            .from(customer_tag::Entity)
            .and_where(
                Expr::col((customer_tag::Entity, customer_tag::Column::CustomerId))
                    .equals((customer::Entity, customer::Column::Id)),
            );
        if let Some(condition) = condition {
            query.and_where(condition);
        }
        Expr::exists(query.to_owned())
    };
    let tag = || Expr::col((customer_tag::Entity, customer_tag::Column::Tag));
    match test {
        Test::Contains(tags) => fold(tags.iter().map(|t| has_tag(Some(tag().eq(value(t))))), true),
        Test::In(tags) => has_tag(Some(tag().is_in(tags.iter().map(value)))),
        Test::Exists => has_tag(None),
        // The parser refuses comparisons on tags.
        Test::Compare(..) => never(),
    }
}

/// A value inside the `attributes` JSON, read with each database's JSON functions. A
/// comparison only sees values of its own JSON type (`"5"` is not `5`): the typed
/// accessors are NULL for any other type, and a CASE keeps Postgres from casting text
/// to a number. Keys are checked by the parser (letters, digits, `_`, `-`), so they are
/// written into the SQL as literals.
struct Attribute {
    backend: DbBackend,
    /// Postgres: the jsonb value. SQLite: the JSON path.
    locator: String,
}

const ATTRIBUTES: &str = "\"customer\".\"attributes\"";

#[derive(Clone, Copy)]
enum JsonType {
    Text,
    Number,
    Bool,
}

impl Attribute {
    fn new(backend: DbBackend, keys: &[String]) -> Self {
        let locator = match backend {
            DbBackend::Postgres => {
                let arrows: String = keys.iter().map(|k| format!(" -> '{k}'")).collect();
                format!("({ATTRIBUTES}{arrows})")
            }
            _ => {
                let quoted: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
                format!("'$.{}'", quoted.join("."))
            }
        };
        Self { backend, locator }
    }

    fn postgres(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// The JSON type's name (Postgres `jsonb_typeof`, SQLite `json_type`); NULL when the
    /// key is missing.
    fn type_name(&self) -> String {
        if self.postgres() {
            format!("jsonb_typeof({})", self.locator)
        } else {
            format!("json_type({ATTRIBUTES}, {})", self.locator)
        }
    }

    /// The value as SQL text, number or 'true'/'false' when it is of that JSON type.
    fn typed(&self, json_type: JsonType) -> Expr {
        let type_name = self.type_name();
        let sql = match (self.postgres(), json_type) {
            (true, JsonType::Text) => {
                format!(
                    "(CASE WHEN {type_name} = 'string' THEN {} #>> '{{}}' END)",
                    self.locator
                )
            }
            (true, JsonType::Number) => format!(
                "(CASE WHEN {type_name} = 'number' THEN ({} #>> '{{}}')::float8 END)",
                self.locator
            ),
            (true, JsonType::Bool) => {
                format!(
                    "(CASE WHEN {type_name} = 'boolean' THEN {} #>> '{{}}' END)",
                    self.locator
                )
            }
            (false, JsonType::Text) => format!(
                "(CASE WHEN {type_name} = 'text' THEN json_extract({ATTRIBUTES}, {}) END)",
                self.locator
            ),
            (false, JsonType::Number) => format!(
                "(CASE WHEN {type_name} IN ('integer', 'real') THEN json_extract({ATTRIBUTES}, {}) END)",
                self.locator
            ),
            (false, JsonType::Bool) => {
                format!("(CASE WHEN {type_name} IN ('true', 'false') THEN {type_name} END)")
            }
        };
        Expr::cust(sql)
    }

    fn test(&self, test: &Test) -> Expr {
        match test {
            Test::Compare(comparison, scalar) => {
                compare(self.typed(json_type(scalar)), *comparison, value(scalar))
            }
            Test::In(scalars) => fold(
                scalars
                    .iter()
                    .map(|s| self.typed(json_type(s)).eq(value(s))),
                false,
            ),
            Test::Contains(scalars) => fold(
                scalars.iter().map(|scalar| {
                    let element = self.array_contains(scalar);
                    match scalar {
                        Scalar::Text(text) => {
                            contains_text(self.typed(JsonType::Text), text.clone()).or(element)
                        }
                        _ => element,
                    }
                }),
                true,
            ),
            Test::Exists => Expr::cust(format!("{} <> 'null'", self.type_name())),
        }
    }

    /// Whether the value is an array holding `scalar`.
    fn array_contains(&self, scalar: &Scalar) -> Expr {
        let type_name = self.type_name();
        if self.postgres() {
            let element = match scalar {
                Scalar::Text(text) => json!([text]),
                Scalar::Number(n) => json!([n]),
                Scalar::Bool(flag) => json!([flag]),
                other => json!([text_of(other)]),
            };
            return Expr::cust(format!(
                "(CASE WHEN {type_name} = 'array' THEN {} END)",
                self.locator
            ))
            .binary(
                BinOper::Custom("@>"),
                Expr::val(element.to_string()).cast_as("jsonb"),
            );
        }
        let each = format!(
            "EXISTS (SELECT 1 FROM json_each({ATTRIBUTES}, {}) AS element WHERE",
            self.locator
        );
        let sql = |test: &str| format!("(CASE WHEN {type_name} = 'array' THEN {each} {test}) END)");
        match scalar {
            Scalar::Bool(flag) => Expr::cust(sql(&format!("element.type = '{flag}'"))),
            Scalar::Number(n) => Expr::cust_with_values(
                sql("element.type IN ('integer', 'real') AND element.value = ?"),
                [*n],
            ),
            other => Expr::cust_with_values(
                sql("element.type = 'text' AND element.value = ?"),
                [text_of(other)],
            ),
        }
    }
}

fn json_type(scalar: &Scalar) -> JsonType {
    match scalar {
        Scalar::Number(_) | Scalar::Integer(_) => JsonType::Number,
        Scalar::Bool(_) => JsonType::Bool,
        _ => JsonType::Text,
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
    use serde_json::json;

    use super::*;

    fn sql(rule: serde_json::Value, backend: DbBackend) -> String {
        let rule = Rule::parse(&rule, "rule", &|_| true).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let query = Query::select()
            .expr(Expr::val(1))
            .from(customer::Entity)
            .and_where(compile(&rule, backend, now, &[], None))
            .to_owned();
        match backend {
            DbBackend::Postgres => query.to_string(PostgresQueryBuilder),
            _ => query.to_string(SqliteQueryBuilder),
        }
    }

    #[test]
    fn negation_is_pushed_down_and_keeps_missing_values_on_the_negated_side() {
        let text = sql(
            json!({"not": {"all": [
                {"field": "score", "op": "gte", "value": 70},
                {"field": "region", "op": "eq", "value": "Shanghai"}
            ]}}),
            DbBackend::Postgres,
        );
        assert!(text.contains(r#"NOT "customer"."score" >= 70"#), "{text}");
        assert!(
            text.contains(r#"NOT COALESCE("customer"."region" = 'Shanghai', 1 = 0)"#),
            "{text}"
        );
        assert!(text.contains(" OR "), "{text}");
    }

    #[test]
    fn recency_days_become_bounds_on_the_last_purchase() {
        let text = sql(
            json!({"field": "recencyDays", "op": "gt", "value": 90}),
            DbBackend::Postgres,
        );
        // More than 90 whole days: at least 91 days before now.
        assert!(
            text.contains(
                r#""customer"."last_purchase_at" <= '2026-08-24 12:00:00.000000 +00:00'"#
            ),
            "{text}"
        );
    }

    #[test]
    fn attributes_are_read_by_type_on_both_databases() {
        let rule = json!({"field": "attributes.company.size", "op": "gte", "value": 50});
        let postgres = sql(rule.clone(), DbBackend::Postgres);
        assert!(
            postgres.contains(
                r#"CASE WHEN jsonb_typeof(("customer"."attributes" -> 'company' -> 'size')) = 'number'"#
            ),
            "{postgres}"
        );
        let sqlite = sql(rule, DbBackend::Sqlite);
        assert!(
            sqlite.contains(
                r#"json_type("customer"."attributes", '$."company"."size"') IN ('integer', 'real')"#
            ),
            "{sqlite}"
        );
    }
}
