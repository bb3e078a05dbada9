//! Recording interactions (`recordInteraction`, `recordInteractions`) and moving tiers by
//! hand (`setCustomerTier`): validation, metrics, score and tier kept current on the write
//! path, points, idempotency, concurrency, paging and roles.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, instant, on_both};

const CUSTOMER: &str = "id score lifecycleStage pointsBalance tier { key } \
    metrics { purchaseCount netSpend lifetimeSpend averageOrderValue engagementCount latestNps \
              outstandingReceivable firstPurchaseAt lastPurchaseAt recencyDays } \
    interactions { totalCount } \
    tierHistory { totalCount nodes { from { key } to { key } reason score note } }";

const TIER_CHANGE: &str = "from { key } to { key } reason score note";

const SET_TIER: &str = "mutation($customerId: ID!, $tierKey: String!, $note: String!) {
  setCustomerTier(customerId: $customerId, tierKey: $tierKey, note: $note) {
    from { key } to { key } reason score note customer { id tier { key } }
  }
}";

const INTERACTIONS_PAGE: &str =
    "query($id: ID!, $kinds: [InteractionKind!], $first: Int, $after: String) {
  customer(id: $id) {
    interactions(kinds: $kinds, first: $first, after: $after) {
      totalCount
      edges { cursor node { id kind occurredAt } }
      nodes { id }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}";

fn payload_fields() -> String {
    format!(
        "interaction {{ id kind occurredAt amount currency channel rating note orderRef recordedBy recordedAt }} \
         customer {{ {CUSTOMER} }} pointsEarned duplicate tierChange {{ {TIER_CHANGE} }}"
    )
}

fn record_mutation() -> String {
    format!(
        "mutation($input: RecordInteractionInput!) {{ recordInteraction(input: $input) {{ {} }} }}",
        payload_fields()
    )
}

fn batch_mutation() -> String {
    format!(
        "mutation($inputs: [RecordInteractionInput!]!) {{ recordInteractions(inputs: $inputs) {{ {} }} }}",
        payload_fields()
    )
}

/// Records one interaction as admin; fails the test on any error.
async fn record(app: &TestApp, input: Value) -> Value {
    app.ok(&record_mutation(), json!({ "input": input })).await["recordInteraction"].clone()
}

/// Records one interaction with `token`; the whole response body.
async fn try_record(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(Some(token), &record_mutation(), json!({ "input": input }))
        .await
}

/// Records a batch as admin; fails the test on any error.
async fn record_batch(app: &TestApp, inputs: Value) -> Vec<Value> {
    app.ok(&batch_mutation(), json!({ "inputs": inputs })).await["recordInteractions"]
        .as_array()
        .expect("a list of payloads")
        .clone()
}

async fn try_record_batch(app: &TestApp, token: &str, inputs: Value) -> Value {
    app.gql(Some(token), &batch_mutation(), json!({ "inputs": inputs }))
        .await
}

async fn customer(app: &TestApp, id: &str) -> Value {
    let query = format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER} }} }}");
    app.ok(&query, json!({ "id": id })).await["customer"].clone()
}

async fn set_tier(app: &TestApp, token: &str, customer_id: &str, tier: &str, note: &str) -> Value {
    app.gql(
        Some(token),
        SET_TIER,
        json!({ "customerId": customer_id, "tierKey": tier, "note": note }),
    )
    .await
}

/// A minimal input of `kind` for `customer_id`.
fn input(customer_id: &str, kind: &str) -> Value {
    json!({ "customerId": customer_id, "kind": kind })
}

fn purchase(customer_id: &str, amount: &str) -> Value {
    with(input(customer_id, "PURCHASE"), json!({ "amount": amount }))
}

/// `base` with the fields of `extra` added or replaced.
fn with(mut base: Value, extra: Value) -> Value {
    let fields = base.as_object_mut().expect("an object");
    for (key, value) in extra.as_object().expect("an object") {
        fields.insert(key.clone(), value.clone());
    }
    base
}

fn from_now(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn interaction_count(customer: &Value) -> i64 {
    customer["interactions"]["totalCount"].as_i64().unwrap()
}

/// The tier moves in `customer`'s history, newest first, as `(from, to, reason)`.
fn history(customer: &Value) -> Vec<(Value, Value, Value)> {
    customer["tierHistory"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["from"]["key"].clone(),
                n["to"]["key"].clone(),
                n["reason"].clone(),
            )
        })
        .collect()
}

async fn invalid_interactions_are_refused_naming_the_field(app: TestApp) {
    let id = app
        .create_customer(json!({ "name": "Li Wei", "externalRef": "CRM-1" }))
        .await;
    let mut cases = Vec::new();
    for kind in ["PURCHASE", "REFUND", "SHIPMENT", "PAYMENT"] {
        cases.push((input(&id, kind), "input.amount"));
        for amount in ["0", "0.0000", "-5", "-0.01", "1.00001", "12.345678"] {
            cases.push((
                with(input(&id, kind), json!({ "amount": amount })),
                "input.amount",
            ));
        }
    }
    let future = |minutes| from_now(Duration::minutes(minutes));
    cases.extend([
        (
            with(input(&id, "VISIT"), json!({ "amount": "10.00" })),
            "input.amount",
        ),
        (
            with(purchase(&id, "10"), json!({ "currency": "USD" })),
            "input.currency",
        ),
        (
            with(purchase(&id, "10"), json!({ "currency": "EUR" })),
            "input.currency",
        ),
        (input(&id, "SURVEY"), "input.rating"),
        (
            with(input(&id, "SURVEY"), json!({ "rating": 11 })),
            "input.rating",
        ),
        (
            with(input(&id, "SURVEY"), json!({ "rating": -1 })),
            "input.rating",
        ),
        (
            with(input(&id, "FEEDBACK"), json!({ "rating": 0 })),
            "input.rating",
        ),
        (
            with(input(&id, "FEEDBACK"), json!({ "rating": 6 })),
            "input.rating",
        ),
        (
            with(input(&id, "VISIT"), json!({ "rating": 5 })),
            "input.rating",
        ),
        (
            with(purchase(&id, "10"), json!({ "occurredAt": future(10) })),
            "input.occurredAt",
        ),
        (
            with(
                input(&id, "VISIT"),
                json!({ "occurredAt": future(60 * 24) }),
            ),
            "input.occurredAt",
        ),
        (
            with(
                purchase(&id, "10"),
                json!({ "customerExternalRef": "CRM-1" }),
            ),
            "input.customer",
        ),
        (json!({ "kind": "VISIT" }), "input.customer"),
    ]);
    let token = app.admin();
    for (input, field) in cases {
        let body = try_record(&app, &token, input.clone()).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.starts_with(field), "{field}: {message} for {input}");
    }

    let unknown_ref = json!({ "customerExternalRef": "CRM-404", "kind": "VISIT" });
    assert_error(&try_record(&app, &token, unknown_ref).await, "NOT_FOUND");
    let unknown_id = input(&uuid::Uuid::new_v4().to_string(), "VISIT");
    assert_error(&try_record(&app, &token, unknown_id).await, "NOT_FOUND");

    let after = customer(&app, &id).await;
    assert_eq!(interaction_count(&after), 0, "nothing was stored");
    assert_eq!(after["pointsBalance"], 0);
    assert_eq!(after["metrics"]["purchaseCount"], 0);
    assert_eq!(after["tierHistory"]["totalCount"], 1);

    // The limits' other side is accepted.
    let ok = record(
        &app,
        with(
            purchase(&id, "10.1234"),
            json!({ "currency": "CNY", "occurredAt": future(4) }),
        ),
    )
    .await;
    assert_eq!(ok["interaction"]["amount"], "10.1234");
    assert_eq!(ok["interaction"]["currency"], "CNY");
    for (kind, rating) in [
        ("SURVEY", 0),
        ("SURVEY", 10),
        ("FEEDBACK", 1),
        ("FEEDBACK", 5),
    ] {
        let ok = record(&app, with(input(&id, kind), json!({ "rating": rating }))).await;
        assert_eq!(ok["interaction"]["rating"], rating);
    }
    assert_eq!(interaction_count(&customer(&app, &id).await), 5);
}

async fn customers_are_addressed_by_external_ref(app: TestApp) {
    let id = app
        .create_customer(json!({ "name": "Zhang Min", "externalRef": "POS-42" }))
        .await;
    let other = app
        .create_customer(json!({ "name": "Other", "externalRef": "POS-43" }))
        .await;
    let payload = record(
        &app,
        json!({ "customerExternalRef": "POS-42", "kind": "PURCHASE", "amount": "88.80" }),
    )
    .await;
    assert_eq!(payload["customer"]["id"], id.as_str());
    assert_eq!(payload["customer"]["metrics"]["netSpend"], "88.80");
    let by_ref = app
        .ok(
            "{ customerByExternalRef(externalRef: \"POS-42\") { interactions { totalCount nodes { id } } } }",
            json!({}),
        )
        .await;
    let interactions = &by_ref["customerByExternalRef"]["interactions"];
    assert_eq!(interactions["totalCount"], 1);
    assert_eq!(interactions["nodes"][0]["id"], payload["interaction"]["id"]);
    assert_eq!(interaction_count(&customer(&app, &other).await), 0);
}

async fn metrics_score_and_stage_are_current_after_each_interaction(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Chen Jie" })).await;
    let fresh = customer(&app, &id).await;
    assert_eq!(fresh["lifecycleStage"], "PROSPECT");
    assert_eq!(fresh["score"], 0.0);
    let metrics = &fresh["metrics"];
    assert_eq!(metrics["purchaseCount"], 0);
    assert_eq!(metrics["netSpend"], "0.00");
    assert_eq!(metrics["lifetimeSpend"], "0.00");
    assert_eq!(metrics["outstandingReceivable"], "0.00");
    assert_eq!(metrics["averageOrderValue"], Value::Null);
    assert_eq!(metrics["recencyDays"], Value::Null);
    assert_eq!(metrics["firstPurchaseAt"], Value::Null);
    assert_eq!(metrics["latestNps"], Value::Null);

    // A purchase now: recency 100, frequency 20 (1), monetary 20 (≥ 0.01), engagement 0,
    // no nps: (0.2·100 + 0.3·20 + 0.3·20 + 0.1·0) / 0.9 = 35.56.
    let first = record(
        &app,
        with(
            purchase(&id, "129.9"),
            json!({ "channel": "STORE", "note": "  spring sale ", "orderRef": "ORD-1", "currency": "CNY" }),
        ),
    )
    .await;
    let interaction = &first["interaction"];
    assert_eq!(interaction["kind"], "PURCHASE");
    assert_eq!(interaction["amount"], "129.90");
    assert_eq!(interaction["channel"], "STORE");
    assert_eq!(interaction["note"], "spring sale");
    assert_eq!(interaction["orderRef"], "ORD-1");
    assert_eq!(interaction["rating"], Value::Null);
    assert!((Utc::now() - instant(&interaction["occurredAt"])).num_seconds() < 60);
    assert!(instant(&interaction["recordedAt"]) >= instant(&interaction["occurredAt"]));
    let c = &first["customer"];
    assert_eq!(c["metrics"]["purchaseCount"], 1);
    assert_eq!(c["metrics"]["netSpend"], "129.90");
    assert_eq!(c["metrics"]["lifetimeSpend"], "129.90");
    assert_eq!(c["metrics"]["averageOrderValue"], "129.90");
    assert_eq!(c["metrics"]["recencyDays"], 0);
    assert_eq!(c["metrics"]["firstPurchaseAt"], interaction["occurredAt"]);
    assert_eq!(c["metrics"]["lastPurchaseAt"], interaction["occurredAt"]);
    assert_eq!(c["lifecycleStage"], "NEW");
    assert_eq!(c["score"], 35.6);
    assert_eq!(c["tier"]["key"], "regular");
    assert_eq!(first["pointsEarned"], 129);
    assert_eq!(c["pointsBalance"], 129);
    let now_at = interaction["occurredAt"].clone();

    // A purchase backfilled 400 days ago counts all time, not in the 365-day window.
    let long_ago = from_now(Duration::days(-400));
    let backfill = record(
        &app,
        with(purchase(&id, "500"), json!({ "occurredAt": long_ago })),
    )
    .await;
    assert_eq!(backfill["pointsEarned"], 500);
    assert_eq!(
        instant(&backfill["interaction"]["occurredAt"]),
        instant(&json!(long_ago))
    );
    let c = &backfill["customer"];
    assert_eq!(c["metrics"]["purchaseCount"], 1);
    assert_eq!(c["metrics"]["netSpend"], "129.90");
    assert_eq!(c["metrics"]["lifetimeSpend"], "629.90");
    assert_eq!(c["metrics"]["averageOrderValue"], "129.90");
    assert_eq!(
        instant(&c["metrics"]["firstPurchaseAt"]),
        instant(&json!(long_ago))
    );
    assert_eq!(c["metrics"]["lastPurchaseAt"], now_at);
    assert_eq!(c["metrics"]["recencyDays"], 0);
    assert_eq!(c["lifecycleStage"], "GROWING", "two purchases ever");
    assert_eq!(c["score"], 35.6);
    assert_eq!(backfill["tierChange"], Value::Null);

    // A refund lowers net and lifetime spend, not the purchase count or average order.
    let refund = record(
        &app,
        with(input(&id, "REFUND"), json!({ "amount": "29.90" })),
    )
    .await;
    let c = &refund["customer"];
    assert_eq!(c["metrics"]["purchaseCount"], 1);
    assert_eq!(c["metrics"]["netSpend"], "100.00");
    assert_eq!(c["metrics"]["lifetimeSpend"], "600.00");
    assert_eq!(c["metrics"]["averageOrderValue"], "129.90");
    assert_eq!(c["metrics"]["lastPurchaseAt"], now_at);
    assert_eq!(c["score"], 35.6);

    // Shipments and payments feed only the receivable.
    let shipped = record(
        &app,
        with(input(&id, "SHIPMENT"), json!({ "amount": "1000" })),
    )
    .await;
    assert_eq!(
        shipped["customer"]["metrics"]["outstandingReceivable"],
        "1000.00"
    );
    let paid = record(
        &app,
        with(input(&id, "PAYMENT"), json!({ "amount": "400.5" })),
    )
    .await;
    let c = &paid["customer"];
    assert_eq!(c["metrics"]["outstandingReceivable"], "599.50");
    assert_eq!(c["metrics"]["purchaseCount"], 1);
    assert_eq!(c["metrics"]["netSpend"], "100.00");
    assert_eq!(c["metrics"]["engagementCount"], 0);
    assert_eq!(c["score"], 35.6);

    // A promoter survey adds engagement (1 → 40) and nps (9 → 100), now in the mean:
    // 0.2·100 + 0.3·20 + 0.3·20 + 0.1·40 + 0.1·100 = 46.
    let survey = record(&app, with(input(&id, "SURVEY"), json!({ "rating": 9 }))).await;
    let c = &survey["customer"];
    assert_eq!(c["metrics"]["latestNps"], 9);
    assert_eq!(c["metrics"]["engagementCount"], 1);
    assert_eq!(c["score"], 46.0);
    // A later detractor survey replaces it: nps 0, so 36.
    let survey = record(&app, with(input(&id, "SURVEY"), json!({ "rating": 6 }))).await;
    let c = &survey["customer"];
    assert_eq!(c["metrics"]["latestNps"], 6);
    assert_eq!(c["metrics"]["engagementCount"], 2);
    assert_eq!(c["score"], 36.0);
    // An older survey does not count as the latest.
    let old_survey = record(
        &app,
        with(
            input(&id, "SURVEY"),
            json!({ "rating": 10, "occurredAt": from_now(Duration::days(-3)) }),
        ),
    )
    .await;
    assert_eq!(old_survey["customer"]["metrics"]["latestNps"], 6);
    // Engagement kinds all count; four engagements score 70: 20 + 6 + 6 + 7 + 0 = 39.
    let visit = record(&app, input(&id, "VISIT")).await;
    let c = &visit["customer"];
    assert_eq!(c["metrics"]["engagementCount"], 4);
    assert_eq!(c["score"], 39.0);
    assert_eq!(c["tier"]["key"], "regular");
    assert_eq!(visit["pointsEarned"], 0);

    // What the payload said is what a later read says.
    let read = customer(&app, &id).await;
    assert_eq!(read, visit["customer"]);
    assert_eq!(interaction_count(&read), 9);
    assert_eq!(read["pointsBalance"], 629);
}

async fn a_purchase_upgrades_at_once_and_more_purchases_reach_vip(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wang Fang" })).await;

    // recency 100, frequency 20, monetary 100, engagement 0, no nps:
    // (20 + 6 + 30 + 0) / 0.9 = 62.2.
    let big = record(&app, purchase(&id, "10000")).await;
    assert_eq!(big["customer"]["score"], 62.2);
    assert_eq!(big["customer"]["tier"]["key"], "regular");
    assert_eq!(big["pointsEarned"], 10000);
    let change = &big["tierChange"];
    assert_eq!(change["from"]["key"], "potential");
    assert_eq!(change["to"]["key"], "regular");
    assert_eq!(change["reason"], "INTERACTION");
    assert_eq!(change["score"], 62.2);
    assert_eq!(change["note"], Value::Null);
    assert_eq!(
        history(&big["customer"]),
        vec![
            (json!("potential"), json!("regular"), json!("INTERACTION")),
            (Value::Null, json!("potential"), json!("CREATED")),
        ]
    );

    // Two purchases: frequency 40, (20 + 12 + 30) / 0.9 = 68.9, still regular.
    let second = record(&app, purchase(&id, "10")).await;
    assert_eq!(second["customer"]["score"], 68.9);
    assert_eq!(second["tierChange"], Value::Null);
    assert_eq!(second["customer"]["tier"]["key"], "regular");
    assert_eq!(second["customer"]["tierHistory"]["totalCount"], 2);

    // Ten more in one batch: the fourth purchase (frequency 70) scores
    // (20 + 21 + 30) / 0.9 = 78.9 and upgrades to vip; it earns at regular's 1.0, the
    // ones after at vip's 2.0. Twelve purchases: (20 + 30 + 30) / 0.9 = 88.9.
    let inputs: Vec<Value> = (0..10).map(|_| purchase(&id, "10")).collect();
    let batch = record_batch(&app, json!(inputs)).await;
    assert_eq!(batch.len(), 10);
    let scores: Vec<f64> = batch
        .iter()
        .map(|p| p["customer"]["score"].as_f64().unwrap())
        .collect();
    assert_eq!(
        scores,
        [68.9, 78.9, 78.9, 78.9, 78.9, 78.9, 78.9, 78.9, 78.9, 88.9]
    );
    for (i, payload) in batch.iter().enumerate() {
        if i == 1 {
            let change = &payload["tierChange"];
            assert_eq!(change["from"]["key"], "regular");
            assert_eq!(change["to"]["key"], "vip");
            assert_eq!(change["reason"], "INTERACTION");
            assert_eq!(change["score"], 78.9);
        } else {
            assert_eq!(payload["tierChange"], Value::Null, "payload {i}");
        }
    }
    let earned: Vec<i64> = batch
        .iter()
        .map(|p| p["pointsEarned"].as_i64().unwrap())
        .collect();
    assert_eq!(earned, [10, 10, 20, 20, 20, 20, 20, 20, 20, 20]);

    let read = customer(&app, &id).await;
    assert_eq!(read["tier"]["key"], "vip");
    assert_eq!(read["score"], 88.9);
    assert_eq!(read["metrics"]["purchaseCount"], 12);
    assert_eq!(read["metrics"]["netSpend"], "10110.00");
    assert_eq!(read["pointsBalance"], 10000 + 10 + 10 + 10 + 8 * 20);
    assert_eq!(
        history(&read),
        vec![
            (json!("regular"), json!("vip"), json!("INTERACTION")),
            (json!("potential"), json!("regular"), json!("INTERACTION")),
            (Value::Null, json!("potential"), json!("CREATED")),
        ]
    );
    let tiers = app.ok("{ tiers { key memberCount } }", json!({})).await;
    assert_eq!(
        tiers["tiers"],
        json!([
            { "key": "potential", "memberCount": 0 },
            { "key": "regular", "memberCount": 0 },
            { "key": "vip", "memberCount": 1 },
        ])
    );
}

async fn purchases_earn_points_at_the_multiplier_of_the_tier_held(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Zhao Lei" })).await;
    let first = record(&app, purchase(&id, "99.99")).await;
    assert_eq!(first["pointsEarned"], 99);
    assert_eq!(first["customer"]["pointsBalance"], 99);

    for other in [
        input(&id, "VISIT"),
        with(input(&id, "SURVEY"), json!({ "rating": 8 })),
        with(input(&id, "FEEDBACK"), json!({ "rating": 4 })),
        input(&id, "COMPLAINT"),
        input(&id, "SERVICE_CONTACT"),
        input(&id, "CAMPAIGN_RESPONSE"),
        with(input(&id, "SHIPMENT"), json!({ "amount": "500" })),
        with(input(&id, "PAYMENT"), json!({ "amount": "500" })),
        with(input(&id, "REFUND"), json!({ "amount": "1" })),
    ] {
        let payload = record(&app, other.clone()).await;
        assert_eq!(payload["pointsEarned"], 0, "{other}");
        assert_eq!(payload["customer"]["pointsBalance"], 99, "{other}");
    }

    // Amounts below one point earn nothing, and nothing is rounded up.
    let tiny = record(&app, purchase(&id, "0.99")).await;
    assert_eq!(tiny["pointsEarned"], 0);

    let moved = set_tier(&app, &app.admin(), &id, "vip", "Key account").await;
    assert!(moved.get("errors").is_none(), "{moved}");
    let vip = record(&app, purchase(&id, "99.99")).await;
    assert_eq!(vip["pointsEarned"], 199, "floor(99.99 × 2.0)");
    assert_eq!(vip["customer"]["pointsBalance"], 99 + 199);
    let odd = record(&app, purchase(&id, "0.4999")).await;
    assert_eq!(odd["pointsEarned"], 0, "floor(0.9998)");
    assert_eq!(customer(&app, &id).await["pointsBalance"], 298);
}

async fn a_refund_of_an_order_reverses_its_points_in_proportion(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Tang Wen" })).await;
    let bought = record(
        &app,
        with(purchase(&id, "200"), json!({ "orderRef": "ORD-9" })),
    )
    .await;
    assert_eq!(bought["pointsEarned"], 200);

    // A quarter of the order back: a quarter of its points go.
    let refund = with(
        input(&id, "REFUND"),
        json!({ "amount": "50", "orderRef": "ORD-9" }),
    );
    let refunded = record(&app, refund).await;
    assert_eq!(refunded["pointsEarned"], -50);
    assert_eq!(refunded["customer"]["pointsBalance"], 150);
    assert_eq!(refunded["customer"]["metrics"]["netSpend"], "150.00");

    // A refund that names no order takes no points.
    let loose = record(&app, with(input(&id, "REFUND"), json!({ "amount": "10" }))).await;
    assert_eq!(loose["pointsEarned"], 0);
    assert_eq!(loose["customer"]["pointsBalance"], 150);

    // What is reversed is what the order earned, at the multiplier it earned at.
    let moved = set_tier(&app, &app.admin(), &id, "vip", "Key account").await;
    assert!(moved.get("errors").is_none(), "{moved}");
    let vip = record(
        &app,
        with(purchase(&id, "100"), json!({ "orderRef": "ORD-10" })),
    )
    .await;
    assert_eq!(vip["pointsEarned"], 200);
    let refund = with(
        input(&id, "REFUND"),
        json!({ "amount": "25", "orderRef": "ORD-10" }),
    );
    let refunded = record(&app, refund).await;
    assert_eq!(refunded["pointsEarned"], -50);
    assert_eq!(customer(&app, &id).await["pointsBalance"], 150 + 200 - 50);
}

async fn an_idempotency_key_records_once_under_parallel_retries(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Liu Yang" })).await;
    let token = app.admin();
    let query = record_mutation();
    let retried = with(
        purchase(&id, "50"),
        json!({ "idempotencyKey": "till-7-receipt-1001" }),
    );
    let bodies = join_all(
        (0..20).map(|_| app.gql(Some(&token), &query, json!({ "input": retried.clone() }))),
    )
    .await;
    let payloads: Vec<&Value> = bodies
        .iter()
        .map(|b| {
            assert!(b.get("errors").is_none(), "{b:#}");
            &b["data"]["recordInteraction"]
        })
        .collect();
    let originals = payloads.iter().filter(|p| p["duplicate"] == false).count();
    assert_eq!(originals, 1, "exactly one call recorded it");
    let first_id = payloads[0]["interaction"]["id"].clone();
    for payload in &payloads {
        assert_eq!(payload["interaction"]["id"], first_id);
        assert_eq!(payload["interaction"]["amount"], "50.00");
    }
    let after = customer(&app, &id).await;
    assert_eq!(interaction_count(&after), 1);
    assert_eq!(after["metrics"]["purchaseCount"], 1);
    assert_eq!(after["metrics"]["netSpend"], "50.00");
    assert_eq!(after["pointsBalance"], 50);

    // A later retry is a duplicate too.
    let again = record(&app, retried.clone()).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["interaction"]["id"], first_id);
    assert_eq!(again["tierChange"], Value::Null);

    // Another caller's key of the same name is its own.
    let staff = app.staff();
    let body = try_record(&app, &staff, retried.clone()).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let by_staff = &body["data"]["recordInteraction"];
    assert_eq!(by_staff["duplicate"], false);
    assert_ne!(by_staff["interaction"]["id"], first_id);
    assert_eq!(by_staff["interaction"]["recordedBy"], "staff-tester");
    let body = try_record(&app, &staff, retried).await;
    assert_eq!(body["data"]["recordInteraction"]["duplicate"], true);
    assert_eq!(
        body["data"]["recordInteraction"]["interaction"]["id"],
        by_staff["interaction"]["id"]
    );

    let after = customer(&app, &id).await;
    assert_eq!(interaction_count(&after), 2);
    assert_eq!(after["metrics"]["purchaseCount"], 2);
    assert_eq!(after["pointsBalance"], 100);
}

async fn parallel_purchases_for_one_customer_are_all_counted(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Huang Min" })).await;
    let token = app.staff();
    let query = record_mutation();
    let bodies = join_all((0..20).map(|_| {
        app.gql(
            Some(&token),
            &query,
            json!({ "input": purchase(&id, "10") }),
        )
    }))
    .await;
    for body in &bodies {
        assert!(body.get("errors").is_none(), "{body:#}");
        assert_eq!(body["data"]["recordInteraction"]["pointsEarned"], 10);
    }
    let upgrades = bodies
        .iter()
        .filter(|b| !b["data"]["recordInteraction"]["tierChange"].is_null())
        .count();
    assert_eq!(upgrades, 1, "potential → regular happened once");

    let after = customer(&app, &id).await;
    assert_eq!(interaction_count(&after), 20);
    assert_eq!(after["metrics"]["purchaseCount"], 20);
    assert_eq!(after["metrics"]["netSpend"], "200.00");
    assert_eq!(after["metrics"]["lifetimeSpend"], "200.00");
    assert_eq!(after["pointsBalance"], 200);
    // recency 100, frequency 100, monetary 20: (20 + 30 + 6) / 0.9 = 62.2.
    assert_eq!(after["score"], 62.2);
    assert_eq!(after["tier"]["key"], "regular");
    assert_eq!(after["tierHistory"]["totalCount"], 2);
}

async fn batches_are_all_or_nothing(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Xu Jing" })).await;
    let other = app
        .create_customer(json!({ "name": "Ma Lin", "externalRef": "B-2" }))
        .await;
    let token = app.admin();

    let invalid_third = json!([
        purchase(&id, "10"),
        input(&id, "VISIT"),
        with(input(&id, "SURVEY"), json!({ "rating": 11 })),
    ]);
    let body = try_record_batch(&app, &token, invalid_third).await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.starts_with("inputs[2].rating"), "{message}");
    let invalid_second = json!([
        input(&id, "VISIT"),
        with(input(&id, "VISIT"), json!({ "amount": "5" })),
    ]);
    let body = try_record_batch(&app, &token, invalid_second).await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.starts_with("inputs[1].amount"), "{message}");
    let unknown_third = json!([
        purchase(&id, "10"),
        input(&other, "VISIT"),
        json!({ "customerExternalRef": "B-404", "kind": "VISIT" }),
    ]);
    let body = try_record_batch(&app, &token, unknown_third).await;
    assert_error(&body, "NOT_FOUND");
    for customer_id in [&id, &other] {
        let c = customer(&app, customer_id).await;
        assert_eq!(
            interaction_count(&c),
            0,
            "nothing of a refused batch is kept"
        );
        assert_eq!(c["pointsBalance"], 0);
        assert_eq!(c["tierHistory"]["totalCount"], 1);
    }

    let too_many: Vec<Value> = (0..1001).map(|_| input(&id, "VISIT")).collect();
    let body = app
        .gql(
            Some(&token),
            "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { duplicate } }",
            json!({ "inputs": too_many }),
        )
        .await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.starts_with("inputs"), "{message}");
    assert_eq!(interaction_count(&customer(&app, &id).await), 0);

    let empty = record_batch(&app, json!([])).await;
    assert!(empty.is_empty());

    let valid = record_batch(
        &app,
        json!([
            purchase(&id, "25.5"),
            json!({ "customerExternalRef": "B-2", "kind": "VISIT", "channel": "WEB" }),
            with(input(&id, "SURVEY"), json!({ "rating": 8 })),
            with(input(&id, "FEEDBACK"), json!({ "rating": 2 })),
        ]),
    )
    .await;
    let kinds: Vec<&Value> = valid.iter().map(|p| &p["interaction"]["kind"]).collect();
    assert_eq!(kinds, ["PURCHASE", "VISIT", "SURVEY", "FEEDBACK"]);
    assert_eq!(valid[0]["interaction"]["amount"], "25.50");
    assert_eq!(valid[0]["pointsEarned"], 25);
    assert_eq!(valid[1]["customer"]["id"], other.as_str());
    assert_eq!(valid[1]["interaction"]["channel"], "WEB");
    assert_eq!(valid[2]["interaction"]["rating"], 8);
    assert_eq!(valid[2]["customer"]["metrics"]["latestNps"], 8);
    assert_eq!(valid[3]["customer"]["metrics"]["engagementCount"], 2);
    assert!(valid.iter().all(|p| p["duplicate"] == false));
    assert_eq!(interaction_count(&valid[3]["customer"]), 3);
    assert_eq!(interaction_count(&customer(&app, &id).await), 3);
    assert_eq!(interaction_count(&customer(&app, &other).await), 1);

    // The limit itself is allowed, with what a till asks back of a batch (a thousand
    // full customers would cost more than a query may: see `abuse`).
    let most: Vec<Value> = (0..1000).map(|_| input(&other, "VISIT")).collect();
    let most = app
        .ok(
            "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { interaction { id } pointsEarned duplicate } }",
            json!({ "inputs": most }),
        )
        .await;
    assert_eq!(most["recordInteractions"].as_array().unwrap().len(), 1000);
    let c = customer(&app, &other).await;
    assert_eq!(interaction_count(&c), 1001);
    assert_eq!(c["metrics"]["engagementCount"], 1001);
}

async fn interactions_page_newest_first_and_filter_by_kind(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Sun Li" })).await;
    // Recorded out of order; listed by when they occurred.
    let seeded: [(i64, Value); 6] = [
        (5, input(&id, "VISIT")),
        (1, purchase(&id, "10")),
        (3, with(input(&id, "SURVEY"), json!({ "rating": 7 }))),
        (2, purchase(&id, "20")),
        (4, input(&id, "COMPLAINT")),
        (6, input(&id, "VISIT")),
    ];
    let inputs: Vec<Value> = seeded
        .iter()
        .map(|(days, i)| {
            with(
                i.clone(),
                json!({ "occurredAt": from_now(Duration::days(-days)) }),
            )
        })
        .collect();
    let ids: Vec<Value> = record_batch(&app, json!(inputs))
        .await
        .iter()
        .map(|p| p["interaction"]["id"].clone())
        .collect();
    let newest_first = vec![
        ids[1].clone(),
        ids[3].clone(),
        ids[2].clone(),
        ids[4].clone(),
        ids[0].clone(),
        ids[5].clone(),
    ];

    let walk = |kinds: Value, first: i64| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut seen = Vec::new();
            let mut after = Value::Null;
            let mut page = 0;
            loop {
                let data = app
                    .ok(
                        INTERACTIONS_PAGE,
                        json!({ "id": id, "kinds": kinds, "first": first, "after": after }),
                    )
                    .await;
                let connection = &data["customer"]["interactions"];
                let edges = connection["edges"].as_array().unwrap();
                assert!(edges.len() as i64 <= first);
                assert_eq!(connection["pageInfo"]["hasPreviousPage"], page > 0);
                seen.extend(edges.iter().map(|e| e["node"]["id"].clone()));
                if connection["pageInfo"]["hasNextPage"] == false {
                    return (seen, connection["totalCount"].as_i64().unwrap());
                }
                after = connection["pageInfo"]["endCursor"].clone();
                page += 1;
            }
        }
    };
    for first in [1, 2, 4, 6, 100] {
        assert_eq!(
            walk(Value::Null, first).await,
            (newest_first.clone(), 6),
            "first {first}"
        );
    }
    let engagement = vec![ids[2].clone(), ids[0].clone(), ids[5].clone()];
    assert_eq!(walk(json!(["VISIT", "SURVEY"]), 2).await, (engagement, 3));
    assert_eq!(
        walk(json!(["PURCHASE"]), 20).await,
        (vec![ids[1].clone(), ids[3].clone()], 2)
    );
    assert_eq!(walk(json!(["REFUND"]), 20).await, (vec![], 0));

    let data = app
        .ok(INTERACTIONS_PAGE, json!({ "id": id, "first": 2 }))
        .await;
    let connection = &data["customer"]["interactions"];
    let dates: Vec<DateTime<Utc>> = connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| instant(&e["node"]["occurredAt"]))
        .collect();
    assert!(dates[0] > dates[1]);
    assert_eq!(connection["nodes"][0]["id"], newest_first[0]);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);

    let default = app.ok(INTERACTIONS_PAGE, json!({ "id": id })).await;
    let default = &default["customer"]["interactions"];
    assert_eq!(default["edges"].as_array().unwrap().len(), 6);
    assert_eq!(default["pageInfo"]["hasNextPage"], false);
    let body = app
        .gql(
            Some(&app.admin()),
            INTERACTIONS_PAGE,
            json!({ "id": id, "first": 101 }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
}

async fn who_may_record_interactions(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Gao Yan" })).await;
    let visit = input(&id, "VISIT");

    // A writer that may not read customers asks for what it wrote and the customer's
    // public view (see `isolation`); the others for everything.
    let written = "interaction { id kind recordedBy } pointsEarned duplicate customer { id name }";
    for (token, sub, reads) in [
        (app.admin(), "admin-tester", true),
        (app.staff(), "staff-tester", true),
        (app.partner("interactions:write"), "partner-tester", false),
        (
            app.partner("customers:read interactions:write"),
            "partner-tester",
            true,
        ),
    ] {
        let fields = if reads {
            payload_fields()
        } else {
            written.to_owned()
        };
        let one = format!(
            "mutation($input: RecordInteractionInput!) {{ recordInteraction(input: $input) {{ {fields} }} }}"
        );
        let body = app.gql(Some(&token), &one, json!({ "input": visit })).await;
        assert!(body.get("errors").is_none(), "{sub}: {body:#}");
        assert_eq!(
            body["data"]["recordInteraction"]["interaction"]["recordedBy"],
            sub
        );
        let many = format!(
            "mutation($inputs: [RecordInteractionInput!]!) {{ recordInteractions(inputs: $inputs) {{ {fields} }} }}"
        );
        let body = app
            .gql(Some(&token), &many, json!({ "inputs": [visit] }))
            .await;
        assert!(body.get("errors").is_none(), "{sub}: {body:#}");
        assert_eq!(
            body["data"]["recordInteractions"][0]["interaction"]["recordedBy"],
            sub
        );
    }

    for token in [
        app.partner("customers:read"),
        app.partner("customers:write points:write rewards:redeem events:subscribe"),
        app.customer_token(&id),
    ] {
        assert_error(&try_record(&app, &token, visit.clone()).await, "FORBIDDEN");
        assert_error(
            &try_record_batch(&app, &token, json!([visit])).await,
            "FORBIDDEN",
        );
    }
    let body = app
        .gql(None, &record_mutation(), json!({ "input": visit }))
        .await;
    assert_error(&body, "UNAUTHENTICATED");

    let after = customer(&app, &id).await;
    assert_eq!(interaction_count(&after), 8);
    assert_eq!(after["metrics"]["engagementCount"], 8);
}

async fn tiers_are_set_by_hand_with_a_note(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Lin Tao" })).await;

    let body = set_tier(
        &app,
        &app.admin(),
        &id,
        "vip",
        "Key account, signed 2026 contract",
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let change = &body["data"]["setCustomerTier"];
    assert_eq!(change["from"]["key"], "potential");
    assert_eq!(change["to"]["key"], "vip");
    assert_eq!(change["reason"], "MANUAL");
    assert_eq!(change["note"], "Key account, signed 2026 contract");
    assert_eq!(change["customer"]["tier"]["key"], "vip");

    let body = set_tier(&app, &app.staff(), &id, "regular", "Contract ended").await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let read = customer(&app, &id).await;
    assert_eq!(read["tier"]["key"], "regular");
    assert_eq!(
        history(&read),
        vec![
            (json!("vip"), json!("regular"), json!("MANUAL")),
            (json!("potential"), json!("vip"), json!("MANUAL")),
            (Value::Null, json!("potential"), json!("CREATED")),
        ]
    );
    assert_eq!(read["tierHistory"]["nodes"][0]["note"], "Contract ended");

    for scope in ["customers:write interactions:write", "customers:read"] {
        let body = set_tier(&app, &app.partner(scope), &id, "vip", "please").await;
        assert_error(&body, "FORBIDDEN");
    }
    let body = set_tier(&app, &app.customer_token(&id), &id, "vip", "me").await;
    assert_error(&body, "FORBIDDEN");
    assert_error(
        &set_tier(&app, &app.admin(), &id, "gold", "no such tier").await,
        "NOT_FOUND",
    );
    assert_error(
        &set_tier(
            &app,
            &app.admin(),
            &uuid::Uuid::new_v4().to_string(),
            "vip",
            "nobody",
        )
        .await,
        "NOT_FOUND",
    );
    assert_error(
        &set_tier(&app, &app.admin(), &id, "regular", "already there").await,
        "CONFLICT",
    );
    for note in ["", "   "] {
        let body = set_tier(&app, &app.admin(), &id, "vip", note).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.starts_with("note"), "{message}");
    }
    let read = customer(&app, &id).await;
    assert_eq!(read["tier"]["key"], "regular");
    assert_eq!(
        read["tierHistory"]["totalCount"], 3,
        "refused moves left no trace"
    );
}

async fn a_manual_tier_holds_until_the_next_evaluation_run(app: TestApp) {
    let id = app.create_customer(json!({ "name": "He Ping" })).await;
    // 35.6: regular at once.
    let first = record(&app, purchase(&id, "129.90")).await;
    assert_eq!(first["customer"]["tier"]["key"], "regular");

    let body = set_tier(&app, &app.admin(), &id, "potential", "Disputed orders").await;
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["setCustomerTier"]["from"]["key"], "regular");

    // Two purchases: (20 + 12 + 6) / 0.9 = 42.2 would earn regular, but the manual tier
    // holds.
    let second = record(&app, purchase(&id, "10")).await;
    assert_eq!(second["customer"]["score"], 42.2);
    assert_eq!(second["tierChange"], Value::Null);
    assert_eq!(second["customer"]["tier"]["key"], "potential");
    let run = app
        .ok("mutation { evaluateTiers { status } }", json!({}))
        .await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED");

    let read = customer(&app, &id).await;
    assert_eq!(read["tier"]["key"], "regular");
    assert_eq!(read["score"], 42.2);
    assert_eq!(
        history(&read),
        vec![
            (json!("potential"), json!("regular"), json!("EVALUATION")),
            (json!("regular"), json!("potential"), json!("MANUAL")),
            (json!("potential"), json!("regular"), json!("INTERACTION")),
            (Value::Null, json!("potential"), json!("CREATED")),
        ]
    );
    assert_eq!(read["tierHistory"]["nodes"][0]["score"], 42.2);
}

on_both!(
    invalid_interactions_are_refused_naming_the_field,
    customers_are_addressed_by_external_ref,
    metrics_score_and_stage_are_current_after_each_interaction,
    a_purchase_upgrades_at_once_and_more_purchases_reach_vip,
    purchases_earn_points_at_the_multiplier_of_the_tier_held,
    a_refund_of_an_order_reverses_its_points_in_proportion,
    an_idempotency_key_records_once_under_parallel_retries,
    parallel_purchases_for_one_customer_are_all_counted,
    batches_are_all_or_nothing,
    interactions_page_newest_first_and_filter_by_kind,
    who_may_record_interactions,
    tiers_are_set_by_hand_with_a_note,
    a_manual_tier_holds_until_the_next_evaluation_run,
);
