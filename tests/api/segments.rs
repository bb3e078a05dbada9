//! Customer segments: the rule language (every operator on every field, missing values,
//! nesting), rule validation messages, CRUD and paging, live membership of DYNAMIC segments,
//! STATIC lists, erasure, and who may read and manage segments.
//!
//! Rules are checked through `segmentPreview`, which lists the customers an unsaved rule
//! selects; the membership tests check that a saved segment's `memberCount`, `members`,
//! `customers(filter: { segmentId })` and `Customer.segments` all agree.

use std::collections::BTreeMap;

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, error_code, error_message, instant, on_both};

const SEGMENT: &str = "id name description kind rule memberCount createdAt";

const PREVIEW: &str = "query($rule: JSON!, $first: Int) {
  segmentPreview(rule: $rule, first: $first) { totalCount nodes { id name } }
}";

const MEMBERSHIP: &str = "query($id: ID!) {
  segment(id: $id) { name memberCount members(first: 100) { totalCount nodes { name } } }
  customers(filter: { segmentId: $id }, first: 100) { totalCount nodes { name } }
}";

const CUSTOMER_SEGMENTS: &str = "query($id: ID!) { customer(id: $id) { segments { name } } }";

const ADD: &str = "mutation($segmentId: ID!, $customerIds: [ID!]!) {
  addSegmentMembers(segmentId: $segmentId, customerIds: $customerIds) { id memberCount }
}";

const REMOVE: &str = "mutation($segmentId: ID!, $customerIds: [ID!]!) {
  removeSegmentMembers(segmentId: $segmentId, customerIds: $customerIds) { id memberCount }
}";

const DELETE: &str = "mutation($id: ID!) { deleteSegment(id: $id) }";

const MEMBER_PAGE: &str = "query($id: ID!, $first: Int, $after: String) {
  segment(id: $id) {
    memberCount
    members(first: $first, after: $after) {
      totalCount
      edges { cursor node { name } }
      nodes { name }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}";

const SEGMENT_PAGE: &str = "query($first: Int, $after: String) {
  segments(first: $first, after: $after) {
    totalCount
    edges { cursor node { name } }
    nodes { name }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { duplicate }
}";

const SET_TIER: &str = "mutation($customerId: ID!, $tierKey: String!, $note: String!) {
  setCustomerTier(customerId: $customerId, tierKey: $tierKey, note: $note) { to { key } }
}";

const ADJUST: &str =
    "mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) { balanceAfter } }";

const UPDATE_CUSTOMER: &str = "mutation($id: ID!, $input: UpdateCustomerInput!) {
  updateCustomer(id: $id, input: $input) { id }
}";

/// No customer: an empty expectation whose element type is known.
const NOBODY: [&str; 0] = [];

fn create_mutation() -> String {
    format!("mutation($input: SegmentInput!) {{ createSegment(input: $input) {{ {SEGMENT} }} }}")
}

fn update_mutation() -> String {
    format!(
        "mutation($id: ID!, $input: SegmentInput!) {{ updateSegment(id: $id, input: $input) {{ {SEGMENT} }} }}"
    )
}

fn segment_query() -> String {
    format!("query($id: ID!) {{ segment(id: $id) {{ {SEGMENT} }} }}")
}

/// A condition `{"field": F, "op": OP, "value": V}`.
fn cond(field: &str, op: &str, value: impl Into<Value>) -> Value {
    json!({ "field": field, "op": op, "value": value.into() })
}

/// `exists` with its value left out (which means `true`).
fn has(field: &str) -> Value {
    json!({ "field": field, "op": "exists" })
}

fn not(rule: Value) -> Value {
    json!({ "not": rule })
}

fn all(rules: Vec<Value>) -> Value {
    json!({ "all": rules })
}

fn any(rules: Vec<Value>) -> Value {
    json!({ "any": rules })
}

/// A rule and the customers it must select, by name, oldest first.
fn case(rule: Value, expected: impl Into<Vec<&'static str>>) -> (Value, Vec<&'static str>) {
    (rule, expected.into())
}

fn names(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap_or_else(|| panic!("a list: {nodes}"))
        .iter()
        .map(|n| n["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// `days` days and one hour ago, so that whole-day counts are not on a boundary.
fn days_ago(days: i64) -> String {
    (Utc::now() - Duration::days(days) - Duration::hours(1))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Previews every rule as admin and fails, listing every rule that selected the wrong
/// customers (or was refused), after trying them all.
async fn check(app: &TestApp, cases: Vec<(Value, Vec<&'static str>)>) {
    let token = app.admin();
    let mut failures = Vec::new();
    for (rule, expected) in &cases {
        let body = app
            .gql(Some(&token), PREVIEW, json!({ "rule": rule, "first": 100 }))
            .await;
        if body.get("errors").is_some() {
            failures.push(format!("{rule}\n    refused: {body}"));
            continue;
        }
        let preview = &body["data"]["segmentPreview"];
        let got = names(&preview["nodes"]);
        if got != *expected || preview["totalCount"] != got.len() {
            failures.push(format!(
                "{rule}\n    expected {expected:?}\n    got      {got:?} (totalCount {})",
                preview["totalCount"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rules selected the wrong customers:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn record(app: &TestApp, input: Value) {
    app.ok(RECORD, json!({ "input": input })).await;
}

async fn purchase(app: &TestApp, customer_id: &str, amount: &str, days: i64) {
    record(
        app,
        json!({ "customerId": customer_id, "kind": "PURCHASE", "amount": amount, "occurredAt": days_ago(days) }),
    )
    .await;
}

async fn purchase_now(app: &TestApp, customer_id: &str, amount: &str) {
    record(
        app,
        json!({ "customerId": customer_id, "kind": "PURCHASE", "amount": amount }),
    )
    .await;
}

async fn adjust(app: &TestApp, customer_id: &str, delta: i64) -> i64 {
    let data = app
        .ok(
            ADJUST,
            json!({ "input": { "customerId": customer_id, "delta": delta, "reason": "Goodwill" } }),
        )
        .await;
    data["adjustPoints"]["balanceAfter"]
        .as_i64()
        .expect("a balance")
}

async fn update_customer(app: &TestApp, customer_id: &str, input: Value) {
    app.ok(
        UPDATE_CUSTOMER,
        json!({ "id": customer_id, "input": input }),
    )
    .await;
}

async fn try_create(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(Some(token), &create_mutation(), json!({ "input": input }))
        .await
}

/// Creates a segment as admin and returns it; fails the test on any error.
async fn create(app: &TestApp, input: Value) -> Value {
    app.ok(&create_mutation(), json!({ "input": input })).await["createSegment"].clone()
}

async fn create_dynamic(app: &TestApp, name: &str, rule: Value) -> String {
    let segment = create(
        app,
        json!({ "name": name, "kind": "DYNAMIC", "rule": rule }),
    )
    .await;
    segment["id"].as_str().expect("an id").to_owned()
}

async fn create_static(app: &TestApp, name: &str) -> String {
    let segment = create(app, json!({ "name": name, "kind": "STATIC" })).await;
    segment["id"].as_str().expect("an id").to_owned()
}

async fn try_update(app: &TestApp, token: &str, id: &str, input: Value) -> Value {
    app.gql(
        Some(token),
        &update_mutation(),
        json!({ "id": id, "input": input }),
    )
    .await
}

async fn update(app: &TestApp, id: &str, input: Value) -> Value {
    app.ok(&update_mutation(), json!({ "id": id, "input": input }))
        .await["updateSegment"]
        .clone()
}

/// `segment(id:)` as admin: the segment, or null.
async fn segment(app: &TestApp, id: &str) -> Value {
    app.ok(&segment_query(), json!({ "id": id })).await["segment"].clone()
}

async fn try_members(
    app: &TestApp,
    token: &str,
    mutation: &str,
    segment_id: &str,
    ids: Value,
) -> Value {
    app.gql(
        Some(token),
        mutation,
        json!({ "segmentId": segment_id, "customerIds": ids }),
    )
    .await
}

/// Adds members as admin; returns the segment's `memberCount` afterwards.
async fn add(app: &TestApp, segment_id: &str, ids: Value) -> Value {
    app.ok(ADD, json!({ "segmentId": segment_id, "customerIds": ids }))
        .await["addSegmentMembers"]["memberCount"]
        .clone()
}

async fn remove(app: &TestApp, segment_id: &str, ids: Value) -> Value {
    app.ok(
        REMOVE,
        json!({ "segmentId": segment_id, "customerIds": ids }),
    )
    .await["removeSegmentMembers"]["memberCount"]
        .clone()
}

/// A segment's members by name, oldest first, after checking that `memberCount`,
/// `members` and `customers(filter: { segmentId })` all say the same.
async fn members(app: &TestApp, segment_id: &str) -> Vec<String> {
    let data = app.ok(MEMBERSHIP, json!({ "id": segment_id })).await;
    let segment = &data["segment"];
    let listed = names(&segment["members"]["nodes"]);
    assert_eq!(
        segment["memberCount"],
        listed.len(),
        "memberCount: {data:#}"
    );
    assert_eq!(
        segment["members"]["totalCount"],
        listed.len(),
        "members.totalCount: {data:#}"
    );
    assert_eq!(
        names(&data["customers"]["nodes"]),
        listed,
        "customers(filter: {{ segmentId }}) lists the members: {data:#}"
    );
    assert_eq!(data["customers"]["totalCount"], listed.len(), "{data:#}");
    listed
}

/// The names of the segments `Customer.segments` lists for a customer.
async fn segments_of(app: &TestApp, customer_id: &str) -> Vec<String> {
    let data = app
        .ok(CUSTOMER_SEGMENTS, json!({ "id": customer_id }))
        .await;
    names(&data["customer"]["segments"])
}

/// Checks every view of one segment's membership: `members` (and with it `memberCount`
/// and `customers(filter: { segmentId })`) and, for each of `people`, whether its
/// `Customer.segments` lists the segment.
async fn assert_members(
    app: &TestApp,
    segment_id: &str,
    people: &[(&str, &str)],
    expected: &[&str],
    when: &str,
) {
    let segment_name = segment(app, segment_id).await["name"]
        .as_str()
        .expect("a name")
        .to_owned();
    assert_eq!(
        members(app, segment_id).await,
        expected,
        "members of {segment_name} {when}"
    );
    for (name, id) in people {
        let listed = segments_of(app, id).await;
        assert_eq!(
            listed.contains(&segment_name),
            expected.contains(name),
            "{name}.segments {when} is {listed:?}; {segment_name} members are {expected:?}"
        );
    }
}

/// One page of a connection: names, and `pageInfo` checked against the edges.
struct Page {
    names: Vec<String>,
    total: Value,
    has_next: Value,
    has_previous: Value,
    end_cursor: Value,
}

fn read_page(connection: &Value) -> Page {
    let edges = connection["edges"].as_array().expect("edges");
    let nodes = names(&connection["nodes"]);
    let edge_names: Vec<String> = edges
        .iter()
        .map(|e| e["node"]["name"].as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(nodes, edge_names, "nodes and edges agree: {connection:#}");
    let info = &connection["pageInfo"];
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        assert_eq!(info["startCursor"], first["cursor"], "{connection:#}");
        assert_eq!(info["endCursor"], last["cursor"], "{connection:#}");
    }
    Page {
        names: nodes,
        total: connection["totalCount"].clone(),
        has_next: info["hasNextPage"].clone(),
        has_previous: info["hasPreviousPage"].clone(),
        end_cursor: info["endCursor"].clone(),
    }
}

/// Checks that a message starts with the path `path` (followed by `:`, `.`, `[` or a
/// space) and contains `phrase`; returns what is wrong, if anything.
fn refusal_problem(body: &Value, path: &str, phrase: &str) -> Option<String> {
    if error_code(body) != Some("BAD_USER_INPUT") {
        return Some(format!(
            "expected BAD_USER_INPUT naming {path:?}, got {body}"
        ));
    }
    let message = error_message(body);
    let at_path = message
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '.', '[', ' ']));
    if !at_path || !message.contains(phrase) {
        return Some(format!(
            "expected a message starting with {path:?} and containing {phrase:?}, got {message:?}"
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------
// The rule language, on a population of eight customers with distinct profiles and
// purchase histories.
// ---------------------------------------------------------------------------------------

/// Every customer of the population, oldest first (creation order is alphabetical).
const EVERYONE: [&str; 8] = ["Ada", "Bo", "Cai", "Dai", "Eva", "Fu", "Gao", "Hu"];

/// `EVERYONE` but `left_out`.
fn except(left_out: &[&str]) -> Vec<&'static str> {
    EVERYONE
        .into_iter()
        .filter(|name| !left_out.contains(name))
        .collect()
}

/// What the population looks like once seeded (see `seed_population`).
struct Expected {
    name: &'static str,
    score: f64,
    tier: &'static str,
    stage: &'static str,
    points: i64,
    purchases: i64,
    net_spend: f64,
    lifetime_spend: f64,
    recency_days: Option<i64>,
    engagement: i64,
    nps: Option<i64>,
}

#[rustfmt::skip]
const POPULATION_STATE: [Expected; 8] = [
    // 3 purchases (10, 100, 200 days ago): recency 100, frequency 40, monetary 70 → 53 / 0.9.
    Expected { name: "Ada", score: 58.9, tier: "regular", stage: "GROWING", points: 3700, purchases: 3, net_spend: 3700.0, lifetime_spend: 3700.0, recency_days: Some(10), engagement: 0, nps: None },
    // 1 purchase 100 days ago: 40, 20, 20 → 20 / 0.9.
    Expected { name: "Bo", score: 22.2, tier: "potential", stage: "NEW", points: 80, purchases: 1, net_spend: 80.5, lifetime_spend: 80.5, recency_days: Some(100), engagement: 0, nps: None },
    // 2 purchases (10, 200 days ago): 100, 40, 20 → 38 / 0.9.
    Expected { name: "Cai", score: 42.2, tier: "regular", stage: "GROWING", points: 400, purchases: 2, net_spend: 400.0, lifetime_spend: 400.0, recency_days: Some(10), engagement: 0, nps: None },
    // No purchase; a visit and a survey rated 9: engagement 40, nps 100 → 14 / 1.0.
    Expected { name: "Dai", score: 14.0, tier: "potential", stage: "PROSPECT", points: 0, purchases: 0, net_spend: 0.0, lifetime_spend: 0.0, recency_days: None, engagement: 2, nps: Some(9) },
    // A purchase 400 days ago (outside the window) and one 300 days ago: 20, 20, 20 → 16 / 0.9.
    Expected { name: "Eva", score: 17.8, tier: "potential", stage: "AT_RISK", points: 5020, purchases: 1, net_spend: 20.0, lifetime_spend: 5020.0, recency_days: Some(300), engagement: 0, nps: None },
    // 1 purchase of 10000 10 days ago: 100, 20, 100 → 56 / 0.9; then set to vip by hand.
    Expected { name: "Fu", score: 62.2, tier: "vip", stage: "NEW", points: 10000, purchases: 1, net_spend: 10000.0, lifetime_spend: 10000.0, recency_days: Some(10), engagement: 0, nps: None },
    // Nothing but a points adjustment.
    Expected { name: "Gao", score: 0.0, tier: "potential", stage: "PROSPECT", points: 300, purchases: 0, net_spend: 0.0, lifetime_spend: 0.0, recency_days: None, engagement: 0, nps: None },
    // 5 purchases of 100 (10 to 200 days ago): 100, 70, 20 → 47 / 0.9.
    Expected { name: "Hu", score: 52.2, tier: "regular", stage: "GROWING", points: 500, purchases: 5, net_spend: 500.0, lifetime_spend: 500.0, recency_days: Some(10), engagement: 0, nps: None },
];

const POPULATION: &str = "{ customers(first: 100) { nodes {
  id name createdAt score lifecycleStage pointsBalance tier { key }
  metrics { purchaseCount netSpend lifetimeSpend recencyDays engagementCount latestNps
            abcClass pAlive rfm { recency segment } }
} } }";

fn decimal(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("a Decimal: {value}"))
}

/// Creates the eight customers of the rule tests, records their histories, checks that
/// their metrics are what the expectations assume, and returns them by name as
/// `customers` lists them.
async fn seed_population(app: &TestApp) -> BTreeMap<String, Value> {
    let profiles = [
        json!({ "name": "Ada", "kind": "BUSINESS", "industry": "Manufacturing", "region": "Shanghai",
                "birthday": "1985-04-12", "tags": ["wholesale", "vip-prospect"],
                "attributes": { "companySize": 250, "plan": "gold", "verified": true, "interests": ["golf", "wine"],
                                "company": { "size": "large", "employees": 250 }, "member_since-year": 2019 } }),
        json!({ "name": "Bo", "kind": "INDIVIDUAL", "industry": "Retail", "region": "Beijing",
                "birthday": "1992-11-30", "tags": ["web"],
                "attributes": { "companySize": "250", "plan": "silver", "verified": false, "interests": ["wine"],
                                "company": { "size": "small" } } }),
        json!({ "name": "Cai", "kind": "INDIVIDUAL", "industry": "retail", "region": "Shanghai",
                "attributes": { "companySize": 12, "verified": true } }),
        json!({ "name": "Dai", "kind": "BUSINESS", "region": "Shenzhen", "birthday": "2000-01-01",
                "tags": ["wholesale"] }),
        json!({ "name": "Eva", "kind": "INDIVIDUAL", "industry": "Finance", "birthday": "1985-04-12",
                "tags": ["vip-prospect", "web"], "attributes": { "plan": "Gold Plus", "interests": [] } }),
        json!({ "name": "Fu", "kind": "BUSINESS", "industry": "Manufacturing", "region": "shanghai",
                "birthday": "1970-06-30", "tags": ["export"],
                "attributes": { "companySize": 5000, "plan": "gold", "interests": ["golf"], "company": { "size": "large" } } }),
        json!({ "name": "Gao" }),
        json!({ "name": "Hu", "kind": "INDIVIDUAL", "industry": "E-Retail", "region": "Hangzhou",
                "birthday": "1999-12-31", "tags": ["web", "export"],
                "attributes": { "companySize": 40.5, "plan": "bronze", "verified": "true", "interests": "golf", "company": "Acme" } }),
    ];
    let mut ids = BTreeMap::new();
    for profile in profiles {
        let name = profile["name"].as_str().expect("a name").to_owned();
        ids.insert(name, app.create_customer(profile).await);
    }
    let id = |name: &str| ids[name].clone();

    // Oldest first, so that each purchase is scored with the ones before it.
    for (amount, days) in [("500.00", 200), ("2000.00", 100), ("1200.00", 10)] {
        purchase(app, &id("Ada"), amount, days).await;
    }
    purchase(app, &id("Bo"), "80.50", 100).await;
    for (amount, days) in [("250.00", 200), ("150.00", 10)] {
        purchase(app, &id("Cai"), amount, days).await;
    }
    record(app, json!({ "customerId": id("Dai"), "kind": "VISIT" })).await;
    record(
        app,
        json!({ "customerId": id("Dai"), "kind": "SURVEY", "rating": 9 }),
    )
    .await;
    for (amount, days) in [("5000.00", 400), ("20.00", 300)] {
        purchase(app, &id("Eva"), amount, days).await;
    }
    purchase(app, &id("Fu"), "10000.00", 10).await;
    app.ok(
        SET_TIER,
        json!({ "customerId": id("Fu"), "tierKey": "vip", "note": "Key account" }),
    )
    .await;
    assert_eq!(adjust(app, &id("Gao"), 300).await, 300);
    for days in [200, 150, 100, 40, 10] {
        purchase(app, &id("Hu"), "100.00", days).await;
    }

    let data = app.ok(POPULATION, json!({})).await;
    let nodes = data["customers"]["nodes"].as_array().expect("customers");
    assert_eq!(
        names(&data["customers"]["nodes"]),
        EVERYONE,
        "creation order"
    );
    let mut problems = Vec::new();
    for (node, expected) in nodes.iter().zip(&POPULATION_STATE) {
        let metrics = &node["metrics"];
        let actual = (
            node["score"].as_f64().expect("a score"),
            node["tier"]["key"].as_str().expect("a tier"),
            node["lifecycleStage"].as_str().expect("a stage"),
            node["pointsBalance"].as_i64().expect("points"),
            metrics["purchaseCount"].as_i64().expect("a count"),
            decimal(&metrics["netSpend"]),
            decimal(&metrics["lifetimeSpend"]),
            metrics["recencyDays"].as_i64(),
            metrics["engagementCount"].as_i64().expect("a count"),
            metrics["latestNps"].as_i64(),
        );
        let wanted = (
            expected.score,
            expected.tier,
            expected.stage,
            expected.points,
            expected.purchases,
            expected.net_spend,
            expected.lifetime_spend,
            expected.recency_days,
            expected.engagement,
            expected.nps,
        );
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let same = close(actual.0, wanted.0)
            && actual.1 == wanted.1
            && actual.2 == wanted.2
            && actual.3 == wanted.3
            && actual.4 == wanted.4
            && close(actual.5, wanted.5)
            && close(actual.6, wanted.6)
            && actual.7 == wanted.7
            && actual.8 == wanted.8
            && actual.9 == wanted.9;
        if !same {
            problems.push(format!(
                "{}: (score, tier, stage, points, purchaseCount, netSpend, lifetimeSpend, recencyDays, \
                 engagementCount, latestNps) is {actual:?}, the tests assume {wanted:?}",
                expected.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the seeded population is not what the rule tests assume:\n{}",
        problems.join("\n")
    );
    nodes
        .iter()
        .map(|n| (n["name"].as_str().expect("a name").to_owned(), n.clone()))
        .collect()
}

async fn rule_operators_on_tier_lifecycle_and_kind(app: TestApp) {
    seed_population(&app).await;
    #[rustfmt::skip]
    let cases = vec![
        // Tiers: equality by key, order by rank (potential 0 < regular 1 < vip 2).
        case(cond("tier", "eq", "vip"), ["Fu"]),
        case(cond("tier", "eq", "regular"), ["Ada", "Cai", "Hu"]),
        case(cond("tier", "neq", "potential"), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("tier", "in", json!(["potential", "vip"])), ["Bo", "Dai", "Eva", "Fu", "Gao"]),
        case(cond("tier", "nin", json!(["regular"])), ["Bo", "Dai", "Eva", "Fu", "Gao"]),
        case(cond("tier", "gte", "regular"), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("tier", "gt", "regular"), ["Fu"]),
        case(cond("tier", "lt", "regular"), ["Bo", "Dai", "Eva", "Gao"]),
        case(cond("tier", "lte", "potential"), ["Bo", "Dai", "Eva", "Gao"]),
        case(cond("tier", "lte", "vip"), EVERYONE),
        case(cond("tier", "gt", "vip"), NOBODY),
        case(cond("tier", "exists", true), EVERYONE),
        case(cond("tier", "exists", false), NOBODY),
        // Lifecycle stages.
        case(cond("lifecycleStage", "eq", "GROWING"), ["Ada", "Cai", "Hu"]),
        case(cond("lifecycleStage", "eq", "CHURNED"), NOBODY),
        case(cond("lifecycleStage", "neq", "PROSPECT"), except(&["Dai", "Gao"])),
        case(cond("lifecycleStage", "in", json!(["NEW", "AT_RISK"])), ["Bo", "Eva", "Fu"]),
        case(cond("lifecycleStage", "nin", json!(["GROWING", "PROSPECT"])), ["Bo", "Eva", "Fu"]),
        case(has("lifecycleStage"), EVERYONE),
        // Kinds.
        case(cond("kind", "eq", "BUSINESS"), ["Ada", "Dai", "Fu"]),
        case(cond("kind", "neq", "BUSINESS"), ["Bo", "Cai", "Eva", "Gao", "Hu"]),
        case(cond("kind", "in", json!(["INDIVIDUAL"])), ["Bo", "Cai", "Eva", "Gao", "Hu"]),
        case(cond("kind", "in", json!(["INDIVIDUAL", "BUSINESS"])), EVERYONE),
        case(cond("kind", "nin", json!(["INDIVIDUAL", "BUSINESS"])), NOBODY),
        case(cond("kind", "exists", false), NOBODY),
    ];
    check(&app, cases).await;
}

async fn rule_operators_on_industry_region_and_tags(app: TestApp) {
    seed_population(&app).await;
    #[rustfmt::skip]
    let cases = vec![
        // Industry: eq/in exact and case-sensitive, contains case-insensitive; Dai and
        // Gao have none, so they match neq, nin, not and exists false, and nothing else.
        case(cond("industry", "eq", "Retail"), ["Bo"]),
        case(cond("industry", "eq", "retail"), ["Cai"]),
        case(cond("industry", "neq", "Retail"), except(&["Bo"])),
        case(not(cond("industry", "eq", "Retail")), except(&["Bo"])),
        case(cond("industry", "contains", "retail"), ["Bo", "Cai", "Hu"]),
        case(cond("industry", "contains", "RETAIL"), ["Bo", "Cai", "Hu"]),
        case(cond("industry", "contains", "-"), ["Hu"]),
        case(cond("industry", "in", json!(["Manufacturing", "Finance"])), ["Ada", "Eva", "Fu"]),
        case(cond("industry", "nin", json!(["Manufacturing", "Finance"])), ["Bo", "Cai", "Dai", "Gao", "Hu"]),
        case(has("industry"), except(&["Dai", "Gao"])),
        case(cond("industry", "exists", true), except(&["Dai", "Gao"])),
        case(cond("industry", "exists", false), ["Dai", "Gao"]),
        // Region: Eva and Gao have none.
        case(cond("region", "eq", "Shanghai"), ["Ada", "Cai"]),
        case(cond("region", "neq", "Shanghai"), ["Bo", "Dai", "Eva", "Fu", "Gao", "Hu"]),
        case(cond("region", "contains", "SHANG"), ["Ada", "Cai", "Fu"]),
        case(cond("region", "contains", "zh"), ["Dai", "Hu"]),
        // LIKE wildcards are plain characters.
        case(cond("region", "contains", "%"), NOBODY),
        case(cond("region", "contains", "_"), NOBODY),
        case(cond("region", "in", json!(["Beijing", "shanghai"])), ["Bo", "Fu"]),
        case(cond("region", "nin", json!(["Shanghai", "Beijing"])), ["Dai", "Eva", "Fu", "Gao", "Hu"]),
        case(cond("region", "exists", false), ["Eva", "Gao"]),
        // Tags: contains one (exact tag) or all of a list; in = any; nin = none.
        case(cond("tags", "contains", "web"), ["Bo", "Eva", "Hu"]),
        case(cond("tags", "contains", "we"), NOBODY),
        case(cond("tags", "contains", json!(["web"])), ["Bo", "Eva", "Hu"]),
        case(cond("tags", "contains", json!(["web", "export"])), ["Hu"]),
        case(cond("tags", "contains", json!(["wholesale", "vip-prospect"])), ["Ada"]),
        case(cond("tags", "in", json!(["wholesale", "export"])), ["Ada", "Dai", "Fu", "Hu"]),
        case(cond("tags", "nin", json!(["wholesale", "export"])), ["Bo", "Cai", "Eva", "Gao"]),
        case(cond("tags", "in", json!(["nobody-has-this"])), NOBODY),
        case(cond("tags", "nin", json!(["nobody-has-this"])), EVERYONE),
        case(has("tags"), ["Ada", "Bo", "Dai", "Eva", "Fu", "Hu"]),
        case(cond("tags", "exists", false), ["Cai", "Gao"]),
    ];
    check(&app, cases).await;
}

async fn rule_operators_on_metrics(app: TestApp) {
    let population = seed_population(&app).await;
    #[rustfmt::skip]
    let cases = vec![
        // Score (always present).
        case(cond("score", "gt", 50), ["Ada", "Fu", "Hu"]),
        case(cond("score", "lt", 20), ["Dai", "Eva", "Gao"]),
        case(cond("score", "lt", 42.5), ["Bo", "Cai", "Dai", "Eva", "Gao"]),
        case(cond("score", "lte", 14), ["Dai", "Gao"]),
        case(cond("score", "gte", 62.2), ["Fu"]),
        case(cond("score", "eq", 0), ["Gao"]),
        case(cond("score", "neq", 0), except(&["Gao"])),
        case(cond("score", "in", json!([0, 14])), ["Dai", "Gao"]),
        case(cond("score", "nin", json!([0, 14])), ["Ada", "Bo", "Cai", "Eva", "Fu", "Hu"]),
        case(all(vec![cond("score", "gte", 40), cond("score", "lt", 60)]), ["Ada", "Cai", "Hu"]),
        case(has("score"), EVERYONE),
        // recencyDays: whole days since the last purchase; Dai and Gao never bought.
        case(cond("recencyDays", "eq", 10), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("recencyDays", "lte", 30), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("recencyDays", "lt", 100), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("recencyDays", "gt", 30), ["Bo", "Eva"]),
        case(cond("recencyDays", "gte", 100), ["Bo", "Eva"]),
        case(cond("recencyDays", "gt", 100), ["Eva"]),
        case(cond("recencyDays", "in", json!([100, 300])), ["Bo", "Eva"]),
        case(cond("recencyDays", "neq", 10), ["Bo", "Dai", "Eva", "Gao"]),
        case(cond("recencyDays", "nin", json!([10])), ["Bo", "Dai", "Eva", "Gao"]),
        case(cond("recencyDays", "exists", false), ["Dai", "Gao"]),
        case(has("recencyDays"), except(&["Dai", "Gao"])),
        // purchaseCount (in the window: Eva's purchase of 400 days ago does not count).
        case(cond("purchaseCount", "gte", 2), ["Ada", "Cai", "Hu"]),
        case(cond("purchaseCount", "eq", 1), ["Bo", "Eva", "Fu"]),
        case(cond("purchaseCount", "eq", 0), ["Dai", "Gao"]),
        case(cond("purchaseCount", "lt", 1), ["Dai", "Gao"]),
        case(cond("purchaseCount", "gt", 3), ["Hu"]),
        case(cond("purchaseCount", "lte", 3), except(&["Hu"])),
        case(cond("purchaseCount", "neq", 1), ["Ada", "Cai", "Dai", "Gao", "Hu"]),
        case(cond("purchaseCount", "in", json!([2, 5])), ["Cai", "Hu"]),
        case(cond("purchaseCount", "nin", json!([0, 1])), ["Ada", "Cai", "Hu"]),
        // netSpend (window) and lifetimeSpend (all time), as numbers or strings.
        case(cond("netSpend", "gte", 400), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("netSpend", "gte", "400.00"), ["Ada", "Cai", "Fu", "Hu"]),
        case(cond("netSpend", "gt", "80.49"), ["Ada", "Bo", "Cai", "Fu", "Hu"]),
        case(cond("netSpend", "eq", "80.5"), ["Bo"]),
        case(cond("netSpend", "eq", "80.50"), ["Bo"]),
        case(cond("netSpend", "eq", 80.5), ["Bo"]),
        case(cond("netSpend", "lt", 100), ["Bo", "Dai", "Eva", "Gao"]),
        case(cond("netSpend", "lte", 0), ["Dai", "Gao"]),
        case(cond("netSpend", "neq", 0), except(&["Dai", "Gao"])),
        case(cond("netSpend", "gt", 4000), ["Fu"]),
        case(cond("netSpend", "in", json!(["20", 500])), ["Eva", "Hu"]),
        case(cond("netSpend", "nin", json!(["20", 500])), ["Ada", "Bo", "Cai", "Dai", "Fu", "Gao"]),
        case(has("netSpend"), EVERYONE),
        case(cond("lifetimeSpend", "gt", 4000), ["Eva", "Fu"]),
        case(cond("lifetimeSpend", "eq", "5020.00"), ["Eva"]),
        case(cond("lifetimeSpend", "lt", "80.5"), ["Dai", "Gao"]),
        case(cond("lifetimeSpend", "nin", json!([0, "10000"])), ["Ada", "Bo", "Cai", "Eva", "Hu"]),
        // pointsBalance.
        case(cond("pointsBalance", "gte", 500), ["Ada", "Eva", "Fu", "Hu"]),
        case(cond("pointsBalance", "gt", 5020), ["Fu"]),
        case(cond("pointsBalance", "eq", 300), ["Gao"]),
        case(cond("pointsBalance", "neq", 0), except(&["Dai"])),
        case(cond("pointsBalance", "lt", 100), ["Bo", "Dai"]),
        case(cond("pointsBalance", "lte", 400), ["Bo", "Cai", "Dai", "Gao"]),
        case(cond("pointsBalance", "in", json!([80, 300])), ["Bo", "Gao"]),
        case(cond("pointsBalance", "nin", json!([80, 300])), ["Ada", "Cai", "Dai", "Eva", "Fu", "Hu"]),
        // Engagement and NPS: only Dai has any; the others have no latestNps.
        case(cond("engagementCount", "gte", 1), ["Dai"]),
        case(cond("engagementCount", "eq", 0), except(&["Dai"])),
        case(cond("latestNps", "gte", 9), ["Dai"]),
        case(cond("latestNps", "lt", 9), NOBODY),
        case(cond("latestNps", "neq", 9), except(&["Dai"])),
        case(cond("latestNps", "nin", json!([0, 9])), except(&["Dai"])),
        case(has("latestNps"), ["Dai"]),
        case(cond("latestNps", "exists", false), except(&["Dai"])),
    ];
    check(&app, cases).await;

    // RFM, ABC and pAlive are written by evaluation runs (none has run): whatever the
    // customers show is what the rules must select.
    let selected = |keep: &dyn Fn(&Value) -> bool| -> Vec<&'static str> {
        EVERYONE
            .into_iter()
            .filter(|name| keep(&population[*name]["metrics"]))
            .collect()
    };
    let mut cases = Vec::new();
    for class in ["A", "B", "C"] {
        cases.push(case(
            cond("abcClass", "eq", class),
            selected(&|m| m["abcClass"] == class),
        ));
        cases.push(case(
            cond("abcClass", "neq", class),
            selected(&|m| m["abcClass"] != class),
        ));
    }
    cases.extend([
        case(has("abcClass"), EVERYONE),
        case(
            cond("abcClass", "in", json!(["A", "B"])),
            selected(&|m| m["abcClass"] == "A" || m["abcClass"] == "B"),
        ),
        case(has("rfmSegment"), selected(&|m| !m["rfm"].is_null())),
        case(
            cond("rfmSegment", "exists", false),
            selected(&|m| m["rfm"].is_null()),
        ),
        case(
            cond("rfmSegment", "neq", "CHAMPIONS"),
            selected(&|m| m["rfm"]["segment"] != "CHAMPIONS"),
        ),
        case(
            cond("rfmRecency", "gte", 1),
            selected(&|m| m["rfm"]["recency"].as_i64().is_some_and(|r| r >= 1)),
        ),
        case(
            cond("rfmRecency", "exists", false),
            selected(&|m| m["rfm"].is_null()),
        ),
        case(has("pAlive"), selected(&|m| !m["pAlive"].is_null())),
        case(
            cond("pAlive", "exists", false),
            selected(&|m| m["pAlive"].is_null()),
        ),
        case(
            cond("pAlive", "gt", 0),
            selected(&|m| m["pAlive"].as_f64().is_some_and(|p| p > 0.0)),
        ),
        case(
            cond("pAlive", "neq", 0.5),
            selected(&|m| m["pAlive"].as_f64() != Some(0.5)),
        ),
    ]);
    check(&app, cases).await;
}

async fn rule_operators_on_dates(app: TestApp) {
    let population = seed_population(&app).await;
    let created = |name: &str| population[name]["createdAt"].clone();
    let dai = instant(&created("Dai"));
    let eva = instant(&created("Eva"));
    assert!(
        dai < eva,
        "customers created one after the other: {dai} < {eva}"
    );
    let between = (dai + (eva - dai) / 2).to_rfc3339_opts(SecondsFormat::AutoSi, true);
    #[rustfmt::skip]
    let cases = vec![
        // createdAt, against an instant between two customers and against their own.
        case(cond("createdAt", "gt", between.as_str()), ["Eva", "Fu", "Gao", "Hu"]),
        case(cond("createdAt", "lt", between.as_str()), ["Ada", "Bo", "Cai", "Dai"]),
        case(cond("createdAt", "gte", created("Eva")), ["Eva", "Fu", "Gao", "Hu"]),
        case(cond("createdAt", "lte", created("Dai")), ["Ada", "Bo", "Cai", "Dai"]),
        case(cond("createdAt", "gt", created("Dai")), ["Eva", "Fu", "Gao", "Hu"]),
        case(cond("createdAt", "lt", created("Eva")), ["Ada", "Bo", "Cai", "Dai"]),
        case(cond("createdAt", "eq", created("Cai")), ["Cai"]),
        case(cond("createdAt", "neq", created("Cai")), except(&["Cai"])),
        case(cond("createdAt", "in", json!([created("Bo"), created("Hu")])), ["Bo", "Hu"]),
        case(cond("createdAt", "nin", json!([created("Bo"), created("Hu")])), except(&["Bo", "Hu"])),
        case(cond("createdAt", "gt", "2000-01-01T08:00:00+08:00"), EVERYONE),
        case(cond("createdAt", "lt", "2000-01-01T00:00:00Z"), NOBODY),
        case(has("createdAt"), EVERYONE),
        // Birthdays: Cai and Gao have none.
        case(cond("birthday", "eq", "1985-04-12"), ["Ada", "Eva"]),
        case(cond("birthday", "neq", "1985-04-12"), ["Bo", "Cai", "Dai", "Fu", "Gao", "Hu"]),
        case(cond("birthday", "lt", "1990-01-01"), ["Ada", "Eva", "Fu"]),
        case(cond("birthday", "lte", "1970-06-30"), ["Fu"]),
        case(cond("birthday", "gte", "1999-12-31"), ["Dai", "Hu"]),
        case(cond("birthday", "gt", "1999-12-31"), ["Dai"]),
        case(cond("birthday", "in", json!(["2000-01-01", "1970-06-30"])), ["Dai", "Fu"]),
        case(cond("birthday", "nin", json!(["1985-04-12"])), ["Bo", "Cai", "Dai", "Fu", "Gao", "Hu"]),
        case(has("birthday"), ["Ada", "Bo", "Dai", "Eva", "Fu", "Hu"]),
        case(cond("birthday", "exists", false), ["Cai", "Gao"]),
    ];
    check(&app, cases).await;
}

async fn rule_operators_on_attributes(app: TestApp) {
    seed_population(&app).await;
    #[rustfmt::skip]
    let cases = vec![
        // Types are strict: Bo's companySize is the string "250", Ada's the number 250.
        case(cond("attributes.companySize", "eq", 250), ["Ada"]),
        case(cond("attributes.companySize", "eq", "250"), ["Bo"]),
        case(cond("attributes.companySize", "neq", 250), except(&["Ada"])),
        case(cond("attributes.companySize", "gt", 100), ["Ada", "Fu"]),
        case(cond("attributes.companySize", "gte", 40.5), ["Ada", "Fu", "Hu"]),
        case(cond("attributes.companySize", "lt", 50), ["Cai", "Hu"]),
        case(cond("attributes.companySize", "lte", 12), ["Cai"]),
        case(cond("attributes.companySize", "in", json!([12, 5000])), ["Cai", "Fu"]),
        case(cond("attributes.companySize", "in", json!(["250", 12])), ["Bo", "Cai"]),
        case(cond("attributes.companySize", "nin", json!([250, 12])), ["Bo", "Dai", "Eva", "Fu", "Gao", "Hu"]),
        case(has("attributes.companySize"), ["Ada", "Bo", "Cai", "Fu", "Hu"]),
        case(cond("attributes.companySize", "exists", false), ["Dai", "Eva", "Gao"]),
        // Strings: eq exact, contains case-insensitive, comparisons.
        case(cond("attributes.plan", "eq", "gold"), ["Ada", "Fu"]),
        case(cond("attributes.plan", "neq", "gold"), ["Bo", "Cai", "Dai", "Eva", "Gao", "Hu"]),
        case(not(cond("attributes.plan", "eq", "gold")), ["Bo", "Cai", "Dai", "Eva", "Gao", "Hu"]),
        case(cond("attributes.plan", "contains", "GOLD"), ["Ada", "Eva", "Fu"]),
        case(cond("attributes.plan", "gt", "h"), ["Bo"]),
        case(cond("attributes.plan", "gte", "silver"), ["Bo"]),
        // Booleans, and the string "true" that is not one.
        case(cond("attributes.verified", "eq", true), ["Ada", "Cai"]),
        case(cond("attributes.verified", "eq", false), ["Bo"]),
        case(cond("attributes.verified", "eq", "true"), ["Hu"]),
        case(cond("attributes.verified", "neq", true), ["Bo", "Dai", "Eva", "Fu", "Gao", "Hu"]),
        // Nested paths; Hu's company is a string, so it has no company.size.
        case(cond("attributes.company.size", "eq", "large"), ["Ada", "Fu"]),
        case(cond("attributes.company.size", "in", json!(["small", "medium"])), ["Bo"]),
        case(cond("attributes.company.size", "exists", false), ["Cai", "Dai", "Eva", "Gao", "Hu"]),
        case(cond("attributes.company.employees", "gte", 250), ["Ada"]),
        case(cond("attributes.company", "eq", "Acme"), ["Hu"]),
        // Key characters allowed in a path segment.
        case(cond("attributes.member_since-year", "eq", 2019), ["Ada"]),
        // contains: an element of an array attribute, or a substring of a string one.
        case(cond("attributes.interests", "contains", "golf"), ["Ada", "Fu", "Hu"]),
        case(cond("attributes.interests", "contains", "wine"), ["Ada", "Bo"]),
        case(cond("attributes.interests", "contains", "win"), NOBODY),
        case(cond("attributes.interests", "contains", "OL"), ["Hu"]),
        // A key nobody has.
        case(cond("attributes.shoeSize", "eq", 42), NOBODY),
        case(cond("attributes.shoeSize", "neq", 42), EVERYONE),
        case(cond("attributes.shoeSize", "nin", json!([42, "42"])), EVERYONE),
        case(cond("attributes.shoeSize", "gt", 0), NOBODY),
        case(cond("attributes.shoeSize", "contains", "4"), NOBODY),
        case(not(cond("attributes.shoeSize", "eq", 42)), EVERYONE),
        case(cond("attributes.shoeSize", "exists", false), EVERYONE),
        case(has("attributes.shoeSize"), NOBODY),
    ];
    check(&app, cases).await;
}

// ---------------------------------------------------------------------------------------
// Nesting.
// ---------------------------------------------------------------------------------------

async fn rules_nest_with_all_any_and_not(app: TestApp) {
    for (name, region, kind, tags) in [
        ("Nan", Some("Shanghai"), "BUSINESS", json!(["alpha"])),
        ("Ou", Some("Shanghai"), "INDIVIDUAL", json!(["beta"])),
        ("Pei", Some("Beijing"), "BUSINESS", json!(["alpha", "beta"])),
        ("Qin", Some("Beijing"), "INDIVIDUAL", json!([])),
        ("Ren", None, "INDIVIDUAL", json!([])),
    ] {
        app.create_customer(json!({ "name": name, "region": region, "kind": kind, "tags": tags }))
            .await;
    }
    let everyone = ["Nan", "Ou", "Pei", "Qin", "Ren"];
    let shanghai = || cond("region", "eq", "Shanghai");
    let beijing = || cond("region", "eq", "Beijing");
    let business = || cond("kind", "eq", "BUSINESS");
    let individual = || cond("kind", "eq", "INDIVIDUAL");
    let alpha = || cond("tags", "contains", "alpha");
    let beta = || cond("tags", "contains", "beta");
    let nested_nots = |depth: usize, rule: Value| (0..depth).fold(rule, |inner, _| not(inner));
    #[rustfmt::skip]
    let cases = vec![
        case(all(vec![]), everyone),
        case(any(vec![]), NOBODY),
        case(not(all(vec![])), NOBODY),
        case(not(any(vec![])), everyone),
        case(all(vec![shanghai()]), ["Nan", "Ou"]),
        case(any(vec![shanghai()]), ["Nan", "Ou"]),
        case(any(vec![shanghai(), shanghai()]), ["Nan", "Ou"]),
        case(all(vec![shanghai(), business()]), ["Nan"]),
        case(any(vec![shanghai(), business()]), ["Nan", "Ou", "Pei"]),
        // Ren has no region: not(eq) matches it, not(not(eq)) does not.
        case(not(shanghai()), ["Pei", "Qin", "Ren"]),
        case(not(not(shanghai())), ["Nan", "Ou"]),
        case(not(not(not(shanghai()))), ["Pei", "Qin", "Ren"]),
        case(nested_nots(8, shanghai()), ["Nan", "Ou"]),
        case(not(cond("region", "neq", "Shanghai")), ["Nan", "Ou"]),
        case(all(vec![any(vec![alpha(), beta()]), not(business())]), ["Ou"]),
        case(
            any(vec![all(vec![beijing(), alpha()]), all(vec![shanghai(), individual()])]),
            ["Ou", "Pei"],
        ),
        case(not(any(vec![shanghai(), beijing()])), ["Ren"]),
        case(not(all(vec![has("region"), individual()])), ["Nan", "Pei", "Ren"]),
        case(all(vec![all(vec![any(vec![beijing()])])]), ["Pei", "Qin"]),
        case(all(vec![all(vec![]), beijing()]), ["Pei", "Qin"]),
        case(all(vec![any(vec![]), beijing()]), NOBODY),
        case(any(vec![any(vec![]), beijing()]), ["Pei", "Qin"]),
        case(any(vec![all(vec![]), beijing()]), everyone),
        case(
            all(vec![
                not(cond("tags", "in", json!(["alpha"]))),
                cond("tags", "nin", json!(["alpha"])),
            ]),
            ["Ou", "Qin", "Ren"],
        ),
        case(
            any(vec![
                all(vec![business(), not(alpha())]),
                all(vec![individual(), not(has("tags")), not(has("region"))]),
            ]),
            ["Ren"],
        ),
    ];
    check(&app, cases).await;

    // A saved segment with a nested rule has the members its preview shows.
    let id = create_dynamic(
        &app,
        "Beijing or tagged beta",
        any(vec![beijing(), all(vec![beta(), not(business())])]),
    )
    .await;
    assert_eq!(members(&app, &id).await, ["Ou", "Pei", "Qin"]);
}

// ---------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------

async fn bad_rules_are_refused_naming_the_bad_part(app: TestApp) {
    let region = || cond("region", "eq", "Shanghai");
    // (rule, path below the rule, phrase the message must contain; "" when the
    // contract names none)
    #[rustfmt::skip]
    let cases: Vec<(Value, &str, &str)> = vec![
        (cond("colour", "eq", "red"), ".field", "unknown field \"colour\""),
        (cond("Region", "eq", "Shanghai"), ".field", "unknown field \"Region\""),
        (json!({ "field": 5, "op": "eq", "value": 1 }), ".field", ""),
        (
            any(vec![not(cond("colour", "eq", "red"))]),
            ".any[0].not.field",
            "unknown field \"colour\"",
        ),
        (
            not(all(vec![region(), cond("colour", "eq", 1)])),
            ".not.all[1].field",
            "unknown field \"colour\"",
        ),
        (cond("region", "like", "Shang%"), ".op", "unknown operator \"like\""),
        (
            all(vec![region(), cond("region", "like", "x")]),
            ".all[1].op",
            "unknown operator \"like\"",
        ),
        // Operators that do not apply to the field.
        (cond("tags", "gt", "web"), ".op", ""),
        (cond("tags", "eq", "web"), ".op", ""),
        (cond("tags", "neq", "web"), ".op", ""),
        (cond("score", "contains", 1), ".op", ""),
        (cond("kind", "gt", "BUSINESS"), ".op", ""),
        (cond("region", "gte", "A"), ".op", ""),
        (cond("lifecycleStage", "contains", "NEW"), ".op", ""),
        (cond("createdAt", "contains", "2025"), ".op", ""),
        // Values of the wrong type.
        (
            all(vec![region(), cond("score", "gt", "high")]),
            ".all[1].value",
            "expected a number",
        ),
        (cond("score", "gt", "high"), ".value", "expected a number"),
        (cond("score", "in", json!([1, "x"])), ".value", "expected a number"),
        (cond("purchaseCount", "gte", 2.5), ".value", "expected an integer"),
        (cond("pointsBalance", "in", json!([1, 2.5])), ".value", "expected an integer"),
        (cond("recencyDays", "lt", 1.5), ".value", "expected an integer"),
        (cond("purchaseCount", "in", 3), ".value", ""),
        (cond("netSpend", "gt", "12.3.4"), ".value", ""),
        (cond("netSpend", "gt", true), ".value", ""),
        (cond("createdAt", "gt", "yesterday"), ".value", ""),
        (cond("createdAt", "gt", "2025-13-01T00:00:00Z"), ".value", ""),
        (cond("birthday", "eq", "1990-02-30"), ".value", ""),
        (cond("birthday", "eq", "12/04/1985"), ".value", ""),
        (cond("lifecycleStage", "eq", "SLEEPING"), ".value", ""),
        (cond("kind", "eq", "ROBOT"), ".value", ""),
        (cond("abcClass", "eq", "D"), ".value", ""),
        (cond("rfmSegment", "eq", "WHALES"), ".value", ""),
        (cond("tier", "eq", "gold"), ".value", "no tier has key \"gold\""),
        (cond("tier", "in", json!(["regular", "gold"])), ".value", "no tier has key \"gold\""),
        (cond("tier", "gte", "gold"), ".value", "no tier has key \"gold\""),
        (cond("region", "eq", 5), ".value", ""),
        (cond("industry", "contains", json!(["retail"])), ".value", ""),
        (cond("tags", "contains", json!(["web", 1])), ".value", ""),
        (cond("tags", "contains", 5), ".value", ""),
        (cond("region", "exists", "yes"), ".value", ""),
        (cond("attributes.plan", "eq", json!({ "a": 1 })), ".value", ""),
        (cond("attributes.plan", "eq", json!(["gold"])), ".value", ""),
        (cond("attributes.plan", "eq", Value::Null), ".value", ""),
        (cond("region", "in", json!([])), ".value", "expected a non-empty array"),
        (cond("tags", "nin", json!([])), ".value", "expected a non-empty array"),
        // Bad attribute paths.
        (has("attributes.bad key"), ".field", ""),
        (has("attributes."), ".field", ""),
        (has("attributes.a..b"), ".field", ""),
        (has("attributes.a.b.c.d.e.f"), ".field", ""),
        // Bad shapes.
        (json!({ "all": region() }), ".all", ""),
        (json!({ "any": "Shanghai" }), ".any", ""),
        (json!({ "not": [] }), ".not", ""),
        (json!({ "all": [region(), "Shanghai"] }), ".all[1]", ""),
        (json!("Shanghai"), "", ""),
        (json!(42), "", ""),
        (json!([region()]), "", ""),
        (json!({}), "", ""),
        (json!({ "all": [], "any": [] }), "", ""),
        (json!({ "all": [], "note": "x" }), "", ""),
        (json!({ "field": "region", "op": "eq", "value": "x", "extra": 1 }), "", ""),
        (json!({ "field": "region", "op": "eq" }), "", ""),
        (json!({ "field": "region", "value": "x" }), "", ""),
        (json!({ "op": "eq", "value": "x" }), "", ""),
        // Limits: nesting, conditions, list lengths.
        (
            (0..40).fold(region(), |inner, _| not(inner)),
            "",
            "",
        ),
        (all(vec![cond("score", "gte", 0); 257]), "", ""),
        (
            cond("purchaseCount", "in", (0..1001).collect::<Vec<i64>>()),
            ".value",
            "",
        ),
    ];

    let token = app.admin();
    let mut failures = Vec::new();
    for (i, (rule, at, phrase)) in cases.iter().enumerate() {
        let input = json!({ "name": format!("Bad rule {i}"), "kind": "DYNAMIC", "rule": rule });
        let created = try_create(&app, &token, input).await;
        if let Some(problem) = refusal_problem(&created, &format!("input.rule{at}"), phrase) {
            failures.push(format!("createSegment {rule}: {problem}"));
        }
        let previewed = app
            .gql(Some(&token), PREVIEW, json!({ "rule": rule }))
            .await;
        if let Some(problem) = refusal_problem(&previewed, &format!("rule{at}"), phrase) {
            failures.push(format!("segmentPreview {rule}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} refusals were wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let count = app.ok("{ segments { totalCount } }", json!({})).await;
    assert_eq!(count["segments"]["totalCount"], 0, "nothing was saved");

    // The limits' other side is accepted.
    app.create_customer(json!({ "name": "Li Wei" })).await;
    #[rustfmt::skip]
    let cases = vec![
        case(all(vec![cond("score", "gte", 0); 256]), ["Li Wei"]),
        case(
            cond("purchaseCount", "in", (0..1000).collect::<Vec<i64>>()),
            ["Li Wei"],
        ),
        case((0..10).fold(has("score"), |inner, _| not(inner)), ["Li Wei"]),
    ];
    check(&app, cases).await;

    // updateSegment names the rule the same way, and changes nothing.
    let id = create_dynamic(&app, "Scored", has("score")).await;
    let body = try_update(
        &app,
        &token,
        &id,
        json!({ "name": "Scored", "kind": "DYNAMIC", "rule": all(vec![has("score"), cond("score", "gt", "high")]) }),
    )
    .await;
    if let Some(problem) = refusal_problem(&body, "input.rule.all[1].value", "expected a number") {
        panic!("updateSegment: {problem}");
    }
    assert_eq!(segment(&app, &id).await["rule"], has("score"));
}

async fn segment_inputs_are_validated(app: TestApp) {
    let token = app.admin();
    let rule = cond("region", "eq", "Shanghai");
    let refused = |body: &Value, path: &str| {
        let message = assert_error(body, "BAD_USER_INPUT");
        assert!(message.starts_with(path), "{path}: {message}");
    };

    // A DYNAMIC segment needs a rule; a STATIC one takes none.
    let body = try_create(
        &app,
        &token,
        json!({ "name": "No rule", "kind": "DYNAMIC" }),
    )
    .await;
    refused(&body, "input.rule");
    let body = try_create(
        &app,
        &token,
        json!({ "name": "Null rule", "kind": "DYNAMIC", "rule": null }),
    )
    .await;
    refused(&body, "input.rule");
    let body = try_create(
        &app,
        &token,
        json!({ "name": "List with a rule", "kind": "STATIC", "rule": rule }),
    )
    .await;
    refused(&body, "input.rule");
    // Names.
    for name in ["", "   "] {
        let body = try_create(
            &app,
            &token,
            json!({ "name": name, "kind": "DYNAMIC", "rule": rule }),
        )
        .await;
        refused(&body, "input.name");
    }
    let body = try_create(
        &app,
        &token,
        json!({ "name": "n".repeat(201), "kind": "STATIC" }),
    )
    .await;
    assert_error(&body, "BAD_USER_INPUT");
    let count = app.ok("{ segments { totalCount } }", json!({})).await;
    assert_eq!(count["segments"]["totalCount"], 0, "nothing was saved");

    let long = create(&app, json!({ "name": "n".repeat(200), "kind": "STATIC" })).await;
    assert_eq!(long["name"], "n".repeat(200));
    let shanghai = create_dynamic(&app, "Shanghai", rule.clone()).await;
    let list = create_static(&app, "Trade fair").await;

    // Names are unique, whatever the kind.
    for input in [
        json!({ "name": "Shanghai", "kind": "STATIC" }),
        json!({ "name": "Shanghai", "kind": "DYNAMIC", "rule": rule }),
    ] {
        assert_error(&try_create(&app, &token, input).await, "CONFLICT");
    }
    let body = try_update(
        &app,
        &token,
        &list,
        json!({ "name": "Shanghai", "kind": "STATIC" }),
    )
    .await;
    assert_error(&body, "CONFLICT");
    // Keeping one's own name is fine.
    let same = update(
        &app,
        &shanghai,
        json!({ "name": "Shanghai", "kind": "DYNAMIC", "rule": rule }),
    )
    .await;
    assert_eq!(same["name"], "Shanghai");

    // The kind cannot change; an update can neither drop a DYNAMIC segment's rule nor
    // give a STATIC one a rule; a name must not be blank.
    let refusals = [
        (
            &shanghai,
            json!({ "name": "Shanghai", "kind": "STATIC" }),
            "input.kind",
        ),
        (
            &list,
            json!({ "name": "Trade fair", "kind": "DYNAMIC", "rule": rule }),
            "input.kind",
        ),
        (
            &shanghai,
            json!({ "name": "Shanghai", "kind": "DYNAMIC", "rule": null }),
            "input.rule",
        ),
        (
            &list,
            json!({ "name": "Trade fair", "kind": "STATIC", "rule": rule }),
            "input.rule",
        ),
        (
            &list,
            json!({ "name": " ", "kind": "STATIC" }),
            "input.name",
        ),
    ];
    for (id, input, field) in refusals {
        refused(&try_update(&app, &token, id, input).await, field);
    }
    assert_eq!(segment(&app, &list).await["name"], "Trade fair");
    assert_eq!(segment(&app, &list).await["rule"], Value::Null);
    assert_eq!(segment(&app, &shanghai).await["kind"], "DYNAMIC");

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7().to_string();
    let input = json!({ "name": "Ghost", "kind": "STATIC" });
    assert_error(
        &try_update(&app, &token, &unknown, input.clone()).await,
        "NOT_FOUND",
    );
    assert_error(
        &try_update(&app, &token, "not-an-id", input).await,
        "BAD_USER_INPUT",
    );
    let delete = |id: &str| app.gql(Some(&token), DELETE, json!({ "id": id }));
    assert_error(&delete(&unknown).await, "NOT_FOUND");
    assert_error(&delete("not-an-id").await, "BAD_USER_INPUT");
    assert_eq!(segment(&app, &unknown).await, Value::Null);
    assert_eq!(segment(&app, "not-an-id").await, Value::Null);
    let count = app.ok("{ segments { totalCount } }", json!({})).await;
    assert_eq!(count["segments"]["totalCount"], 3);
}

// ---------------------------------------------------------------------------------------
// CRUD and paging.
// ---------------------------------------------------------------------------------------

async fn segments_are_created_read_updated_and_deleted(app: TestApp) {
    let li = app
        .create_customer(json!({ "name": "Li Wei", "region": "Shanghai" }))
        .await;
    app.create_customer(json!({ "name": "Wang Fang", "region": "Beijing" }))
        .await;
    app.create_customer(json!({ "name": "Zhao Lei", "region": "Shanghai" }))
        .await;

    let rule = all(vec![
        cond("region", "eq", "Shanghai"),
        not(cond("tags", "contains", json!(["churned", "blocked"]))),
        cond("netSpend", "gte", "0.00"),
        cond("attributes.company.size", "in", json!([10, 20])),
    ]);
    let rule = any(vec![rule, cond("region", "eq", "Shanghai")]);
    let created = create(
        &app,
        json!({ "name": "Shanghai", "description": "Everyone in Shanghai", "kind": "DYNAMIC", "rule": rule }),
    )
    .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["name"], "Shanghai");
    assert_eq!(created["description"], "Everyone in Shanghai");
    assert_eq!(created["kind"], "DYNAMIC");
    assert_eq!(created["rule"], rule, "the rule comes back as given");
    assert_eq!(created["memberCount"], 2);
    let at = instant(&created["createdAt"]);
    assert!((Utc::now() - at).num_seconds().abs() < 60, "{created:#}");
    assert_eq!(segment(&app, &id).await, created);
    assert_eq!(members(&app, &id).await, ["Li Wei", "Zhao Lei"]);

    let list = create(&app, json!({ "name": "Trade fair", "kind": "STATIC" })).await;
    let list_id = list["id"].as_str().expect("an id").to_owned();
    assert_eq!(list["description"], Value::Null);
    assert_eq!(list["kind"], "STATIC");
    assert_eq!(list["rule"], Value::Null);
    assert_eq!(list["memberCount"], 0);
    assert_eq!(segment(&app, &list_id).await, list);
    assert_eq!(add(&app, &list_id, json!([li])).await, 1);

    // An update replaces name, description and rule; membership follows the new rule.
    let north = cond("region", "eq", "Beijing");
    let updated = update(
        &app,
        &id,
        json!({ "name": "Beijing", "description": "Moved north", "kind": "DYNAMIC", "rule": north }),
    )
    .await;
    assert_eq!(
        updated,
        json!({
            "id": id, "name": "Beijing", "description": "Moved north", "kind": "DYNAMIC",
            "rule": north, "memberCount": 1, "createdAt": created["createdAt"]
        })
    );
    assert_eq!(segment(&app, &id).await, updated);
    assert_eq!(members(&app, &id).await, ["Wang Fang"]);
    let cleared = update(
        &app,
        &id,
        json!({ "name": "Beijing", "description": null, "kind": "DYNAMIC", "rule": north }),
    )
    .await;
    assert_eq!(cleared["description"], Value::Null);

    // Renaming a list keeps its members.
    let renamed = update(
        &app,
        &list_id,
        json!({ "name": "Trade fair 2025", "description": "Met at the booth", "kind": "STATIC" }),
    )
    .await;
    assert_eq!(renamed["name"], "Trade fair 2025");
    assert_eq!(renamed["description"], "Met at the booth");
    assert_eq!(renamed["memberCount"], 1);
    assert_eq!(segments_of(&app, &li).await, ["Trade fair 2025"]);

    // Deletion.
    let token = app.admin();
    let deleted = app.ok(DELETE, json!({ "id": list_id })).await;
    assert_eq!(deleted["deleteSegment"], true);
    assert_eq!(segment(&app, &list_id).await, Value::Null);
    assert_eq!(segments_of(&app, &li).await, Vec::<String>::new());
    let filtered = app
        .ok(
            "query($id: ID!) { customers(filter: { segmentId: $id }) { totalCount nodes { id } } }",
            json!({ "id": list_id }),
        )
        .await;
    assert_eq!(
        filtered["customers"],
        json!({ "totalCount": 0, "nodes": [] })
    );
    let body = try_update(
        &app,
        &token,
        &list_id,
        json!({ "name": "Back", "kind": "STATIC" }),
    )
    .await;
    assert_error(&body, "NOT_FOUND");
    let body = app
        .gql(Some(&token), DELETE, json!({ "id": list_id }))
        .await;
    assert_error(&body, "NOT_FOUND");
    let body = try_members(&app, &token, ADD, &list_id, json!([li])).await;
    assert_error(&body, "NOT_FOUND");
    let remaining = app
        .ok("{ segments { totalCount nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        remaining["segments"],
        json!({ "totalCount": 1, "nodes": [{ "id": id }] })
    );
    // The name of a deleted segment is free again.
    create_static(&app, "Trade fair 2025").await;
}

async fn segments_are_listed_oldest_first_in_pages(app: TestApp) {
    for (i, name) in ["S1", "S2", "S3", "S4", "S5"].into_iter().enumerate() {
        if i % 2 == 0 {
            create_static(&app, name).await;
        } else {
            create_dynamic(&app, name, has("score")).await;
        }
    }
    let page = |first: Option<i64>, after: Value| {
        app.ok(SEGMENT_PAGE, json!({ "first": first, "after": after }))
    };
    let one = read_page(&page(Some(2), Value::Null).await["segments"]);
    assert_eq!(one.names, ["S1", "S2"]);
    assert_eq!(
        (
            one.total.clone(),
            one.has_next.clone(),
            one.has_previous.clone()
        ),
        (json!(5), json!(true), json!(false))
    );
    let two = read_page(&page(Some(2), one.end_cursor.clone()).await["segments"]);
    assert_eq!(two.names, ["S3", "S4"]);
    assert_eq!(
        (
            two.total.clone(),
            two.has_next.clone(),
            two.has_previous.clone()
        ),
        (json!(5), json!(true), json!(true))
    );
    let three = read_page(&page(Some(2), two.end_cursor.clone()).await["segments"]);
    assert_eq!(three.names, ["S5"]);
    assert_eq!(
        (
            three.total.clone(),
            three.has_next.clone(),
            three.has_previous.clone()
        ),
        (json!(5), json!(false), json!(true))
    );
    let past = read_page(&page(Some(2), three.end_cursor.clone()).await["segments"]);
    assert!(past.names.is_empty());
    assert_eq!(past.has_next, false);
    assert_eq!(past.total, 5);
    let whole = read_page(&page(None, Value::Null).await["segments"]);
    assert_eq!(whole.names, ["S1", "S2", "S3", "S4", "S5"]);
    assert_eq!(whole.has_next, false);

    let body = app
        .gql(Some(&app.admin()), SEGMENT_PAGE, json!({ "first": 101 }))
        .await;
    assert_error(&body, "BAD_USER_INPUT");
}

// ---------------------------------------------------------------------------------------
// Live membership of DYNAMIC segments.
// ---------------------------------------------------------------------------------------

async fn dynamic_membership_follows_customer_changes_at_once(app: TestApp) {
    let mut people = Vec::new();
    for (name, region, kind, purchases) in [
        ("An", "Shanghai", "INDIVIDUAL", 2),
        ("Bai", "Shanghai", "INDIVIDUAL", 1),
        ("Chen", "Beijing", "BUSINESS", 3),
        ("Du", "Shanghai", "BUSINESS", 2),
    ] {
        let id = app
            .create_customer(json!({ "name": name, "region": region, "kind": kind }))
            .await;
        for _ in 0..purchases {
            purchase_now(&app, &id, "100.00").await;
        }
        people.push((name, id));
    }
    let id_of = |name: &str| {
        people
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a customer")
            .1
            .clone()
    };
    let everyone: Vec<(&str, &str)> = people.iter().map(|(n, id)| (*n, id.as_str())).collect();
    let (an, bai, chen, du) = (id_of("An"), id_of("Bai"), id_of("Chen"), id_of("Du"));

    let regulars = create_dynamic(
        &app,
        "Shanghai regulars",
        all(vec![
            cond("region", "eq", "Shanghai"),
            cond("purchaseCount", "gte", 2),
        ]),
    )
    .await;
    let rich = create_dynamic(&app, "Points rich", cond("pointsBalance", "gte", 1000)).await;
    let vips = create_dynamic(&app, "Tagged vip", cond("tags", "contains", "vip")).await;

    assert_members(&app, &regulars, &everyone, &["An", "Du"], "at first").await;
    assert_members(&app, &rich, &everyone, &[], "at first").await;
    assert_members(&app, &vips, &everyone, &[], "at first").await;

    // The segment filter is AND-ed with the other filters.
    let filtered = |filter: Value| {
        let app = &app;
        async move {
            let data = app
                .ok(
                    "query($filter: CustomerFilter) { customers(filter: $filter, first: 100) { totalCount nodes { name } } }",
                    json!({ "filter": filter }),
                )
                .await;
            let listed = names(&data["customers"]["nodes"]);
            assert_eq!(data["customers"]["totalCount"], listed.len());
            listed
        }
    };
    assert_eq!(
        filtered(json!({ "segmentId": regulars, "kinds": ["BUSINESS"] })).await,
        ["Du"]
    );
    assert_eq!(
        filtered(json!({ "segmentId": regulars, "kinds": ["INDIVIDUAL"] })).await,
        ["An"]
    );
    assert_eq!(
        filtered(json!({ "segmentId": regulars, "search": "an" })).await,
        ["An"]
    );
    assert_eq!(
        filtered(json!({ "segmentId": regulars, "tags": ["vip"] })).await,
        Vec::<String>::new()
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        filtered(json!({ "segmentId": unknown })).await,
        Vec::<String>::new(),
        "an unknown segment has no members"
    );

    // A profile change moves a customer in...
    update_customer(&app, &chen, json!({ "region": "Shanghai" })).await;
    assert_members(
        &app,
        &regulars,
        &everyone,
        &["An", "Chen", "Du"],
        "after Chen moved to Shanghai",
    )
    .await;
    // ...a purchase too...
    purchase_now(&app, &bai, "100.00").await;
    assert_members(
        &app,
        &regulars,
        &everyone,
        &["An", "Bai", "Chen", "Du"],
        "after Bai's second purchase",
    )
    .await;
    // ...and out.
    update_customer(&app, &an, json!({ "region": "Suzhou" })).await;
    assert_members(
        &app,
        &regulars,
        &everyone,
        &["Bai", "Chen", "Du"],
        "after An moved to Suzhou",
    )
    .await;
    assert_eq!(
        filtered(json!({ "segmentId": regulars, "kinds": ["BUSINESS"] })).await,
        ["Chen", "Du"]
    );

    // Points adjustments (An has 200 points from purchases, Du 200).
    assert_eq!(adjust(&app, &an, 900).await, 1100);
    assert_members(&app, &rich, &everyone, &["An"], "after An got 900 points").await;
    assert_eq!(adjust(&app, &du, 800).await, 1000);
    assert_members(
        &app,
        &rich,
        &everyone,
        &["An", "Du"],
        "after Du got 800 points",
    )
    .await;
    assert_eq!(adjust(&app, &an, -200).await, 900);
    assert_members(&app, &rich, &everyone, &["Du"], "after An lost 200 points").await;

    // Tags.
    update_customer(&app, &bai, json!({ "tags": ["vip"] })).await;
    assert_members(&app, &vips, &everyone, &["Bai"], "after Bai was tagged").await;

    // Customer.segments lists every segment the customer is in, by name.
    assert_eq!(segments_of(&app, &an).await, Vec::<String>::new());
    assert_eq!(
        segments_of(&app, &bai).await,
        ["Shanghai regulars", "Tagged vip"]
    );
    assert_eq!(segments_of(&app, &chen).await, ["Shanghai regulars"]);
    assert_eq!(
        segments_of(&app, &du).await,
        ["Points rich", "Shanghai regulars"]
    );
    let data = app
        .ok(
            "{ customers(first: 100) { nodes { name segments { id name kind } } } }",
            json!({}),
        )
        .await;
    let du_node = &data["customers"]["nodes"][3];
    assert_eq!(du_node["name"], "Du");
    assert_eq!(
        du_node["segments"],
        json!([
            { "id": rich, "name": "Points rich", "kind": "DYNAMIC" },
            { "id": regulars, "name": "Shanghai regulars", "kind": "DYNAMIC" },
        ])
    );
}

// ---------------------------------------------------------------------------------------
// STATIC lists.
// ---------------------------------------------------------------------------------------

async fn static_lists_are_edited_by_hand(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["Amy", "Ben", "Cal", "Dee", "Eli", "Fay"] {
        ids.push(app.create_customer(json!({ "name": name })).await);
    }
    let [amy, ben, cal, dee, eli, fay] = <[String; 6]>::try_from(ids).expect("six customers");
    let everyone = [
        ("Amy", amy.as_str()),
        ("Ben", ben.as_str()),
        ("Cal", cal.as_str()),
        ("Dee", dee.as_str()),
        ("Eli", eli.as_str()),
        ("Fay", fay.as_str()),
    ];
    let list = create_static(&app, "Trade fair").await;
    assert_members(&app, &list, &everyone, &[], "at first").await;

    // Duplicates within a call, and members added again, are no-ops.
    assert_eq!(add(&app, &list, json!([amy, ben, ben, cal])).await, 3);
    assert_members(
        &app,
        &list,
        &everyone,
        &["Amy", "Ben", "Cal"],
        "after the first add",
    )
    .await;
    assert_eq!(add(&app, &list, json!([ben, dee])).await, 4);
    assert_eq!(add(&app, &list, json!([ben, dee])).await, 4);
    assert_members(
        &app,
        &list,
        &everyone,
        &["Amy", "Ben", "Cal", "Dee"],
        "after adding again",
    )
    .await;

    // Removing non-members is a no-op too.
    assert_eq!(remove(&app, &list, json!([ben, fay])).await, 3);
    assert_eq!(remove(&app, &list, json!([ben, fay, ben])).await, 3);
    assert_members(
        &app,
        &list,
        &everyone,
        &["Amy", "Cal", "Dee"],
        "after removing Ben",
    )
    .await;

    let token = app.admin();
    // All or nothing: an unknown customer adds nobody.
    let unknown = uuid::Uuid::now_v7().to_string();
    let body = try_members(&app, &token, ADD, &list, json!([eli, unknown])).await;
    assert_error(&body, "NOT_FOUND");
    let body = try_members(&app, &token, ADD, &list, json!([eli, "not-an-id"])).await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.contains("customerIds[1]"), "{message}");
    let body = try_members(&app, &token, REMOVE, &list, json!([amy, "not-an-id"])).await;
    assert_error(&body, "BAD_USER_INPUT");
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let body = try_members(&app, &token, ADD, &list, json!(too_many)).await;
    assert_error(&body, "BAD_USER_INPUT");
    assert_members(
        &app,
        &list,
        &everyone,
        &["Amy", "Cal", "Dee"],
        "after refused adds",
    )
    .await;

    // Unknown and malformed segments.
    let body = try_members(&app, &token, ADD, &unknown, json!([eli])).await;
    assert_error(&body, "NOT_FOUND");
    let body = try_members(&app, &token, REMOVE, &unknown, json!([eli])).await;
    assert_error(&body, "NOT_FOUND");
    let body = try_members(&app, &token, ADD, "not-an-id", json!([eli])).await;
    assert_error(&body, "BAD_USER_INPUT");

    // DYNAMIC segments are not edited by hand.
    let dynamic = create_dynamic(&app, "Everyone", all(vec![])).await;
    let body = try_members(&app, &token, ADD, &dynamic, json!([eli])).await;
    assert_error(&body, "CONFLICT");
    let body = try_members(&app, &token, REMOVE, &dynamic, json!([amy])).await;
    assert_error(&body, "CONFLICT");
    assert_eq!(members(&app, &dynamic).await.len(), 6);

    // Customer.segments lists both kinds, by name.
    assert_eq!(segments_of(&app, &amy).await, ["Everyone", "Trade fair"]);
    assert_eq!(segments_of(&app, &ben).await, ["Everyone"]);
    let second = create_static(&app, "Annual dinner").await;
    assert_eq!(add(&app, &second, json!([amy])).await, 1);
    assert_eq!(
        segments_of(&app, &amy).await,
        ["Annual dinner", "Everyone", "Trade fair"]
    );

    // Members are listed oldest first, in pages.
    assert_eq!(add(&app, &list, json!([fay, eli])).await, 5);
    let page = |first: i64, after: Value| {
        app.ok(
            MEMBER_PAGE,
            json!({ "id": list, "first": first, "after": after }),
        )
    };
    let one = page(2, Value::Null).await;
    assert_eq!(one["segment"]["memberCount"], 5);
    let one = read_page(&one["segment"]["members"]);
    assert_eq!(one.names, ["Amy", "Cal"]);
    assert_eq!(
        (
            one.total.clone(),
            one.has_next.clone(),
            one.has_previous.clone()
        ),
        (json!(5), json!(true), json!(false))
    );
    let two = read_page(&page(2, one.end_cursor.clone()).await["segment"]["members"]);
    assert_eq!(two.names, ["Dee", "Eli"]);
    assert_eq!(
        (
            two.total.clone(),
            two.has_next.clone(),
            two.has_previous.clone()
        ),
        (json!(5), json!(true), json!(true))
    );
    let three = read_page(&page(2, two.end_cursor.clone()).await["segment"]["members"]);
    assert_eq!(three.names, ["Fay"]);
    assert_eq!(
        (
            three.total.clone(),
            three.has_next.clone(),
            three.has_previous.clone()
        ),
        (json!(5), json!(false), json!(true))
    );
    assert_members(
        &app,
        &list,
        &everyone,
        &["Amy", "Cal", "Dee", "Eli", "Fay"],
        "after adding Eli and Fay",
    )
    .await;
}

async fn erased_customers_leave_every_segment(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["Amy", "Ben", "Cal"] {
        ids.push(app.create_customer(json!({ "name": name })).await);
    }
    let [amy, ben, cal] = <[String; 3]>::try_from(ids).expect("three customers");
    let everyone = [
        ("Amy", amy.as_str()),
        ("Ben", ben.as_str()),
        ("Cal", cal.as_str()),
    ];
    let list = create_static(&app, "Trade fair").await;
    assert_eq!(add(&app, &list, json!([amy, ben, cal])).await, 3);
    let all_customers = create_dynamic(&app, "Everyone", all(vec![])).await;
    let individuals = create_dynamic(&app, "Individuals", cond("kind", "eq", "INDIVIDUAL")).await;
    let no_industry = create_dynamic(&app, "No industry", cond("industry", "exists", false)).await;
    for segment_id in [&list, &all_customers, &individuals, &no_industry] {
        assert_members(
            &app,
            segment_id,
            &everyone,
            &["Amy", "Ben", "Cal"],
            "before the erasure",
        )
        .await;
    }

    let erased = app
        .ok(
            "mutation($id: ID!) { eraseCustomer(id: $id) }",
            json!({ "id": ben }),
        )
        .await;
    assert_eq!(erased["eraseCustomer"], true);
    for segment_id in [&list, &all_customers, &individuals, &no_industry] {
        assert_members(
            &app,
            segment_id,
            &everyone,
            &["Amy", "Cal"],
            "after Ben was erased",
        )
        .await;
    }
    assert_eq!(segments_of(&app, &ben).await, Vec::<String>::new());
    // An erased customer cannot be added back.
    let body = try_members(&app, &app.admin(), ADD, &list, json!([ben])).await;
    assert_error(&body, "NOT_FOUND");
    assert_eq!(members(&app, &list).await, ["Amy", "Cal"]);
}

// ---------------------------------------------------------------------------------------
// Roles.
// ---------------------------------------------------------------------------------------

const SEGMENTS_LIST: &str = "{ segments { totalCount nodes { name } } }";
const ONE_SEGMENT: &str =
    "query($id: ID!) { segment(id: $id) { name memberCount members { nodes { name } } } }";
const PREVIEW_ALL: &str = "{ segmentPreview(rule: { all: [] }) { totalCount } }";

async fn staff_manage_segments(app: TestApp) {
    let staff = app.staff();
    let li = app
        .create_customer(json!({ "name": "Li Wei", "region": "Shanghai" }))
        .await;
    let created = app
        .ok_as(
            &staff,
            &create_mutation(),
            json!({ "input": { "name": "Shanghai", "kind": "DYNAMIC", "rule": cond("region", "eq", "Shanghai") } }),
        )
        .await;
    let dynamic = created["createSegment"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let preview = app.ok_as(&staff, PREVIEW_ALL, json!({})).await;
    assert_eq!(preview["segmentPreview"]["totalCount"], 1);
    let updated = app
        .ok_as(
            &staff,
            &update_mutation(),
            json!({ "id": dynamic, "input": { "name": "Shanghai", "description": "By staff", "kind": "DYNAMIC", "rule": cond("region", "eq", "Shanghai") } }),
        )
        .await;
    assert_eq!(updated["updateSegment"]["description"], "By staff");
    let list = app
        .ok_as(
            &staff,
            &create_mutation(),
            json!({ "input": { "name": "Trade fair", "kind": "STATIC" } }),
        )
        .await["createSegment"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let added = app
        .ok_as(
            &staff,
            ADD,
            json!({ "segmentId": list, "customerIds": [li] }),
        )
        .await;
    assert_eq!(added["addSegmentMembers"]["memberCount"], 1);
    let read = app.ok_as(&staff, ONE_SEGMENT, json!({ "id": list })).await;
    assert_eq!(
        read["segment"]["members"]["nodes"],
        json!([{ "name": "Li Wei" }])
    );
    let of_li = app
        .ok_as(&staff, CUSTOMER_SEGMENTS, json!({ "id": li }))
        .await;
    assert_eq!(
        names(&of_li["customer"]["segments"]),
        ["Shanghai", "Trade fair"]
    );
    let removed = app
        .ok_as(
            &staff,
            REMOVE,
            json!({ "segmentId": list, "customerIds": [li] }),
        )
        .await;
    assert_eq!(removed["removeSegmentMembers"]["memberCount"], 0);
    let listed = app.ok_as(&staff, SEGMENTS_LIST, json!({})).await;
    assert_eq!(listed["segments"]["totalCount"], 2);
    for id in [&dynamic, &list] {
        let deleted = app.ok_as(&staff, DELETE, json!({ "id": id })).await;
        assert_eq!(deleted["deleteSegment"], true);
    }
    let listed = app.ok(SEGMENTS_LIST, json!({})).await;
    assert_eq!(listed["segments"]["totalCount"], 0);
}

async fn partners_read_segments_with_customers_read_and_never_manage_them(app: TestApp) {
    let li = app
        .create_customer(json!({ "name": "Li Wei", "region": "Shanghai" }))
        .await;
    let dynamic = create_dynamic(&app, "Shanghai", cond("region", "eq", "Shanghai")).await;
    let list = create_static(&app, "Trade fair").await;
    assert_eq!(add(&app, &list, json!([li])).await, 1);

    for scope in ["customers:read", "customers:read customers:write"] {
        let reader = app.partner(scope);
        let one = app
            .ok_as(&reader, ONE_SEGMENT, json!({ "id": dynamic }))
            .await;
        assert_eq!(
            one["segment"],
            json!({ "name": "Shanghai", "memberCount": 1, "members": { "nodes": [{ "name": "Li Wei" }] } }),
            "{scope}"
        );
        let listed = app.ok_as(&reader, SEGMENTS_LIST, json!({})).await;
        assert_eq!(
            listed["segments"],
            json!({ "totalCount": 2, "nodes": [{ "name": "Shanghai" }, { "name": "Trade fair" }] }),
            "{scope}"
        );
        let of_li = app
            .ok_as(&reader, CUSTOMER_SEGMENTS, json!({ "id": li }))
            .await;
        assert_eq!(
            names(&of_li["customer"]["segments"]),
            ["Shanghai", "Trade fair"],
            "{scope}"
        );
    }

    let rule = cond("region", "eq", "Beijing");
    for scope in [
        "customers:read customers:write",
        "customers:read customers:write interactions:write points:write rewards:redeem events:subscribe",
    ] {
        let partner = app.partner(scope);
        let attempts = [
            try_create(
                &app,
                &partner,
                json!({ "name": "Beijing", "kind": "DYNAMIC", "rule": rule }),
            )
            .await,
            try_create(
                &app,
                &partner,
                json!({ "name": "Partner list", "kind": "STATIC" }),
            )
            .await,
            try_update(
                &app,
                &partner,
                &dynamic,
                json!({ "name": "Beijing", "kind": "DYNAMIC", "rule": rule }),
            )
            .await,
            app.gql(Some(&partner), DELETE, json!({ "id": dynamic }))
                .await,
            app.gql(Some(&partner), DELETE, json!({ "id": list })).await,
            try_members(&app, &partner, ADD, &list, json!([li])).await,
            try_members(&app, &partner, REMOVE, &list, json!([li])).await,
            app.gql(Some(&partner), PREVIEW_ALL, json!({})).await,
        ];
        for body in &attempts {
            assert_eq!(error_code(body), Some("FORBIDDEN"), "{scope}: {body:#}");
        }
    }
    // Nothing changed.
    let listed = app.ok(SEGMENTS_LIST, json!({})).await;
    assert_eq!(
        listed["segments"],
        json!({ "totalCount": 2, "nodes": [{ "name": "Shanghai" }, { "name": "Trade fair" }] })
    );
    assert_eq!(
        segment(&app, &dynamic).await["rule"],
        cond("region", "eq", "Shanghai")
    );
    assert_eq!(members(&app, &list).await, ["Li Wei"]);

    // Without customers:read, segments are not readable.
    for scope in ["interactions:write", "customers:write points:write", ""] {
        let partner = app.partner(scope);
        let body = app.gql(Some(&partner), SEGMENTS_LIST, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{scope:?}: {body:#}");
        let body = app
            .gql(Some(&partner), ONE_SEGMENT, json!({ "id": dynamic }))
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{scope:?}: {body:#}");
    }
    let body = app.gql(None, SEGMENTS_LIST, json!({})).await;
    assert_error(&body, "UNAUTHENTICATED");
}

async fn customers_cannot_see_or_manage_segments(app: TestApp) {
    let me = app
        .create_customer(json!({ "name": "Chen Jing", "region": "Shanghai" }))
        .await;
    let dynamic = create_dynamic(&app, "Shanghai", cond("region", "eq", "Shanghai")).await;
    let list = create_static(&app, "Trade fair").await;
    let token = app.customer_token(&me);

    // Its own customer is readable, but not the segments it is in.
    let own = app
        .ok_as(
            &token,
            "query($id: ID!) { customer(id: $id) { name } }",
            json!({ "id": me }),
        )
        .await;
    assert_eq!(own["customer"]["name"], "Chen Jing");
    let reads = [
        app.gql(Some(&token), SEGMENTS_LIST, json!({})).await,
        app.gql(Some(&token), ONE_SEGMENT, json!({ "id": dynamic }))
            .await,
        app.gql(Some(&token), CUSTOMER_SEGMENTS, json!({ "id": me }))
            .await,
        app.gql(
            Some(&token),
            "{ viewer { customer { segments { name } } } }",
            json!({}),
        )
        .await,
        app.gql(
            Some(&token),
            "query($id: ID!) { customers(filter: { segmentId: $id }) { totalCount } }",
            json!({ "id": dynamic }),
        )
        .await,
    ];
    for body in &reads {
        assert_error(body, "FORBIDDEN");
        assert!(
            !body.to_string().contains("Shanghai\""),
            "no segment data leaks: {body}"
        );
    }
    let writes = [
        try_create(&app, &token, json!({ "name": "Mine", "kind": "STATIC" })).await,
        try_update(
            &app,
            &token,
            &list,
            json!({ "name": "Mine", "kind": "STATIC" }),
        )
        .await,
        app.gql(Some(&token), DELETE, json!({ "id": list })).await,
        try_members(&app, &token, ADD, &list, json!([me])).await,
        try_members(&app, &token, REMOVE, &list, json!([me])).await,
        app.gql(Some(&token), PREVIEW_ALL, json!({})).await,
    ];
    for body in &writes {
        assert_error(body, "FORBIDDEN");
    }
    let listed = app.ok(SEGMENTS_LIST, json!({})).await;
    assert_eq!(
        listed["segments"],
        json!({ "totalCount": 2, "nodes": [{ "name": "Shanghai" }, { "name": "Trade fair" }] })
    );
    assert_eq!(members(&app, &list).await, Vec::<String>::new());
}

on_both!(
    rule_operators_on_tier_lifecycle_and_kind,
    rule_operators_on_industry_region_and_tags,
    rule_operators_on_metrics,
    rule_operators_on_dates,
    rule_operators_on_attributes,
    rules_nest_with_all_any_and_not,
    bad_rules_are_refused_naming_the_bad_part,
    segment_inputs_are_validated,
    segments_are_created_read_updated_and_deleted,
    segments_are_listed_oldest_first_in_pages,
    dynamic_membership_follows_customer_changes_at_once,
    static_lists_are_edited_by_hand,
    erased_customers_leave_every_segment,
    staff_manage_segments,
    partners_read_segments_with_customers_read_and_never_manage_them,
    customers_cannot_see_or_manage_segments,
);
