//! Evaluation runs end to end: band boundaries, weights, tier moves with marks and grace,
//! `asOf` in the past, RFM, ABC, lifecycle stages, run records, errors, roles and
//! `tierwise evaluate`.
//!
//! Timelines are built in the past, around `origin()` (600 days ago): interactions dated
//! more than 365 days ago are outside the live scoring window, so recording them leaves
//! the customer at score 0 and only evaluation runs (whose `asOf` moves the window back)
//! score them. Every expected value below is worked out by hand from CONTRACT.md.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::enums::EvaluationStatus;
use entity::evaluation_run;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, instant as parse, on_both, ts};

const RUN: &str = "id status asOf startedAt finishedAt customersEvaluated upgrades downgrades";
const CUSTOMER: &str = "id score lifecycleStage tier { key } \
     metrics { asOf firstPurchaseAt lastPurchaseAt recencyDays purchaseCount netSpend lifetimeSpend \
               engagementCount latestNps abcClass rfm { recency frequency monetary segment } }";
const HISTORY: &str = "tierHistory { totalCount nodes { from { key } to { key } reason score } }";
const RECORD: &str = "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { duplicate } }";

// ---------------------------------------------------------------------------------------
// Time

/// 600 days ago, to the second.
fn origin() -> DateTime<Utc> {
    (Utc::now() - days(600)).trunc_subsecs(0)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

// ---------------------------------------------------------------------------------------
// Interactions, relative to the instant a run scores

/// An interaction dated `before` the instant scored (negative: after it).
#[derive(Debug, Clone, Copy)]
struct Event {
    kind: &'static str,
    before: Duration,
    amount: Option<&'static str>,
    rating: Option<i32>,
}

fn buy(before: Duration, amount: &'static str) -> Event {
    Event {
        kind: "PURCHASE",
        before,
        amount: Some(amount),
        rating: None,
    }
}

fn refund(before: Duration, amount: &'static str) -> Event {
    Event {
        kind: "REFUND",
        ..buy(before, amount)
    }
}

/// SHIPMENT or PAYMENT: they carry amounts but are neither spend nor engagement.
fn ledger(kind: &'static str, before: Duration, amount: &'static str) -> Event {
    Event {
        kind,
        ..buy(before, amount)
    }
}

fn engage(kind: &'static str, before: Duration) -> Event {
    Event {
        kind,
        before,
        amount: None,
        rating: None,
    }
}

fn survey(before: Duration, rating: i32) -> Event {
    Event {
        kind: "SURVEY",
        before,
        amount: None,
        rating: Some(rating),
    }
}

/// `n` purchases of `amount`, the latest `before` the instant scored, the others a minute
/// apart before it.
fn buys(n: usize, before: Duration, amount: &'static str) -> Vec<Event> {
    (0..n)
        .map(|i| buy(before + Duration::minutes(i as i64), amount))
        .collect()
}

/// `n` engagement interactions of every engagement kind but SURVEY, the latest `before`
/// the instant scored.
fn engagements(n: usize, before: Duration) -> Vec<Event> {
    const KINDS: [&str; 5] = [
        "SERVICE_CONTACT",
        "VISIT",
        "FEEDBACK",
        "COMPLAINT",
        "CAMPAIGN_RESPONSE",
    ];
    (0..n)
        .map(|i| engage(KINDS[i % KINDS.len()], before + Duration::minutes(i as i64)))
        .collect()
}

fn input(customer: &str, scored_at: DateTime<Utc>, event: &Event) -> Value {
    let mut input = json!({
        "customerId": customer,
        "kind": event.kind,
        "occurredAt": ts(scored_at - event.before),
    });
    if let Some(amount) = event.amount {
        input["amount"] = json!(amount);
    }
    if let Some(rating) = event.rating {
        input["rating"] = json!(rating);
    }
    input
}

/// Records `events` for `customer`, dated relative to `scored_at`.
async fn record(app: &TestApp, customer: &str, scored_at: DateTime<Utc>, events: &[Event]) {
    let inputs: Vec<Value> = events
        .iter()
        .map(|event| input(customer, scored_at, event))
        .collect();
    record_inputs(app, inputs).await;
}

async fn record_inputs(app: &TestApp, inputs: Vec<Value>) {
    for chunk in inputs.chunks(1000) {
        app.ok(RECORD, json!({ "inputs": chunk })).await;
    }
}

/// A new customer with `events` dated relative to `scored_at`.
async fn customer_with(
    app: &TestApp,
    name: &str,
    scored_at: DateTime<Utc>,
    events: &[Event],
) -> String {
    let id = app.create_customer(json!({ "name": name })).await;
    record(app, &id, scored_at, events).await;
    id
}

// ---------------------------------------------------------------------------------------
// Runs and reads

fn evaluate_mutation() -> String {
    format!(
        "mutation($asOf: DateTime, $customerIds: [ID!], $wait: Boolean! = true) {{ \
           evaluateTiers(asOf: $asOf, customerIds: $customerIds, wait: $wait) {{ {RUN} }} }}"
    )
}

/// `evaluateTiers` as `token`, the raw body.
async fn evaluate_as(app: &TestApp, token: Option<&str>, variables: Value) -> Value {
    app.gql(token, &evaluate_mutation(), variables).await
}

/// A run over everyone as of `as_of`, which must succeed.
async fn evaluate(app: &TestApp, as_of: DateTime<Utc>) -> Value {
    evaluate_vars(app, json!({ "asOf": ts(as_of) })).await
}

/// A run limited to `ids` as of `as_of`, which must succeed.
async fn evaluate_only(app: &TestApp, as_of: DateTime<Utc>, ids: &[&str]) -> Value {
    evaluate_vars(app, json!({ "asOf": ts(as_of), "customerIds": ids })).await
}

async fn evaluate_vars(app: &TestApp, variables: Value) -> Value {
    let run = app.ok(&evaluate_mutation(), variables).await["evaluateTiers"].clone();
    assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
    run
}

async fn evaluation_run(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok_as(
        token,
        &format!("query($id: ID!) {{ evaluationRun(id: $id) {{ {RUN} error }} }}"),
        json!({ "id": id }),
    )
    .await["evaluationRun"]
        .clone()
}

async fn customer(app: &TestApp, id: &str) -> Value {
    app.ok(
        &format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER} {HISTORY} }} }}"),
        json!({ "id": id }),
    )
    .await["customer"]
        .clone()
}

fn score(customer: &Value) -> f64 {
    customer["score"].as_f64().expect("a score")
}

fn tier(customer: &Value) -> &str {
    customer["tier"]["key"].as_str().expect("a tier")
}

/// A tier change as `tierHistory` lists it.
fn change(from: Option<&str>, to: &str, reason: &str, score: f64) -> Value {
    json!({
        "from": from.map(|key| json!({ "key": key })),
        "to": { "key": to },
        "reason": reason,
        "score": score,
    })
}

/// The customer's tier and its whole history, newest first.
async fn tier_and_history(app: &TestApp, id: &str) -> (String, Value) {
    let c = customer(app, id).await;
    (tier(&c).to_owned(), c["tierHistory"]["nodes"].clone())
}

fn counts(run: &Value) -> (i64, i64, i64) {
    (
        run["customersEvaluated"].as_i64().unwrap(),
        run["upgrades"].as_i64().unwrap(),
        run["downgrades"].as_i64().unwrap(),
    )
}

// ---------------------------------------------------------------------------------------
// 1. Every band boundary of every indicator

/// What the metrics that make the score must read after a run.
fn expect(
    score: f64,
    recency_days: Option<i64>,
    purchases: i64,
    net_spend: &str,
    engagements: i64,
    nps: Option<i32>,
) -> Value {
    json!({
        "score": score, "recencyDays": recency_days, "purchaseCount": purchases,
        "netSpend": net_spend, "engagementCount": engagements, "latestNps": nps,
    })
}

fn scored(c: &Value) -> Value {
    let m = &c["metrics"];
    json!({
        "score": c["score"], "recencyDays": m["recencyDays"], "purchaseCount": m["purchaseCount"],
        "netSpend": m["netSpend"], "engagementCount": m["engagementCount"], "latestNps": m["latestNps"],
    })
}

/// Weights 0.2 recency, 0.3 frequency, 0.3 monetary, 0.1 engagement, 0.1 nps; without a
/// survey the mean is over 0.9. "One purchase of 1.00 a day ago" earns recency 100,
/// frequency 20 and monetary 20: 20 + 6 + 6 = 32 over 0.9 = 35.6.
async fn every_band_boundary_scores_as_the_contract_says(app: TestApp) {
    let as_of = origin() + days(200);
    let day_ago = days(1);
    let cases: Vec<(&str, Vec<Event>, Value)> = vec![
        // Recency: one purchase of 1.00 (frequency 20, monetary 20 → 12 weighted).
        (
            "bought at asOf",
            vec![buy(secs(0), "1")],
            expect(35.6, Some(0), 1, "1.00", 0, None),
        ),
        (
            "bought 30 days before",
            vec![buy(days(30), "1")],
            expect(35.6, Some(30), 1, "1.00", 0, None),
        ),
        // 30 days 23:59:59 is 30 whole days.
        (
            "bought 31 days less a second before",
            vec![buy(days(31) - secs(1), "1")],
            expect(35.6, Some(30), 1, "1.00", 0, None),
        ),
        // (70·0.2 + 12) / 0.9 = 28.89
        (
            "bought 31 days before",
            vec![buy(days(31), "1")],
            expect(28.9, Some(31), 1, "1.00", 0, None),
        ),
        (
            "bought 90 days before",
            vec![buy(days(90), "1")],
            expect(28.9, Some(90), 1, "1.00", 0, None),
        ),
        // (40·0.2 + 12) / 0.9 = 22.22
        (
            "bought 91 days before",
            vec![buy(days(91), "1")],
            expect(22.2, Some(91), 1, "1.00", 0, None),
        ),
        (
            "bought 180 days before",
            vec![buy(days(180), "1")],
            expect(22.2, Some(180), 1, "1.00", 0, None),
        ),
        // (20·0.2 + 12) / 0.9 = 17.78
        (
            "bought 181 days before",
            vec![buy(days(181), "1")],
            expect(17.8, Some(181), 1, "1.00", 0, None),
        ),
        // The window's first instant is in it.
        (
            "bought 365 days before",
            vec![buy(days(365), "1")],
            expect(17.8, Some(365), 1, "1.00", 0, None),
        ),
        // A second earlier is not: nothing in the window, recency 0.
        (
            "bought 365 days and a second before",
            vec![buy(days(365) + secs(1), "1")],
            expect(0.0, Some(365), 0, "0.00", 0, None),
        ),
        // Frequency: purchases of 1.00, the latest a day ago (recency 100, monetary 20).
        // (20 + 40·0.3 + 6) / 0.9 = 42.22; 70 → 52.22; 100 → 62.22
        (
            "2 purchases",
            buys(2, day_ago, "1"),
            expect(42.2, Some(1), 2, "2.00", 0, None),
        ),
        (
            "3 purchases",
            buys(3, day_ago, "1"),
            expect(42.2, Some(1), 3, "3.00", 0, None),
        ),
        (
            "4 purchases",
            buys(4, day_ago, "1"),
            expect(52.2, Some(1), 4, "4.00", 0, None),
        ),
        (
            "11 purchases",
            buys(11, day_ago, "1"),
            expect(52.2, Some(1), 11, "11.00", 0, None),
        ),
        (
            "12 purchases",
            buys(12, day_ago, "1"),
            expect(62.2, Some(1), 12, "12.00", 0, None),
        ),
        (
            "3 purchases and one before the window",
            [buys(3, day_ago, "1"), vec![buy(days(366), "1")]].concat(),
            expect(42.2, Some(1), 3, "3.00", 0, None),
        ),
        // Monetary: one purchase a day ago (recency 100, frequency 20).
        // (20 + 6 + 20·0.3) / 0.9 = 35.56; 40 → 42.22; 70 → 52.22; 100 → 62.22; 0 → 28.89
        (
            "spent 0.01",
            vec![buy(day_ago, "0.01")],
            expect(35.6, Some(1), 1, "0.01", 0, None),
        ),
        (
            "spent 999.99",
            vec![buy(day_ago, "999.99")],
            expect(35.6, Some(1), 1, "999.99", 0, None),
        ),
        (
            "spent 1000",
            vec![buy(day_ago, "1000")],
            expect(42.2, Some(1), 1, "1000.00", 0, None),
        ),
        (
            "spent 2999.99",
            vec![buy(day_ago, "2999.99")],
            expect(42.2, Some(1), 1, "2999.99", 0, None),
        ),
        (
            "spent 3000",
            vec![buy(day_ago, "3000")],
            expect(52.2, Some(1), 1, "3000.00", 0, None),
        ),
        (
            "spent 9999.99",
            vec![buy(day_ago, "9999.99")],
            expect(52.2, Some(1), 1, "9999.99", 0, None),
        ),
        (
            "spent 10000",
            vec![buy(day_ago, "10000")],
            expect(62.2, Some(1), 1, "10000.00", 0, None),
        ),
        (
            "spent 1000, refunded 0.01",
            vec![buy(day_ago, "1000"), refund(secs(60), "0.01")],
            expect(35.6, Some(1), 1, "999.99", 0, None),
        ),
        (
            "spent 10, refunded 10",
            vec![buy(day_ago, "10"), refund(secs(60), "10")],
            expect(28.9, Some(1), 1, "0.00", 0, None),
        ),
        (
            "spent 5000 before the window and 1 in it",
            vec![buy(days(400), "5000"), buy(day_ago, "1")],
            expect(35.6, Some(1), 1, "1.00", 0, None),
        ),
        // Engagement: one purchase of 1.00 a day ago (32 weighted) and n engagements.
        // (32 + 40·0.1) / 0.9 = 40.0; 70 → 43.33; 100 → 46.67
        (
            "1 engagement",
            [vec![buy(day_ago, "1")], engagements(1, days(2))].concat(),
            expect(40.0, Some(1), 1, "1.00", 1, None),
        ),
        (
            "3 engagements",
            [vec![buy(day_ago, "1")], engagements(3, days(2))].concat(),
            expect(40.0, Some(1), 1, "1.00", 3, None),
        ),
        (
            "4 engagements",
            [vec![buy(day_ago, "1")], engagements(4, days(2))].concat(),
            expect(43.3, Some(1), 1, "1.00", 4, None),
        ),
        (
            "11 engagements",
            [vec![buy(day_ago, "1")], engagements(11, days(2))].concat(),
            expect(43.3, Some(1), 1, "1.00", 11, None),
        ),
        (
            "12 engagements",
            [vec![buy(day_ago, "1")], engagements(12, days(2))].concat(),
            expect(46.7, Some(1), 1, "1.00", 12, None),
        ),
        (
            "3 engagements, a shipment and a payment",
            [
                vec![
                    buy(day_ago, "1"),
                    ledger("SHIPMENT", days(3), "100"),
                    ledger("PAYMENT", days(2), "40"),
                ],
                engagements(3, days(2)),
            ]
            .concat(),
            expect(40.0, Some(1), 1, "1.00", 3, None),
        ),
        (
            "3 engagements and one before the window",
            [
                vec![buy(day_ago, "1"), engage("VISIT", days(366))],
                engagements(3, days(2)),
            ]
            .concat(),
            expect(40.0, Some(1), 1, "1.00", 3, None),
        ),
        // NPS: one purchase of 1.00 a day ago; a survey is also an engagement (40 → 4),
        // and with it the weights sum to 1: 20 + 6 + 6 + 4 + nps·0.1.
        (
            "survey 6",
            vec![buy(day_ago, "1"), survey(days(2), 6)],
            expect(36.0, Some(1), 1, "1.00", 1, Some(6)),
        ),
        (
            "survey 7",
            vec![buy(day_ago, "1"), survey(days(2), 7)],
            expect(41.0, Some(1), 1, "1.00", 1, Some(7)),
        ),
        (
            "survey 8",
            vec![buy(day_ago, "1"), survey(days(2), 8)],
            expect(41.0, Some(1), 1, "1.00", 1, Some(8)),
        ),
        (
            "survey 9",
            vec![buy(day_ago, "1"), survey(days(2), 9)],
            expect(46.0, Some(1), 1, "1.00", 1, Some(9)),
        ),
        (
            "survey 10, then survey 7",
            vec![buy(day_ago, "1"), survey(days(10), 10), survey(days(2), 7)],
            expect(41.0, Some(1), 1, "1.00", 2, Some(7)),
        ),
        (
            "survey 9, and survey 0 after asOf",
            vec![buy(day_ago, "1"), survey(days(2), 9), survey(-days(1), 0)],
            expect(46.0, Some(1), 1, "1.00", 1, Some(9)),
        ),
        (
            "survey 10 before the window only",
            vec![buy(day_ago, "1"), survey(days(366), 10)],
            expect(35.6, Some(1), 1, "1.00", 0, None),
        ),
    ];
    let mut ids = Vec::new();
    for (label, events, _) in &cases {
        ids.push(customer_with(&app, label, as_of, events).await);
    }
    // Recorded live, all of it is older than the live window: nobody scores yet.
    for id in &ids {
        let c = customer(&app, id).await;
        assert_eq!((score(&c), tier(&c)), (0.0, "potential"));
    }

    let run = evaluate(&app, as_of).await;
    let regulars = cases
        .iter()
        .filter(|(_, _, e)| e["score"].as_f64().unwrap() >= 35.0)
        .count() as i64;
    assert_eq!(counts(&run), (cases.len() as i64, regulars, 0));
    for ((label, _, expected), id) in cases.iter().zip(&ids) {
        let c = customer(&app, id).await;
        assert_eq!(&scored(&c), expected, "{label}");
        let earned = if score(&c) >= 35.0 {
            "regular"
        } else {
            "potential"
        };
        assert_eq!(tier(&c), earned, "{label}");
        assert_eq!(c["metrics"]["asOf"], ts(as_of), "{label}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Weights without a survey

async fn without_a_survey_the_weights_are_renormalised(app: TestApp) {
    let as_of = origin() + days(200);
    let bought = [buy(days(1), "1")];
    let surveyed = customer_with(&app, "Surveyed later", as_of, &bought).await;
    let visitor = customer_with(
        &app,
        "Visitor",
        as_of,
        &[bought[0], engage("VISIT", Duration::hours(12))],
    )
    .await;
    let unhappy = customer_with(
        &app,
        "Unhappy",
        as_of,
        &[bought[0], survey(Duration::hours(12), 0)],
    )
    .await;
    evaluate(&app, as_of).await;
    // 20 + 6 + 6 over 0.9 of weight.
    let c = customer(&app, &surveyed).await;
    assert_eq!(
        (score(&c), &c["metrics"]["latestNps"]),
        (35.6, &Value::Null)
    );
    // One engagement: (32 + 4) / 0.9.
    assert_eq!(score(&customer(&app, &visitor).await), 40.0);
    // A survey of 0 is one engagement and brings the nps weight in: (32 + 4 + 0) / 1.0,
    // below the visitor's score for the same engagement without a survey.
    assert_eq!(score(&customer(&app, &unhappy).await), 36.0);

    // The same customer after a survey of 10: (32 + 4 + 10) / 1.0.
    record(&app, &surveyed, as_of, &[survey(Duration::hours(12), 10)]).await;
    evaluate(&app, as_of).await;
    let c = customer(&app, &surveyed).await;
    assert_eq!(
        scored(&c),
        expect(46.0, Some(1), 1, "1.00", 1, Some(10)),
        "{c:#}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Upgrades, and downgrades one tier per run after the grace period

/// Twelve purchases of 1000 and twelve visits, all at `at`: scored the next day,
/// 100 on every indicator present → 100.0.
async fn big_spender(app: &TestApp, name: &str, at: DateTime<Utc>) -> String {
    let events = [buys(12, secs(0), "1000"), engagements(12, secs(0))].concat();
    customer_with(app, name, at, &events).await
}

async fn runs_upgrade_at_once_and_downgrade_one_tier_after_the_grace_period(app: TestApp) {
    let t0 = origin();
    let big = big_spender(&app, "Big", t0).await;
    let small = customer_with(&app, "Small", t0, &[buy(secs(0), "1")]).await;
    let prospect = app.create_customer(json!({ "name": "Prospect" })).await;
    let created = change(None, "potential", "CREATED", 0.0);

    // The day after: Big scores 100 and goes straight to vip; Small (20 + 6 + 6) / 0.9 =
    // 35.6 → regular.
    let run = evaluate(&app, t0 + days(1)).await;
    assert_eq!(counts(&run), (3, 2, 0));
    let (big_tier, history) = tier_and_history(&app, &big).await;
    assert_eq!(big_tier, "vip");
    assert_eq!(
        history,
        json!([
            change(Some("potential"), "vip", "EVALUATION", 100.0),
            created
        ])
    );
    let (small_tier, history) = tier_and_history(&app, &small).await;
    assert_eq!(small_tier, "regular");
    assert_eq!(
        history,
        json!([
            change(Some("potential"), "regular", "EVALUATION", 35.6),
            created
        ])
    );
    // A second run as of the same instant changes nothing.
    assert_eq!(counts(&evaluate(&app, t0 + days(1)).await), (3, 0, 0));

    // 400 days on, everything left the window: score 0. The run only marks.
    let mark = t0 + days(400);
    let run = evaluate(&app, mark).await;
    assert_eq!(counts(&run), (3, 0, 0));
    let c = customer(&app, &big).await;
    assert_eq!((score(&c), tier(&c)), (0.0, "vip"));
    assert_eq!(tier(&customer(&app, &small).await), "regular");
    // 29 days after the mark: still within the grace period.
    assert_eq!(counts(&evaluate(&app, mark + days(29)).await), (3, 0, 0));
    assert_eq!(tier(&customer(&app, &big).await), "vip");
    // 30 days after: one tier down each, though a score of 0 earns only potential.
    let run = evaluate(&app, mark + days(30)).await;
    assert_eq!(counts(&run), (3, 0, 2));
    let (big_tier, history) = tier_and_history(&app, &big).await;
    assert_eq!(big_tier, "regular");
    assert_eq!(
        history[0],
        change(Some("vip"), "regular", "EVALUATION", 0.0)
    );
    assert_eq!(history.as_array().unwrap().len(), 3);
    let (small_tier, history) = tier_and_history(&app, &small).await;
    assert_eq!(small_tier, "potential");
    assert_eq!(
        history[0],
        change(Some("regular"), "potential", "EVALUATION", 0.0)
    );

    // Moving down cleared the mark: the next low run marks anew, however late it comes...
    let second_mark = mark + days(90);
    assert_eq!(counts(&evaluate(&app, second_mark).await), (3, 0, 0));
    assert_eq!(tier(&customer(&app, &big).await), "regular");
    assert_eq!(
        counts(&evaluate(&app, second_mark + days(29)).await),
        (3, 0, 0)
    );
    assert_eq!(tier(&customer(&app, &big).await), "regular");
    // ...and the next tier down waits the full grace period again.
    let run = evaluate(&app, second_mark + days(30)).await;
    assert_eq!(counts(&run), (3, 0, 1));
    let (big_tier, history) = tier_and_history(&app, &big).await;
    assert_eq!(big_tier, "potential");
    assert_eq!(
        history,
        json!([
            change(Some("regular"), "potential", "EVALUATION", 0.0),
            change(Some("vip"), "regular", "EVALUATION", 0.0),
            change(Some("potential"), "vip", "EVALUATION", 100.0),
            created,
        ])
    );
    // The lowest tier has nowhere to go; a prospect never moved.
    assert_eq!(
        counts(&evaluate(&app, second_mark + days(60)).await),
        (3, 0, 0)
    );
    let (prospect_tier, history) = tier_and_history(&app, &prospect).await;
    assert_eq!(
        (prospect_tier.as_str(), history),
        ("potential", json!([created]))
    );
}

async fn a_run_at_or_above_the_minimum_clears_the_mark(app: TestApp) {
    let t0 = origin();
    let id = big_spender(&app, "Comeback", t0).await;
    evaluate(&app, t0 + days(1)).await;
    assert_eq!(tier(&customer(&app, &id).await), "vip");
    // Score 0: marked as of t0 + 400 days.
    evaluate(&app, t0 + days(400)).await;

    // Four purchases of 1000 and four visits at t0 + 410 days.
    let back = t0 + days(410);
    record(
        &app,
        &id,
        back,
        &[buys(4, secs(0), "1000"), engagements(4, secs(0))].concat(),
    )
    .await;
    // Five days later: recency 100, frequency 70, monetary 70, engagement 70:
    // (20 + 21 + 21 + 7) / 0.9 = 76.7 ≥ 70 clears the mark.
    let run = evaluate(&app, back + days(5)).await;
    assert_eq!(counts(&run), (1, 0, 0));
    let c = customer(&app, &id).await;
    assert_eq!((score(&c), tier(&c)), (76.7, "vip"));
    // 90 days after the purchases recency is 70: every indicator 70 → exactly 70.0, at
    // the minimum: not marked.
    evaluate(&app, back + days(90)).await;
    let c = customer(&app, &id).await;
    assert_eq!((score(&c), tier(&c)), (70.0, "vip"));
    // 91 days: recency 40, (8 + 21 + 21 + 7) / 0.9 = 63.3. Had the old mark survived, this
    // run (101 days after it) would move the customer down; it marks instead.
    let low = back + days(91);
    let run = evaluate(&app, low).await;
    assert_eq!(counts(&run), (1, 0, 0));
    let c = customer(&app, &id).await;
    assert_eq!((score(&c), tier(&c)), (63.3, "vip"));
    // The full grace period again, counted from the new mark.
    assert_eq!(counts(&evaluate(&app, low + days(29)).await), (1, 0, 0));
    assert_eq!(tier(&customer(&app, &id).await), "vip");
    assert_eq!(counts(&evaluate(&app, low + days(30)).await), (1, 0, 1));
    let (tier_key, history) = tier_and_history(&app, &id).await;
    assert_eq!(tier_key, "regular");
    // 120 days after the purchases: recency still 40 → 63.3.
    assert_eq!(
        history[0],
        change(Some("vip"), "regular", "EVALUATION", 63.3)
    );
}

// ---------------------------------------------------------------------------------------
// 4. asOf in the past

async fn a_run_in_the_past_ignores_later_interactions(app: TestApp) {
    let a = origin() + days(200);
    let id = customer_with(
        &app,
        "Time traveller",
        a,
        &[
            buy(days(10), "100"),
            buy(secs(0), "200"),
            buy(-secs(1), "300"),
            survey(-days(1), 9),
            engage("VISIT", -days(2)),
        ],
    )
    .await;
    let not_yet = customer_with(&app, "Not yet", a, &[buy(-days(1), "50")]).await;
    let run = evaluate(&app, a).await;
    assert_eq!(run["asOf"], ts(a));
    let c = customer(&app, &not_yet).await;
    assert_eq!(c["lifecycleStage"], "PROSPECT");
    assert_eq!(c["metrics"]["lastPurchaseAt"], Value::Null);
    assert_eq!(c["metrics"]["lifetimeSpend"], "0.00");
    assert_eq!(scored(&c), expect(0.0, None, 0, "0.00", 0, None));
    let c = customer(&app, &id).await;
    let m = &c["metrics"];
    assert_eq!(m["asOf"], ts(a));
    assert_eq!(m["firstPurchaseAt"], ts(a - days(10)));
    assert_eq!(m["lastPurchaseAt"], ts(a), "a purchase at asOf counts");
    assert_eq!(m["lifetimeSpend"], "300.00");
    // Recency 100, frequency 40, monetary 20: (20 + 12 + 6) / 0.9 = 42.2.
    assert_eq!(scored(&c), expect(42.2, Some(0), 2, "300.00", 0, None));
    assert_eq!(c["lifecycleStage"], "GROWING");

    // Five days on, everything counts: recency 4 days, three purchases (40), 600 (20),
    // two engagements (40), nps 9 (100): 20 + 12 + 6 + 4 + 10 = 52.0.
    let later = a + days(5);
    evaluate(&app, later).await;
    let c = customer(&app, &id).await;
    let m = &c["metrics"];
    assert_eq!(m["asOf"], ts(later));
    assert_eq!(m["lastPurchaseAt"], ts(a + secs(1)));
    assert_eq!(m["lifetimeSpend"], "600.00");
    assert_eq!(scored(&c), expect(52.0, Some(4), 3, "600.00", 2, Some(9)));
    // (20 + 6 + 6) / 0.9 for the one who bought a day after `a`.
    let c = customer(&app, &not_yet).await;
    assert_eq!(c["lifecycleStage"], "NEW");
    assert_eq!(scored(&c), expect(35.6, Some(4), 1, "50.00", 0, None));

    // And back again: a run as of the past undoes what it must not see.
    evaluate(&app, a).await;
    let c = customer(&app, &id).await;
    assert_eq!(c["metrics"]["asOf"], ts(a));
    assert_eq!(scored(&c), expect(42.2, Some(0), 2, "300.00", 0, None));
}

/// A buyer of 1.00 at `a`: from 31 to 90 days later its score stays (14 + 6 + 6) / 0.9 =
/// 28.9, so runs in that span find nothing to change but the instant.
async fn steady_buyer(app: &TestApp, a: DateTime<Utc>) -> String {
    let id = customer_with(app, "Steady", a, &[buy(secs(0), "1")]).await;
    evaluate(app, a + days(40)).await;
    let c = customer(app, &id).await;
    assert_eq!(score(&c), 28.9);
    assert_eq!(c["metrics"]["asOf"], ts(a + days(40)));
    assert_eq!(c["metrics"]["recencyDays"], 40);
    id
}

/// `metrics.asOf`, and `recencyDays` counted to it, are those of the latest run that
/// scored the customer, also when it found nothing else to change.
async fn a_limited_run_sets_the_metrics_instant(app: TestApp) {
    let a = origin() + days(200);
    let id = steady_buyer(&app, a).await;
    evaluate_only(&app, a + days(50), &[&id]).await;
    let c = customer(&app, &id).await;
    assert_eq!(score(&c), 28.9);
    assert_eq!(c["metrics"]["asOf"], ts(a + days(50)));
    assert_eq!(c["metrics"]["recencyDays"], 50);
}

async fn an_earlier_run_sets_the_metrics_instant(app: TestApp) {
    let a = origin() + days(200);
    let id = steady_buyer(&app, a).await;
    evaluate(&app, a + days(38)).await;
    let c = customer(&app, &id).await;
    assert_eq!(score(&c), 28.9);
    assert_eq!(c["metrics"]["asOf"], ts(a + days(38)));
    assert_eq!(c["metrics"]["recencyDays"], 38);
}

// ---------------------------------------------------------------------------------------
// 5. RFM

fn rfm(r: i64, f: i64, m: i64, segment: &str) -> Value {
    json!({ "recency": r, "frequency": f, "monetary": m, "segment": segment })
}

async fn rfm_of(app: &TestApp, id: &str) -> Value {
    customer(app, id).await["metrics"]["rfm"].clone()
}

async fn rfm_quintiles_rank_buyers_in_the_window_and_ties_share(app: TestApp) {
    // Five buyers ranked 1..5 on recency and monetary and 5..1 on frequency; net spend
    // 100·k after refunds, so M follows R while F runs the other way.
    let a1 = origin() - days(300);
    let specs: [(usize, &str, Option<&str>, &str); 5] = [
        (5, "100", Some("400"), "CANNOT_LOSE"), // R1 F5 M1
        (4, "100", Some("200"), "AT_RISK"),     // R2 F4 M2
        (3, "100", None, "NEED_ATTENTION"),     // R3 F3 M3
        (2, "200", None, "POTENTIAL_LOYALIST"), // R4 F2 M4
        (1, "500", None, "NEW_CUSTOMERS"),      // R5 F1 M5
    ];
    let mut first = Vec::new();
    for (k, &(purchases, amount, refunded, _)) in specs.iter().enumerate() {
        // The latest purchase 5..1 days before asOf, the others a month before.
        let mut events = buys(purchases - 1, days(30), amount);
        events.push(buy(days(5 - k as i64), amount));
        if let Some(refunded) = refunded {
            events.push(refund(days(20), refunded));
        }
        first.push(customer_with(&app, &format!("Buyer {}", k + 1), a1, &events).await);
    }
    // Neither counts in the population: had they, the five would rank differently.
    let lapsed = customer_with(&app, "Lapsed", a1, &[buy(days(400), "1000")]).await;
    let prospect = app.create_customer(json!({ "name": "Prospect" })).await;

    evaluate(&app, a1).await;
    for (k, (id, (.., segment))) in first.iter().zip(&specs).enumerate() {
        let k = k as i64 + 1;
        assert_eq!(
            rfm_of(&app, id).await,
            rfm(k, 6 - k, k, segment),
            "buyer {k}"
        );
    }
    assert_eq!(rfm_of(&app, &lapsed).await, Value::Null);
    assert_eq!(rfm_of(&app, &prospect).await, Value::Null);

    // 400 days later, with four new buyers and ties (ceil(5 × cume_dist), ties counted
    // at their highest position):
    //   last purchase: w 10 days before, x and y 5 days (same instant), z 1 day
    //     → w 1/4 → 2, x y 3/4 → 4, z → 5
    //   purchases: w 1, x 1, y 2, z 2 → w x 2/4 → 3, y z → 5
    //   net spend: w 100, y 100, x 300, z 400 → w y 2/4 → 3, x 3/4 → 4, z → 5
    let a2 = a1 + days(400);
    let w = customer_with(&app, "w", a2, &[buy(days(10), "100")]).await;
    let x = customer_with(&app, "x", a2, &[buy(days(5), "300")]).await;
    let y = customer_with(&app, "y", a2, &[buy(days(20), "50"), buy(days(5), "50")]).await;
    let z = customer_with(&app, "z", a2, &[buy(days(3), "200"), buy(days(1), "200")]).await;
    evaluate(&app, a2).await;
    assert_eq!(rfm_of(&app, &w).await, rfm(2, 3, 3, "AT_RISK"));
    assert_eq!(rfm_of(&app, &x).await, rfm(4, 3, 4, "POTENTIAL_LOYALIST"));
    assert_eq!(rfm_of(&app, &y).await, rfm(4, 5, 3, "LOYAL"));
    assert_eq!(rfm_of(&app, &z).await, rfm(5, 5, 5, "CHAMPIONS"));
    // The first five bought only before this window now.
    for id in &first {
        assert_eq!(rfm_of(&app, id).await, Value::Null);
    }
}

/// Five buyers as of `as_of`, one per (R, F) pair (each a permutation of 1..5): the one
/// meant to score R = r bought last 6 − r days before, f purchases of 100 (so M = F).
async fn buyers(app: &TestApp, as_of: DateTime<Utc>, pairs: &[(i64, i64)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (r, f) in pairs {
        let mut events = buys(*f as usize - 1, days(30), "100");
        events.push(buy(days(6 - r), "100"));
        ids.push(customer_with(app, &format!("R{r} F{f}"), as_of, &events).await);
    }
    ids
}

/// The README's grid, rows R = 5..1, columns F = 1..5.
async fn rfm_segments_follow_the_grid(app: TestApp) {
    /// R, F and the segment of that cell.
    type Cell = (i64, i64, &'static str);
    let scenarios: [(DateTime<Utc>, [Cell; 5]); 2] = [
        (
            origin() - days(300),
            [
                (1, 1, "LOST"),
                (2, 2, "HIBERNATING"),
                (3, 3, "NEED_ATTENTION"),
                (4, 4, "LOYAL"),
                (5, 5, "CHAMPIONS"),
            ],
        ),
        (
            origin() + days(100),
            [
                (4, 1, "PROMISING"),
                (3, 2, "ABOUT_TO_SLEEP"),
                (1, 3, "AT_RISK"),
                (2, 5, "CANNOT_LOSE"),
                (5, 4, "CHAMPIONS"),
            ],
        ),
    ];
    // The scenarios are 400 days apart: each run sees only its own buyers.
    for (as_of, cells) in scenarios {
        let pairs: Vec<(i64, i64)> = cells.iter().map(|(r, f, _)| (*r, *f)).collect();
        let ids = buyers(&app, as_of, &pairs).await;
        evaluate(&app, as_of).await;
        for (id, (r, f, segment)) in ids.iter().zip(cells) {
            assert_eq!(rfm_of(&app, id).await, rfm(r, f, f, segment), "R{r} F{f}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. ABC

async fn abc_of(app: &TestApp, id: &str) -> String {
    customer(app, id).await["metrics"]["abcClass"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn abc_classes_cut_lifetime_spend_at_80_and_95_percent(app: TestApp) {
    let a = origin() + days(200);
    // Lifetime spends 80 (partly before the window), 15, 4 and 1 of 100.
    let p = customer_with(&app, "p", a, &[buy(days(500), "50"), buy(days(1), "30")]).await;
    let q = customer_with(&app, "q", a, &[buy(days(1), "15")]).await;
    let r = customer_with(&app, "r", a, &[buy(days(1), "4")]).await;
    // A purchase after asOf does not count.
    let s = customer_with(&app, "s", a, &[buy(days(1), "1"), buy(-days(1), "1000")]).await;
    let nothing = app.create_customer(json!({ "name": "Nothing" })).await;
    let refunded = customer_with(
        &app,
        "Refunded",
        a,
        &[buy(days(2), "10"), refund(days(1), "10")],
    )
    .await;
    evaluate(&app, a).await;
    // p: 0 above → A; q: 80 above, not below 80% → B; r: 95 above, not below 95% → C.
    for (id, class) in [
        (&p, "A"),
        (&q, "B"),
        (&r, "C"),
        (&s, "C"),
        (&nothing, "C"),
        (&refunded, "C"),
    ] {
        assert_eq!(abc_of(&app, id).await, class, "{id}");
    }
    assert_eq!(
        customer(&app, &p).await["metrics"]["lifetimeSpend"],
        "80.00"
    );
}

async fn abc_a_while_the_spend_above_is_below_80_percent(app: TestApp) {
    let a = origin() + days(200);
    let mut ids = Vec::new();
    for spend in ["50", "29", "15", "6"] {
        ids.push(customer_with(&app, spend, a, &[buy(days(1), spend)]).await);
    }
    evaluate(&app, a).await;
    // Spend above: 0, 50 and 79 are below 80 of 100 → A; 94 is below 95 → B.
    for (id, class) in ids.iter().zip(["A", "A", "A", "B"]) {
        assert_eq!(abc_of(&app, id).await, class);
    }
}

async fn abc_ties_in_spend_are_ranked_by_id(app: TestApp) {
    let a = origin() + days(200);
    let top = customer_with(&app, "70", a, &[buy(days(1), "70")]).await;
    let mut tens = Vec::new();
    for i in 0..3 {
        tens.push(customer_with(&app, &format!("10 #{i}"), a, &[buy(days(1), "10")]).await);
    }
    tens.sort();
    evaluate(&app, a).await;
    // 70 → A (0 above); the 10s by id: 70 above → A, 80 → B, 90 → B.
    assert_eq!(abc_of(&app, &top).await, "A");
    assert_eq!(abc_of(&app, &tens[0]).await, "A");
    assert_eq!(abc_of(&app, &tens[1]).await, "B");
    assert_eq!(abc_of(&app, &tens[2]).await, "B");
}

// ---------------------------------------------------------------------------------------
// 7. Lifecycle

async fn lifecycle_stages_after_a_run(app: TestApp) {
    let a = origin() + days(200);
    let cases: Vec<(&str, Vec<Event>, &str, &str)> = vec![
        // (label, purchases, stage with the defaults, stage with atRiskDays 9, churnDays 180)
        ("no purchase", vec![], "PROSPECT", "PROSPECT"),
        ("one purchase", vec![buy(days(9), "1")], "NEW", "NEW"),
        (
            "one purchase 10 days ago",
            vec![buy(days(10), "1")],
            "NEW",
            "AT_RISK",
        ),
        (
            "two purchases",
            vec![buy(days(20), "1"), buy(days(5), "1")],
            "GROWING",
            "GROWING",
        ),
        (
            "two purchases, one before the window",
            vec![buy(days(400), "1"), buy(days(5), "1")],
            "GROWING",
            "GROWING",
        ),
        (
            "a refund only",
            vec![refund(days(5), "1")],
            "PROSPECT",
            "PROSPECT",
        ),
        (
            "last purchase 180 days ago",
            vec![buy(days(180), "1")],
            "NEW",
            "AT_RISK",
        ),
        (
            "last purchase 181 days ago",
            vec![buy(days(181), "1")],
            "AT_RISK",
            "CHURNED",
        ),
        (
            "two purchases, the last 181 days ago",
            vec![buy(days(300), "1"), buy(days(181), "1")],
            "AT_RISK",
            "CHURNED",
        ),
        (
            "last purchase 365 days ago",
            vec![buy(days(365), "1")],
            "AT_RISK",
            "CHURNED",
        ),
        (
            "last purchase 366 days ago",
            vec![buy(days(366), "1")],
            "CHURNED",
            "CHURNED",
        ),
    ];
    let mut ids = Vec::new();
    for (label, events, ..) in &cases {
        ids.push(customer_with(&app, label, a, events).await);
    }
    evaluate(&app, a).await;
    for ((label, _, stage, _), id) in cases.iter().zip(&ids) {
        assert_eq!(
            customer(&app, id).await["lifecycleStage"],
            *stage,
            "{label}"
        );
    }

    app.ok(
        "mutation { updateProgramSettings(input: { atRiskDays: 9, churnDays: 180 }) { atRiskDays } }",
        json!({}),
    )
    .await;
    evaluate(&app, a).await;
    for ((label, _, _, stage), id) in cases.iter().zip(&ids) {
        assert_eq!(
            customer(&app, id).await["lifecycleStage"],
            *stage,
            "{label}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 8. Run records

async fn runs_are_recorded(app: TestApp) {
    let a = origin() + days(200);
    customer_with(&app, "Buyer", a, &[buy(days(1), "1")]).await;
    app.create_customer(json!({ "name": "Prospect 1" })).await;
    app.create_customer(json!({ "name": "Prospect 2" })).await;

    let before = Utc::now() - secs(1);
    let run = evaluate(&app, a).await;
    let after = Utc::now() + secs(1);
    assert_eq!(run["asOf"], ts(a));
    assert_eq!(counts(&run), (3, 1, 0));
    let (started, finished) = (parse(&run["startedAt"]), parse(&run["finishedAt"]));
    assert!(
        before <= started && started <= finished && finished <= after,
        "{run:#}"
    );
    let stored = evaluation_run(&app, &app.admin(), run["id"].as_str().unwrap()).await;
    assert_eq!(stored["error"], Value::Null);
    let mut without_error = stored.clone();
    without_error.as_object_mut().unwrap().remove("error");
    assert_eq!(without_error, run);

    // Without asOf a run is as of now: the purchase (401 days ago) left the window, so
    // the buyer is only marked.
    let before = Utc::now() - secs(1);
    let run = evaluate_vars(&app, json!({})).await;
    let after = Utc::now() + secs(1);
    let as_of = parse(&run["asOf"]);
    assert!(before <= as_of && as_of <= after, "{run:#}");
    assert_eq!(counts(&run), (3, 0, 0));

    // Unknown runs are null.
    let missing = app
        .ok(
            "query($a: ID!, $b: ID!) { a: evaluationRun(id: $a) { id } b: evaluationRun(id: $b) { id } }",
            json!({ "a": uuid::Uuid::now_v7().to_string(), "b": "not-an-id" }),
        )
        .await;
    assert_eq!(missing, json!({ "a": null, "b": null }));
}

async fn a_run_without_waiting_can_be_polled_until_it_succeeds(app: TestApp) {
    let a = origin() + days(200);
    let buyer = customer_with(&app, "Buyer", a, &[buy(days(1), "1")]).await;
    app.create_customer(json!({ "name": "Prospect" })).await;
    let body = evaluate_as(
        &app,
        Some(&app.admin()),
        json!({ "asOf": ts(a), "wait": false }),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let started = &body["data"]["evaluateTiers"];
    assert!(
        ["RUNNING", "SUCCEEDED"].contains(&started["status"].as_str().unwrap()),
        "{started:#}"
    );
    assert_eq!(started["asOf"], ts(a));
    let id = started["id"].as_str().unwrap();
    let mut run = Value::Null;
    for _ in 0..200 {
        run = evaluation_run(&app, &app.admin(), id).await;
        if run["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
    assert!(run["finishedAt"].is_string());
    assert_eq!(counts(&run), (2, 1, 0));
    assert_eq!(tier(&customer(&app, &buyer).await), "regular");
}

async fn customer_ids_limit_what_a_run_changes(app: TestApp) {
    let a = origin() + days(200);
    let chosen = customer_with(&app, "Chosen", a, &[buy(days(2), "1")]).await;
    let other = customer_with(&app, "Other", a, &[buy(days(1), "1")]).await;
    let run = evaluate_only(&app, a, &[&chosen]).await;
    assert_eq!(counts(&run), (1, 1, 0));
    let c = customer(&app, &chosen).await;
    assert_eq!((score(&c), tier(&c)), (35.6, "regular"));
    assert_eq!(c["metrics"]["asOf"], ts(a));
    // Ranks are over every buyer in the window, evaluated or not: Chosen bought before
    // Other (1/2 → R3), and they tie on frequency and spend.
    assert_eq!(c["metrics"]["rfm"], rfm(3, 5, 5, "LOYAL"));
    let o = customer(&app, &other).await;
    assert_eq!((score(&o), tier(&o)), (0.0, "potential"));
    assert_eq!(o["metrics"]["rfm"], Value::Null);
    assert_eq!(o["tierHistory"]["totalCount"], 1);
}

async fn invalid_runs_are_refused(app: TestApp) {
    let known = app.create_customer(json!({ "name": "Known" })).await;
    let admin = app.admin();
    let in_an_hour = ts(Utc::now().trunc_subsecs(0) + Duration::hours(1));
    let cases = [
        (
            json!({ "customerIds": [known, uuid::Uuid::now_v7().to_string()] }),
            "NOT_FOUND",
            "",
        ),
        (
            json!({ "customerIds": [known, "not-an-id"] }),
            "BAD_USER_INPUT",
            "customerIds",
        ),
        (json!({ "asOf": in_an_hour }), "BAD_USER_INPUT", "asOf"),
        (json!({ "asOf": "yesterday" }), "BAD_USER_INPUT", ""),
    ];
    for (variables, code, field) in cases {
        let body = evaluate_as(&app, Some(&admin), variables.clone()).await;
        let message = assert_error(&body, code);
        assert!(message.contains(field), "{variables}: {message}");
    }
    // None of them left a run behind that would block this one.
    evaluate_vars(&app, json!({})).await;
}

/// Records a RUNNING run, as another server would while it works.
async fn insert_running_run(app: &TestApp, heartbeat: DateTime<Utc>) -> uuid::Uuid {
    let run = evaluation_run::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        status: Set(EvaluationStatus::Running),
        as_of: Set(heartbeat),
        customer_ids: Set(None),
        started_at: Set(heartbeat),
        finished_at: Set(None),
        customers_evaluated: Set(0),
        upgrades: Set(0),
        downgrades: Set(0),
        points_expired: Set(0),
        churn_model: Set(None),
        churn_model_note: Set(None),
        error: Set(None),
        skipped_customers: Set(0),
        skipped_customer_ids: Set(None),
        requested_by: Set("another-server".into()),
        heartbeat_at: Set(Some(heartbeat)),
    };
    run.insert(app.db.conn()).await.expect("a RUNNING run").id
}

async fn one_run_at_a_time_unless_the_other_was_abandoned(app: TestApp) {
    app.create_customer(json!({ "name": "Someone" })).await;
    let now = Utc::now().trunc_subsecs(6);
    let other = insert_running_run(&app, now - Duration::minutes(9)).await;
    let body = evaluate_as(&app, Some(&app.admin()), json!({})).await;
    assert_error(&body, "CONFLICT");
    let staff = app.staff();
    let stored = evaluation_run(&app, &staff, &other.to_string()).await;
    assert_eq!(stored["status"], "RUNNING");

    // Its heartbeat stops: after 10 minutes it no longer blocks, and is marked FAILED.
    evaluation_run::ActiveModel {
        id: Set(other),
        heartbeat_at: Set(Some(now - Duration::minutes(11))),
        ..Default::default()
    }
    .update(app.db.conn())
    .await
    .expect("heartbeat aged");
    let run = evaluate_vars(&app, json!({})).await;
    assert_eq!(counts(&run), (1, 0, 0));
    let stored = evaluation_run(&app, &staff, &other.to_string()).await;
    assert_eq!(stored["status"], "FAILED", "{stored:#}");
    assert!(stored["finishedAt"].is_string());
    assert!(stored["error"].is_string());
}

// ---------------------------------------------------------------------------------------
// 9. Roles

async fn only_admins_run_evaluations_and_staff_read_them(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Someone" })).await;
    let all_scopes = "customers:read customers:write interactions:write points:write rewards:redeem events:subscribe";
    for token in [
        app.staff(),
        app.partner(all_scopes),
        app.customer_token(&id),
    ] {
        let body = evaluate_as(&app, Some(&token), json!({})).await;
        assert_error(&body, "FORBIDDEN");
    }
    assert_error(&evaluate_as(&app, None, json!({})).await, "UNAUTHENTICATED");

    let run = evaluate_vars(&app, json!({})).await;
    let run_id = run["id"].as_str().unwrap();
    let read = evaluation_run(&app, &app.staff(), run_id).await;
    assert_eq!(
        (&read["id"], &read["status"]),
        (&run["id"], &json!("SUCCEEDED"))
    );
    let body = app
        .gql(
            Some(&app.customer_token(&id)),
            "query($id: ID!) { evaluationRun(id: $id) { id } }",
            json!({ "id": run_id }),
        )
        .await;
    assert_error(&body, "FORBIDDEN");
}

/// A population larger than one write batch (1,000 rows): batches are written while the
/// scan still streams, on both databases, and every customer is scored.
async fn a_run_writes_in_batches_while_it_scans(app: TestApp) {
    use tierwise_api::service::customers::{ProfileInput, create_many};
    let inputs = (0..2_100)
        .map(|i| ProfileInput {
            name: format!("Batch {i}"),
            ..Default::default()
        })
        .collect();
    let created = create_many(&app.db, inputs).await.expect("customers");
    let buyer = created[1_500].id.to_string();
    app.ok(
        RECORD,
        json!({ "inputs": [{ "customerId": buyer, "kind": "PURCHASE", "amount": "10000",
                              "occurredAt": ts(origin()) }] }),
    )
    .await;
    let run = evaluate(&app, origin() + days(1)).await;
    assert_eq!(run["status"], "SUCCEEDED");
    assert_eq!(run["customersEvaluated"], 2_100);
    assert_eq!(run["upgrades"], 1);
    let scored = customer(&app, &buyer).await;
    assert_eq!(scored["tier"]["key"], "regular");
    assert_eq!(scored["metrics"]["rfm"]["segment"], "CHAMPIONS");
    assert_eq!(scored["metrics"]["abcClass"], "A");
}

on_both!(
    a_run_writes_in_batches_while_it_scans,
    every_band_boundary_scores_as_the_contract_says,
    without_a_survey_the_weights_are_renormalised,
    runs_upgrade_at_once_and_downgrade_one_tier_after_the_grace_period,
    a_run_at_or_above_the_minimum_clears_the_mark,
    a_run_in_the_past_ignores_later_interactions,
    a_limited_run_sets_the_metrics_instant,
    an_earlier_run_sets_the_metrics_instant,
    rfm_quintiles_rank_buyers_in_the_window_and_ties_share,
    rfm_segments_follow_the_grid,
    abc_classes_cut_lifetime_spend_at_80_and_95_percent,
    abc_a_while_the_spend_above_is_below_80_percent,
    abc_ties_in_spend_are_ranked_by_id,
    lifecycle_stages_after_a_run,
    runs_are_recorded,
    a_run_without_waiting_can_be_polled_until_it_succeeds,
    customer_ids_limit_what_a_run_changes,
    invalid_runs_are_refused,
    one_run_at_a_time_unless_the_other_was_abandoned,
    only_admins_run_evaluations_and_staff_read_them,
);

// ---------------------------------------------------------------------------------------
// 10. `tierwise evaluate` (SQLite, like the other tests of the binary)

mod cli {
    use std::process::{Command, Output};

    use chrono::{DateTime, Utc};
    use entity::enums::{EvaluationStatus, InteractionKind};
    use entity::{customer, evaluation_run, tier};
    use sea_orm::EntityTrait;
    use tierwise_api::app::prepare_database;
    use tierwise_api::domain::interaction::RawInteraction;
    use tierwise_api::service::customers::ProfileInput;
    use tierwise_api::service::interactions::{CustomerRef, RecordRequest};
    use tierwise_api::store::Db;
    use uuid::Uuid;

    use super::{days, origin};
    use crate::helpers::SECRET;

    fn evaluate(url: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tierwise"))
            .current_dir(std::env::temp_dir())
            .env_remove("JWT_PUBLIC_KEY_FILE")
            .env_remove("JWT_ISSUER")
            .env_remove("JWT_AUDIENCE")
            .env_remove("EVALUATION_SCHEDULE")
            .env("DATABASE_URL", url)
            .env("JWT_SECRET", SECRET)
            .env("DEMO_DATA", "false")
            .arg("evaluate")
            .args(args)
            .output()
            .expect("tierwise runs")
    }

    async fn add_customer(db: &Db, name: &str, purchases: &[(DateTime<Utc>, &str)]) -> Uuid {
        let created = tierwise_api::service::customers::create(
            db,
            ProfileInput {
                name: name.into(),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("customer created");
        for (at, amount) in purchases {
            let request = RecordRequest {
                customer: Some(CustomerRef::Id(created.id)),
                interaction: RawInteraction {
                    kind: InteractionKind::Purchase,
                    occurred_at: Some(*at),
                    amount: Some(amount.parse().unwrap()),
                    currency: None,
                    channel: None,
                    rating: None,
                    note: None,
                    order_ref: None,
                },
                idempotency_key: None,
            };
            tierwise_api::service::interactions::record(
                db,
                tierwise_api::service::Caller::named("cli-test"),
                request,
            )
            .await
            .expect("purchase recorded");
        }
        created.id
    }

    async fn tier_key(db: &Db, id: Uuid) -> String {
        let c = customer::Entity::find_by_id(id)
            .one(db.conn())
            .await
            .unwrap()
            .unwrap();
        tier::Entity::find_by_id(c.tier_id)
            .one(db.conn())
            .await
            .unwrap()
            .unwrap()
            .key
    }

    #[tokio::test]
    async fn tierwise_evaluate_runs_and_records_an_evaluation() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/tierwise.db", dir.path().display());
        let config = crate::helpers::test_config(&url);
        let (db, _) = prepare_database(&config).await.expect("database");
        let t0 = origin();
        let twelve: Vec<(DateTime<Utc>, &str)> = (0..12)
            .map(|i| (t0 + chrono::Duration::minutes(i), "1000"))
            .collect();
        let big = add_customer(&db, "Big", &twelve).await;
        let small = add_customer(&db, "Small", &[(t0, "1")]).await;
        let prospect = add_customer(&db, "Prospect", &[]).await;

        // Refused: asOf in the future.
        let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let refused = evaluate(&url, &["--quiet", "--as-of", &future]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("asOf"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );

        // The day after t0: Big (recency, frequency and monetary 100) → 100 → vip;
        // Small (20 + 6 + 6) / 0.9 = 35.6 → regular.
        let as_of = t0 + days(1);
        let output = evaluate(&url, &["--as-of", &as_of.to_rfc3339()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary = stdout
            .lines()
            .find(|line| line.starts_with("evaluation run "))
            .unwrap_or_else(|| panic!("no summary in {stdout}"));
        for part in [
            "SUCCEEDED",
            "3 customers evaluated",
            "2 upgrades",
            "0 downgrades",
        ] {
            assert!(summary.contains(part), "{part}: {summary}");
        }
        let id: Uuid = summary["evaluation run ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("the run's id");

        let run = evaluation_run::Entity::find_by_id(id)
            .one(db.conn())
            .await
            .unwrap()
            .expect("the run is recorded");
        assert_eq!(run.status, EvaluationStatus::Succeeded);
        assert_eq!(run.as_of, as_of);
        assert!(run.finished_at.is_some());
        assert_eq!(
            (run.customers_evaluated, run.upgrades, run.downgrades),
            (3, 2, 0)
        );
        assert_eq!(tier_key(&db, big).await, "vip");
        assert_eq!(tier_key(&db, small).await, "regular");
        assert_eq!(tier_key(&db, prospect).await, "potential");
        // Three customers are too few for the churn model, and the CLI says so.
        assert!(stdout.contains("churn model: none fitted"), "{stdout}");
        assert!(stdout.contains("too few customers"), "{stdout}");
    }
}
