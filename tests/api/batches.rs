//! `recordInteractions` is written set-based: the rules run in memory over the whole
//! batch and the result is written in a fixed number of statements. These tests hold it
//! to the row-by-row rules: the same interactions recorded one at a time, each in its own
//! call, give exactly the same ledgers, metrics, tiers, referrals and answers.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, on_both, spawn_app};

const PAYLOAD: &str = "duplicate pointsEarned
    interaction { kind amount orderRef occurredAt rating }
    customer { externalRef pointsBalance score lifecycleStage tier { key }
      metrics { purchaseCount netSpend lifetimeSpend averageOrderValue engagementCount
                latestNps outstandingReceivable firstPurchaseAt lastPurchaseAt recencyDays } }
    tierChange { from { key } to { key } reason score }";

const STATE: &str = "query($ref: String!) { customerByExternalRef(externalRef: $ref) {
    pointsBalance score lifecycleStage tier { key }
    metrics { purchaseCount netSpend lifetimeSpend averageOrderValue engagementCount
              latestNps outstandingReceivable firstPurchaseAt lastPurchaseAt recencyDays }
    pointsLedger(first: 100) { nodes { delta balanceAfter kind reason expiresAt } }
    tierHistory(first: 50) { nodes { from { key } to { key } reason score } }
    referrals { status referrerPoints refereePoints referee { externalRef } }
} }";

/// The twin of `app`: a server on a fresh database of the same backend.
async fn twin(app: &TestApp) -> TestApp {
    let backend = match app.db.conn().get_database_backend() {
        sea_orm::DbBackend::Sqlite => Backend::Sqlite,
        _ => Backend::Postgres,
    };
    spawn_app(backend)
        .await
        .expect("the backend of the first app")
}

/// The customers of the scenario: R refers A and B, and may be rewarded once a year,
/// so that the second of its referees to buy is refused; C bought before.
async fn program_and_customers(app: &TestApp) {
    app.ok(
        "mutation { updateProgramSettings(input: { maxRewardedReferralsPerYear: 1, \
         referrerBonus: 300, refereeBonus: 100 }) { referrerBonus } }",
        json!({}),
    )
    .await;
    let referrer = app
        .ok(
            "mutation { createCustomer(input: { name: \"Ren Rui\", externalRef: \"R\" }) { referralCode } }",
            json!({}),
        )
        .await["createCustomer"]["referralCode"]
        .as_str()
        .expect("a code")
        .to_owned();
    for (name, reference, code) in [
        ("An Na", "A", Some(&referrer)),
        ("Bai Bo", "B", Some(&referrer)),
        ("Cao Cai", "C", None),
        ("Deng Di", "D", None),
    ] {
        let mut input = json!({ "name": name, "externalRef": reference });
        if let Some(code) = code {
            input["referralCode"] = json!(code);
        }
        app.ok(
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await;
    }
}

/// A fixed sequence of interactions touching every rule: purchases at growing amounts
/// (tier upgrades mid-batch change the multiplier of the next purchase), first
/// purchases settling referrals (one over the referrer's yearly cap), refunds of orders
/// bought earlier (before the batch and within it), partial and whole, surveys and
/// engagements, and idempotency keys sent again with the same request.
fn scenario() -> Vec<Value> {
    let at = |days: i64| {
        (Utc::now() - Duration::days(days) - Duration::hours(12))
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let mut inputs = Vec::new();
    let mut seed: u64 = 17;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let people = ["R", "A", "B", "C", "D"];
    let mut orders: Vec<(String, String, i64)> = vec![("C".into(), "before-1".into(), 300)];
    for n in 0..60 {
        let who = people[next(5) as usize];
        let occurred = at(40 - (n as i64) / 2);
        let input = match next(10) {
            0..=4 => {
                let amount = 50 + next(20) as i64 * 100;
                let order = format!("o-{n}");
                orders.push((who.into(), order.clone(), amount));
                json!({ "customerExternalRef": who, "kind": "PURCHASE", "amount": format!("{amount}.00"),
                        "orderRef": order, "occurredAt": occurred })
            }
            5 | 6 if !orders.is_empty() => {
                let index = next(orders.len() as u64) as usize;
                let (owner, order, left) = orders[index].clone();
                let part = if next(2) == 0 {
                    left
                } else {
                    (left / 3).max(1)
                };
                if part == left {
                    orders.remove(index);
                } else {
                    orders[index].2 -= part;
                }
                json!({ "customerExternalRef": owner, "kind": "REFUND", "amount": format!("{part}.00"),
                        "orderRef": order, "occurredAt": occurred })
            }
            7 => json!({ "customerExternalRef": who, "kind": "SURVEY", "rating": next(11),
                         "occurredAt": occurred }),
            8 => json!({ "customerExternalRef": who, "kind": "VISIT", "occurredAt": occurred }),
            _ => {
                let kind = if next(2) == 0 { "SHIPMENT" } else { "PAYMENT" };
                json!({ "customerExternalRef": who, "kind": kind,
                        "amount": format!("{}.00", 10 + next(90)), "occurredAt": occurred })
            }
        };
        inputs.push(input);
    }
    // Keys: some inputs carry one, and a few are sent again later, unchanged.
    for (n, input) in inputs.iter_mut().enumerate() {
        if n % 4 == 0 {
            input["idempotencyKey"] = json!(format!("key-{n}"));
        }
    }
    // Inserted from the back, so that each index still names an input with a key.
    for n in [36, 20, 8] {
        let again = inputs[n].clone();
        inputs.insert(n + 5, again);
    }
    inputs
}

async fn record_one_at_a_time(app: &TestApp, inputs: &[Value]) -> Vec<Value> {
    let query = format!(
        "mutation($input: RecordInteractionInput!) {{ recordInteraction(input: $input) {{ {PAYLOAD} }} }}"
    );
    let mut answers = Vec::new();
    for input in inputs {
        answers.push(app.ok(&query, json!({ "input": input })).await["recordInteraction"].clone());
    }
    answers
}

async fn record_in_batches(app: &TestApp, inputs: &[Value], sizes: &[usize]) -> Vec<Value> {
    let query = format!(
        "mutation($inputs: [RecordInteractionInput!]!) {{ recordInteractions(inputs: $inputs) {{ {PAYLOAD} }} }}"
    );
    let mut answers = Vec::new();
    let mut rest = inputs;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().expect("sizes")).min(rest.len());
        let (batch, after) = rest.split_at(size);
        let data = app.ok(&query, json!({ "inputs": batch })).await;
        answers.extend(
            data["recordInteractions"]
                .as_array()
                .expect("a list")
                .iter()
                .cloned(),
        );
        rest = after;
    }
    answers
}

/// Each customer's state, with referral codes (drawn at random per database) left out of
/// the ledger's reasons.
async fn states(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    for reference in ["R", "A", "B", "C", "D"] {
        let mut state = app.ok(STATE, json!({ "ref": reference })).await;
        let entries = &mut state["customerByExternalRef"]["pointsLedger"]["nodes"];
        for entry in entries.as_array_mut().expect("entries") {
            if entry["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("referral "))
            {
                entry["reason"] = json!("referral");
            }
        }
        all.push(state);
    }
    all
}

/// Prior history the apps share: C bought order `before-1` for 300, 50 days ago.
fn history_before() -> Value {
    json!({ "customerExternalRef": "C", "kind": "PURCHASE", "amount": "300.00",
            "orderRef": "before-1",
            "occurredAt": (Utc::now() - Duration::days(50)).to_rfc3339_opts(SecondsFormat::Secs, true) })
}

async fn a_batch_writes_what_one_at_a_time_writes(app: TestApp) {
    let batched = twin(&app).await;
    let inputs = scenario();
    let before = [history_before()];
    for server in [&app, &batched] {
        program_and_customers(server).await;
        record_one_at_a_time(server, &before).await;
    }
    let one_by_one = record_one_at_a_time(&app, &inputs).await;
    // Uneven batches, so that state carries across calls and within them.
    let in_batches = record_in_batches(&batched, &inputs, &[7, 1, 23, 2, 40]).await;
    assert_eq!(one_by_one.len(), inputs.len());
    for (n, (single, batch)) in one_by_one.iter().zip(&in_batches).enumerate() {
        assert_eq!(single, batch, "answer to input {n}: {}", inputs[n]);
    }
    assert!(one_by_one.iter().any(|a| a["duplicate"] == true));
    assert!(one_by_one.iter().any(|a| !a["tierChange"].is_null()));
    assert!(
        one_by_one
            .iter()
            .any(|a| a["interaction"]["kind"] == "REFUND" && a["pointsEarned"].as_i64() < Some(0))
    );
    let (single, batch) = (states(&app).await, states(&batched).await);
    assert_eq!(single, batch);
    let referrals = &single[0]["customerByExternalRef"]["referrals"];
    let statuses: Vec<&str> = referrals
        .as_array()
        .expect("referrals")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default())
        .collect();
    assert!(statuses.contains(&"REWARDED"), "{referrals}");
    assert!(statuses.contains(&"REJECTED"), "{referrals}");

    // The whole sequence as one batch, on a third database, gives the same too.
    let whole = twin(&app).await;
    program_and_customers(&whole).await;
    record_one_at_a_time(&whole, &before).await;
    let answers = record_in_batches(&whole, &inputs, &[inputs.len()]).await;
    assert_eq!(answers, one_by_one);
    assert_eq!(states(&whole).await, single);
}

/// A batch costs a fixed number of statements, however many interactions and customers
/// it holds: 200 purchases for 200 customers, and 200 for one customer.
async fn a_batch_costs_a_fixed_number_of_statements(app: TestApp) {
    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push(
            app.create_customer(json!({ "name": format!("Batch {n}") }))
                .await,
        );
    }
    let query = "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { pointsEarned } }";
    let spread: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            json!({ "customerId": id, "kind": "PURCHASE", "amount": "100.00",
                               "idempotencyKey": format!("spread-{n}") })
        })
        .collect();
    let before = app.db.statement_count();
    let answers = app.ok(query, json!({ "inputs": spread })).await;
    let spread_cost = app.db.statement_count() - before;
    assert_eq!(answers["recordInteractions"][199]["pointsEarned"], 100);

    let one: Vec<Value> = (0..200)
        .map(|_| json!({ "customerId": ids[0], "kind": "PURCHASE", "amount": "10.00" }))
        .collect();
    let before = app.db.statement_count();
    app.ok(query, json!({ "inputs": one })).await;
    let one_cost = app.db.statement_count() - before;
    assert!(
        spread_cost <= 30,
        "{spread_cost} statements for 200 customers"
    );
    assert!(
        one_cost <= 30,
        "{one_cost} statements for 200 purchases of one customer"
    );
}

on_both!(
    a_batch_writes_what_one_at_a_time_writes,
    a_batch_costs_a_fixed_number_of_statements,
);
