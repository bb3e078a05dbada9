//! Tier progress (`Customer.tierProgress`, `TierChange.breakdown`), end to end: every
//! number the screen shows is checked against what the rules then do — the purchase it
//! names is recorded and upgrades the customer, one unit less does not; the downgrade it
//! announces is what the run as of that date does.
//!
//! The default program: weights recency 0.2, frequency 0.3, monetary 0.3, engagement
//! 0.1, nps 0.1; tiers Potential (0), Regular (35), VIP (70); 30 days of grace.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, instant, on_both, ts};

const BREAKDOWN: &str = "breakdown { indicator value band points weight weighted }";

fn progress_query() -> String {
    format!(
        "query($id: ID!) {{ customer(id: $id) {{ id score tier {{ key }} pointsBalance
            tierProgress {{ score {BREAKDOWN} tier {{ key }} nextTier {{ key }} scoreToNext
                spendToNext purchasesToNext keepsTierUntil downgradeTo {{ key }}
                pointsToNextReward }} }} }}"
    )
}

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { customer { tier { key } } }
}";

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn days_ago(n: i64) -> DateTime<Utc> {
    now() - Duration::days(n)
}

/// Records `inputs` for `id` in one batch; each is (kind, amount, rating, days ago).
async fn history(app: &TestApp, id: &str, inputs: &[(&str, Option<&str>, Option<i32>, i64)]) {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(kind, amount, rating, ago)| {
            json!({ "customerId": id, "kind": kind, "amount": amount, "rating": rating,
                    "occurredAt": ts(days_ago(*ago)) })
        })
        .collect();
    app.ok(
        "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { duplicate } }",
        json!({ "inputs": inputs }),
    )
    .await;
}

/// `count` purchases of `amount` each, `ago` days ago.
fn purchases(
    count: usize,
    amount: &'static str,
    ago: i64,
) -> Vec<(&'static str, Option<&'static str>, Option<i32>, i64)> {
    vec![("PURCHASE", Some(amount), None, ago); count]
}

async fn customer_progress(app: &TestApp, id: &str) -> Value {
    app.ok(&progress_query(), json!({ "id": id })).await["customer"].clone()
}

/// Records a purchase of `amount` now; returns the customer's tier after it.
async fn buy_now(app: &TestApp, id: &str, amount: &str) -> String {
    let data = app
        .ok(
            RECORD,
            json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": amount } }),
        )
        .await;
    data["recordInteraction"]["customer"]["tier"]["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other
            .as_f64()
            .unwrap_or_else(|| panic!("a number: {other}")),
    }
}

/// The `weighted` values add up to the score (up to its rounding to one decimal), and
/// each is points × weight.
#[track_caller]
fn assert_adds_up(breakdown: &Value, score: f64) {
    let parts = breakdown.as_array().expect("a breakdown");
    assert_eq!(parts.len(), 5, "every indicator: {breakdown:#}");
    let sum: f64 = parts.iter().map(|p| number(&p["weighted"])).sum();
    assert!(
        (sum - score).abs() <= 0.05 + 1e-9,
        "the breakdown adds up to {sum}, the score is {score}: {breakdown:#}"
    );
    for part in parts {
        let expected = number(&part["points"]) * number(&part["weight"]);
        assert!(
            (number(&part["weighted"]) - expected).abs() < 1e-9,
            "{part}"
        );
    }
}

async fn evaluate(app: &TestApp, as_of: Option<DateTime<Utc>>, ids: Option<Vec<&str>>) {
    app.ok(
        "mutation($asOf: DateTime, $ids: [ID!]) { evaluateTiers(asOf: $asOf, customerIds: $ids, wait: true) { status } }",
        json!({ "asOf": as_of.map(ts), "ids": ids }),
    )
    .await;
}

/// Customers spread over every band of every indicator: the breakdown names the band,
/// its points and weight, adds up to the score, and the score is the one the run wrote.
async fn the_breakdown_explains_the_score_in_every_band(app: TestApp) {
    let mut ids = Vec::new();
    for name in [
        "Nobody",
        "Recent",
        "Returning",
        "Regular",
        "Loyal",
        "Lapsed",
    ] {
        ids.push(app.create_customer(json!({ "name": name })).await);
    }
    let visit = |n: usize, ago: i64| vec![("VISIT", None, None, ago); n];
    let survey = |rating: i32, ago: i64| vec![("SURVEY", None, Some(rating), ago)];
    // Recent: recency band 0, frequency 3, monetary 3, engagement 2, nps 0.
    history(
        &app,
        &ids[1],
        &[purchases(1, "50", 10), visit(1, 5), survey(9, 5)].concat(),
    )
    .await;
    // Returning: recency 1, frequency 2, monetary 2, engagement 1, nps 1.
    history(
        &app,
        &ids[2],
        &[purchases(2, "600", 60), visit(4, 50), survey(7, 50)].concat(),
    )
    .await;
    // Regular: recency 2, frequency 1, monetary 1, engagement 0, a rating of 3 (no band).
    history(
        &app,
        &ids[3],
        &[purchases(4, "900", 120), visit(12, 100), survey(3, 100)].concat(),
    )
    .await;
    // Loyal: recency 3, frequency 0, monetary 0.
    history(&app, &ids[4], &purchases(12, "1000", 200)).await;
    // Lapsed: its only purchase is outside the 365-day window.
    history(&app, &ids[5], &purchases(1, "80", 400)).await;
    evaluate(&app, None, None).await;

    let mut bands: HashSet<(String, i64)> = HashSet::new();
    for id in &ids {
        let customer = customer_progress(&app, id).await;
        let progress = &customer["tierProgress"];
        let score = number(&progress["score"]);
        assert_eq!(score, number(&customer["score"]), "{customer:#}");
        assert_adds_up(&progress["breakdown"], score);
        for part in progress["breakdown"].as_array().unwrap() {
            if let Some(band) = part["band"].as_i64() {
                bands.insert((part["indicator"].as_str().unwrap().to_owned(), band));
            }
        }
    }
    for (indicator, count) in [
        ("recency", 4),
        ("frequency", 4),
        ("monetary", 4),
        ("engagement", 3),
        ("nps", 2),
    ] {
        for band in 0..count {
            assert!(
                bands.contains(&(indicator.to_owned(), band)),
                "{indicator} band {band} was seen: {bands:?}"
            );
        }
    }

    // The values are the customer's: Returning bought twice 60 days ago for 1,200.
    let returning = customer_progress(&app, &ids[2]).await;
    let part = |customer: &Value, name: &str| {
        customer["tierProgress"]["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["indicator"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(number(&part(&returning, "recency")["value"]), 60.0);
    assert_eq!(number(&part(&returning, "frequency")["value"]), 2.0);
    assert_eq!(number(&part(&returning, "monetary")["value"]), 1200.0);
    assert_eq!(number(&part(&returning, "nps")["value"]), 7.0);
    // Nobody: no purchase, no survey: recency has no value and earns nothing, nps is
    // left out of the mean.
    let nobody = customer_progress(&app, &ids[0]).await;
    assert!(part(&nobody, "recency")["value"].is_null());
    assert_eq!(number(&part(&nobody, "recency")["points"]), 0.0);
    assert_eq!(number(&part(&nobody, "nps")["weight"]), 0.0);
    assert!((number(&part(&nobody, "frequency")["weight"]) - 0.3 / 0.9).abs() < 1e-9);
    // Lapsed: a purchase only outside the window scores like none.
    let lapsed = customer_progress(&app, &ids[5]).await;
    assert!(part(&lapsed, "recency")["value"].is_null());
    assert_eq!(number(&lapsed["tierProgress"]["score"]), 0.0);
}

/// A Regular customer: four purchases of 300 ten days ago (58.9). A purchase now keeps
/// recency at 100 and frequency at 70; only net spend reaching 10,000 lifts the score
/// to VIP (78.9), so 8,800 is the smallest single purchase that does, and 8,799.9999
/// leaves it at 68.9. Purchases of the average order (300): the eighth makes twelve in
/// the window (frequency 100) with 3,600 spent (monetary 70): 78.9; seven give 68.9.
async fn spend_and_purchases_to_next_are_what_recording_them_does(app: TestApp) {
    let mut twins = Vec::new();
    for name in ["Exact", "OneLess", "Steady"] {
        let id = app.create_customer(json!({ "name": name })).await;
        history(&app, &id, &purchases(4, "300", 10)).await;
        twins.push(id);
    }
    let before = customer_progress(&app, &twins[0]).await;
    let progress = &before["tierProgress"];
    assert_eq!(before["tier"]["key"], "regular", "{before:#}");
    assert_eq!(progress["tier"]["key"], "regular");
    assert_eq!(progress["nextTier"]["key"], "vip");
    assert_eq!(number(&progress["score"]), 58.9);
    assert_eq!(number(&progress["scoreToNext"]), 11.1);
    assert_eq!(number(&progress["spendToNext"]), 8800.0, "{progress:#}");
    assert_eq!(progress["purchasesToNext"], 8, "{progress:#}");
    assert!(progress["keepsTierUntil"].is_null() && progress["downgradeTo"].is_null());
    for twin in &twins[1..] {
        assert_eq!(
            customer_progress(&app, twin).await["tierProgress"],
            *progress,
            "twins have the same progress"
        );
    }

    // The amount it names upgrades at once; one unit (0.0001) less does not.
    let spend = progress["spendToNext"]
        .as_str()
        .expect("a Decimal")
        .to_owned();
    assert_eq!(buy_now(&app, &twins[0], &spend).await, "vip");
    assert_eq!(buy_now(&app, &twins[1], "8799.9999").await, "regular");
    // So many purchases of the average order upgrade; one fewer does not.
    let n = progress["purchasesToNext"].as_i64().unwrap();
    for bought in 1..n {
        assert_eq!(
            buy_now(&app, &twins[2], "300").await,
            "regular",
            "after {bought} of {n}"
        );
    }
    assert_eq!(buy_now(&app, &twins[2], "300").await, "vip");

    // At the top there is nothing to reach.
    let top = customer_progress(&app, &twins[0]).await["tierProgress"].clone();
    assert_eq!(top["tier"]["key"], "vip");
    for field in ["nextTier", "scoreToNext", "spendToNext", "purchasesToNext"] {
        assert!(top[field].is_null(), "{field} at the top: {top:#}");
    }
    // The live upgrade kept the breakdown that decided it.
    let change = app
        .ok(
            &format!(
                "query($id: ID!) {{ customer(id: $id) {{ tierHistory(first: 1) {{ nodes {{ reason score {BREAKDOWN} }} }} }} }}"
            ),
            json!({ "id": twins[0] }),
        )
        .await["customer"]["tierHistory"]["nodes"][0]
        .clone();
    assert_eq!(change["reason"], "INTERACTION");
    assert_eq!(number(&change["score"]), 78.9);
    assert_adds_up(&change["breakdown"], 78.9);

    // A manual move holds the tier against live upgrades: no purchase can reach VIP now.
    let held = app.create_customer(json!({ "name": "Held" })).await;
    history(&app, &held, &purchases(4, "300", 10)).await;
    app.ok(
        "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"potential\", note: \"desk\") { id } }",
        json!({ "id": held }),
    )
    .await;
    let held = customer_progress(&app, &held).await["tierProgress"].clone();
    assert_eq!(held["nextTier"]["key"], "regular");
    assert_eq!(
        number(&held["scoreToNext"]),
        0.0,
        "its score already earns it"
    );
    assert!(held["spendToNext"].is_null() && held["purchasesToNext"].is_null());
}

/// A customer moved to VIP by hand whose score does not keep it: the run as of 40 days
/// ago marks it; its progress says it keeps VIP until the grace period ends and drops to
/// Regular then — and the run as of that date does exactly that.
async fn a_marked_customer_sees_when_and_where_it_drops(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Marked" })).await;
    history(&app, &id, &purchases(1, "200", 100)).await;
    let manual = app
        .ok(
            &format!(
                "mutation($id: ID!) {{ setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"goodwill\") {{ reason score {BREAKDOWN} }} }}"
            ),
            json!({ "id": id }),
        )
        .await["setCustomerTier"]
        .clone();
    assert_eq!(manual["reason"], "MANUAL");
    assert_adds_up(&manual["breakdown"], number(&manual["score"]));

    let marked_at = days_ago(40);
    evaluate(&app, Some(marked_at), Some(vec![&id])).await;
    let customer = customer_progress(&app, &id).await;
    assert_eq!(customer["tier"]["key"], "vip", "{customer:#}");
    let progress = &customer["tierProgress"];
    let until = instant(&progress["keepsTierUntil"]);
    assert_eq!(until, marked_at + Duration::days(30), "{progress:#}");
    assert_eq!(progress["downgradeTo"]["key"], "regular", "{progress:#}");
    assert!(progress["nextTier"].is_null());

    evaluate(&app, Some(until), Some(vec![&id])).await;
    let after = customer_progress(&app, &id).await;
    assert_eq!(after["tier"]["key"], "regular", "{after:#}");
    assert!(after["tierProgress"]["keepsTierUntil"].is_null());
    let run_change = app
        .ok(
            &format!(
                "query($id: ID!) {{ customer(id: $id) {{ tierHistory(first: 1) {{ nodes {{ reason score {BREAKDOWN} }} }} }} }}"
            ),
            json!({ "id": id }),
        )
        .await["customer"]["tierHistory"]["nodes"][0]
        .clone();
    assert_eq!(run_change["reason"], "EVALUATION");
    assert_adds_up(&run_change["breakdown"], number(&run_change["score"]));
}

/// A tier change's breakdown is the one that decided it: a later change to the scoring
/// model leaves it as it was.
async fn a_changes_breakdown_survives_a_new_scoring_model(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Kept" })).await;
    history(&app, &id, &purchases(4, "300", 10)).await;
    let query = format!(
        "query($id: ID!) {{ customer(id: $id) {{ tierHistory(first: 5) {{ nodes {{ reason score {BREAKDOWN} }} }} }} }}"
    );
    let before = app.ok(&query, json!({ "id": id })).await;
    let upgrade = before["customer"]["tierHistory"]["nodes"][0].clone();
    assert_eq!(upgrade["reason"], "INTERACTION");
    assert_adds_up(&upgrade["breakdown"], number(&upgrade["score"]));
    // The first tier was no score's decision.
    assert_eq!(
        before["customer"]["tierHistory"]["nodes"][1]["breakdown"],
        json!([])
    );
    app.ok(
        "mutation { updateScoringModel(input: { weights: { recency: 0.1, frequency: 0.1, monetary: 0.6, engagement: 0.1, nps: 0.1 } }) { windowDays } }",
        json!({}),
    )
    .await;
    let after = app.ok(&query, json!({ "id": id })).await;
    assert_eq!(after, before, "the history explains itself as it was");
    // The progress follows the new model.
    let progress = customer_progress(&app, &id).await["tierProgress"].clone();
    let monetary = progress["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["indicator"] == "monetary")
        .unwrap()
        .clone();
    assert!(
        (number(&monetary["weight"]) - 0.6 / 0.9).abs() < 1e-9,
        "{monetary}"
    );
    assert_adds_up(&progress["breakdown"], number(&progress["score"]));
}

/// The next reward is the cheapest the customer could redeem but cannot yet afford:
/// active, in stock and open to its tier.
async fn the_next_reward_is_the_cheapest_out_of_reach(app: TestApp) {
    for (name, cost, extra) in [
        ("Sticker", 50, json!({})),
        ("Retired", 100, json!({ "active": false })),
        ("Sold out", 120, json!({ "stock": 0 })),
        ("VIP lounge", 150, json!({ "minTierKey": "vip" })),
        ("Mug", 200, json!({ "stock": 3 })),
        ("Bag", 500, json!({})),
    ] {
        let mut input = json!({ "name": name, "costPoints": cost });
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        app.ok(
            "mutation($input: RewardInput!) { createReward(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await;
    }
    let id = app.create_customer(json!({ "name": "Saver" })).await;
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 60, reason: \"welcome\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let progress = customer_progress(&app, &id).await["tierProgress"].clone();
    assert_eq!(progress["pointsToNextReward"], 140, "{progress:#}");
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 500, reason: \"gift\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    let rich = customer_progress(&app, &id).await["tierProgress"].clone();
    assert!(
        rich["pointsToNextReward"].is_null(),
        "it can afford all: {rich:#}"
    );
}

/// Customers read their own progress; staff, admins and partners with `customers:read`
/// anyone's; nobody else.
async fn who_reads_tier_progress(app: TestApp) {
    let ana = app.create_customer(json!({ "name": "Ana" })).await;
    let bo = app.create_customer(json!({ "name": "Bo" })).await;
    let query = "query($id: ID!) { customer(id: $id) { id tierProgress { score tier { key } } } }";
    for token in [
        app.customer_token(&ana),
        app.staff(),
        app.admin(),
        app.partner("customers:read"),
    ] {
        let data = app.ok_as(&token, query, json!({ "id": ana })).await;
        assert_eq!(data["customer"]["tierProgress"]["tier"]["key"], "potential");
    }
    let other = app
        .gql(Some(&app.customer_token(&bo)), query, json!({ "id": ana }))
        .await;
    assert_error(&other, "FORBIDDEN");
    let writer = app
        .gql(
            Some(&app.partner("points:write")),
            query,
            json!({ "id": ana }),
        )
        .await;
    assert_error(&writer, "FORBIDDEN");
}

/// A page of 50 customers with their whole tier progress costs as many statements as a
/// page of 5.
async fn a_page_of_progress_costs_a_fixed_number_of_statements(app: TestApp) {
    let mut inputs = Vec::new();
    for i in 0..60 {
        let id = app
            .create_customer(json!({ "name": format!("P{i:02}") }))
            .await;
        inputs.push(
            json!({ "customerId": id, "kind": "PURCHASE", "amount": "120",
                            "occurredAt": ts(days_ago(200)) }),
        );
    }
    app.ok(
        "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { duplicate } }",
        json!({ "inputs": inputs }),
    )
    .await;
    app.ok(
        "mutation { createReward(input: { name: \"Mug\", costPoints: 1000 }) { id } }",
        json!({}),
    )
    .await;
    // Some are marked for downgrade, so that their end of grace is read too.
    let vip = app
        .ok("{ customers(first: 10) { nodes { id } } }", json!({}))
        .await;
    for node in vip["customers"]["nodes"].as_array().unwrap() {
        app.ok(
            "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"n\") { id } }",
            json!({ "id": node["id"] }),
        )
        .await;
    }
    evaluate(&app, Some(days_ago(5)), None).await;
    let query = format!(
        "query($first: Int) {{ customers(first: $first) {{ nodes {{ id
            tierProgress {{ score {BREAKDOWN} tier {{ key }} nextTier {{ key }} scoreToNext
                spendToNext purchasesToNext keepsTierUntil downgradeTo {{ key }}
                pointsToNextReward }} }} }} }}"
    );
    // The run's events are still being consumed (automations, live relay): measure once
    // the server is quiet. The run changed the program's churn model: the snapshot is
    // read again once.
    let mut quiet = 0;
    loop {
        let before = app.db.statement_count();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if app.db.statement_count() == before || quiet > 50 {
            break;
        }
        quiet += 1;
    }
    app.ok(&query, json!({ "first": 1 })).await;
    let mut costs = Vec::new();
    for first in [5, 50] {
        let before = app.db.statement_count();
        let data = app.ok(&query, json!({ "first": first })).await;
        costs.push(app.db.statement_count() - before);
        let nodes = data["customers"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), first as usize);
        assert!(
            nodes
                .iter()
                .any(|n| !n["tierProgress"]["keepsTierUntil"].is_null()),
            "a marked customer is on the page"
        );
        for node in nodes {
            assert_adds_up(
                &node["tierProgress"]["breakdown"],
                number(&node["tierProgress"]["score"]),
            );
        }
    }
    assert_eq!(
        costs[0], costs[1],
        "statements must not grow with the page: {costs:?}"
    );
    assert!(costs[1] <= 3, "the page, the sums, the rewards: {costs:?}");
}

on_both!(
    the_breakdown_explains_the_score_in_every_band,
    spend_and_purchases_to_next_are_what_recording_them_does,
    a_marked_customer_sees_when_and_where_it_drops,
    a_changes_breakdown_survives_a_new_scoring_model,
    the_next_reward_is_the_cheapest_out_of_reach,
    who_reads_tier_progress,
    a_page_of_progress_costs_a_fixed_number_of_statements,
);
