//! Live events over WebSocket (`/graphql/ws`): the graphql-transport-ws protocol and the
//! legacy graphql-ws one, their close codes, token expiry while connected, keep-alives;
//! `tierChanged` for every reason and `pointsChanged` for every ledger kind, with the
//! customer as committed; the `customerId` and `tierKey` filters; who may subscribe to
//! whose events; a slow subscriber dropped with `SLOW_CONSUMER` while a fast one keeps
//! up; and the subscription metrics.
//!
//! Events are waited for with timeouts, never with fixed sleeps. graphql-transport-ws
//! has no acknowledgement of a `subscribe`, so after subscribing the client sends a
//! `ping` and waits for the `pong`: the server handles one connection's messages in
//! order, so by then it has taken the subscription in, before the test changes anything.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tierwise_api::auth::Claims;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, claims, on_both, sign_raw};
use crate::ws_client::{LEGACY, Received, TRANSPORT, WAIT, Ws, assert_data, code};

const TIER_CHANGED: &str = "subscription($customerId: ID, $tierKey: String) {
  tierChanged(customerId: $customerId, tierKey: $tierKey) {
    reason from { key } to { key } note
    customer { id name tier { key } pointsBalance }
  }
}";

const POINTS_CHANGED: &str = "subscription($customerId: ID) {
  pointsChanged(customerId: $customerId) {
    kind delta balanceAfter reason customer { id pointsBalance }
  }
}";

const ADJUST: &str = "mutation($input: AdjustPointsInput!) {
  adjustPoints(input: $input) { id delta balanceAfter customer { pointsBalance } }
}";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) {
    pointsEarned customer { pointsBalance tier { key } } tierChange { from { key } to { key } }
  }
}";

const SET_TIER: &str = "mutation($customerId: ID!, $tierKey: String!, $note: String!) {
  setCustomerTier(customerId: $customerId, tierKey: $tierKey, note: $note) {
    customer { tier { key } pointsBalance }
  }
}";

const EVALUATE: &str = "mutation($asOf: DateTime) { evaluateTiers(asOf: $asOf) { status } }";

// ---------------------------------------------------------------------------------------
// Changes

async fn adjust(app: &TestApp, customer_id: &str, delta: i64) -> Value {
    let input = json!({ "customerId": customer_id, "delta": delta, "reason": "Test" });
    app.ok(ADJUST, json!({ "input": input })).await["adjustPoints"].clone()
}

async fn record(app: &TestApp, input: Value) -> Value {
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone()
}

async fn set_tier(app: &TestApp, customer_id: &str, tier: &str) -> Value {
    app.ok(
        SET_TIER,
        json!({ "customerId": customer_id, "tierKey": tier, "note": "By hand" }),
    )
    .await["setCustomerTier"]
        .clone()
}

async fn evaluate(app: &TestApp, as_of: Option<&str>) {
    let run = app.ok(EVALUATE, json!({ "asOf": as_of })).await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED", "{run}");
}

async fn customer_state(app: &TestApp, id: &str) -> Value {
    app.ok(
        "query($id: ID!) { customer(id: $id) { id name tier { key } pointsBalance } }",
        json!({ "id": id }),
    )
    .await["customer"]
        .clone()
}

/// Creates customers named `names` and waits until their CREATED tier changes have been
/// relayed, so that no subscription made afterwards receives them: a relay may publish
/// an event some time after its commit (on Postgres, at its next wake-up).
async fn create_settled(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut ws = Ws::open(app, TRANSPORT, &app.admin()).await;
    ws.subscribe("created", TIER_CHANGED, json!({})).await;
    let mut ids = Vec::new();
    for name in names {
        ids.push(app.create_customer(json!({ "name": name })).await);
    }
    for id in &ids {
        let created = ws.next_data("created").await["tierChanged"].clone();
        assert_eq!(created["customer"]["id"], *id, "{created:#}");
        assert_eq!(created["reason"], "CREATED", "{created:#}");
    }
    ids
}

fn token_expiring_in(app: &TestApp, seconds: i64) -> (String, i64) {
    let exp = Utc::now().timestamp() + seconds;
    (
        app.sign(&Claims {
            exp,
            ..claims("staff")
        }),
        exp,
    )
}

// ---------------------------------------------------------------------------------------
// The protocols

async fn the_transport_protocol_acknowledges_answers_pings_and_streams_events(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Ada" })).await;
    let mut ws = Ws::connect(&app, TRANSPORT).await;
    ws.send(Ws::init_message(&app.admin())).await;
    assert_eq!(ws.next_message().await, json!({ "type": "connection_ack" }));

    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next_message().await, json!({ "type": "pong" }));
    ws.send(json!({ "type": "ping", "payload": { "at": 1 } }))
        .await;
    assert_eq!(
        ws.next_message().await,
        json!({ "type": "pong", "payload": { "at": 1 } })
    );
    // A pong from the client is accepted and not answered.
    ws.send(json!({ "type": "pong" })).await;

    ws.subscribe("1", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    for delta in [5, 7] {
        adjust(&app, &id, delta).await;
    }
    let mut first = ws.next_message().await;
    // The customer is read when the event is relayed, which may be after the second
    // adjustment committed.
    let balance = first["payload"]["data"]["pointsChanged"]["customer"]
        .as_object_mut()
        .unwrap()
        .remove("pointsBalance");
    assert!(
        [Some(json!(5)), Some(json!(12))].contains(&balance),
        "{balance:?}"
    );
    assert_eq!(
        first,
        json!({ "type": "next", "id": "1", "payload": { "data": { "pointsChanged": {
            "kind": "ADJUST", "delta": 5, "balanceAfter": 5, "reason": "Test",
            "customer": { "id": id }
        } } } })
    );
    let second = ws.next_data("1").await;
    assert_eq!(second["pointsChanged"]["delta"], 7);
    assert_eq!(second["pointsChanged"]["balanceAfter"], 12);
    assert_eq!(second["pointsChanged"]["customer"]["pointsBalance"], 12);

    // `complete` from the client stops it: the next change reaches only a new
    // subscription.
    ws.complete("1").await;
    ws.subscribe("2", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    adjust(&app, &id, 1).await;
    let data = ws.next_data("2").await;
    assert_eq!(data["pointsChanged"]["balanceAfter"], 13);

    // A completed id may be used again.
    ws.subscribe("1", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    adjust(&app, &id, 2).await;
    let got = ws.collect(&[("1", 1), ("2", 1)]).await;
    assert_eq!(got["1"][0]["pointsChanged"]["balanceAfter"], 15);
    assert_eq!(got["2"][0]["pointsChanged"]["balanceAfter"], 15);

    // A query on the socket gets one result, then `complete`.
    ws.send_subscribe("q", "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(
        ws.next_message().await,
        json!({ "type": "next", "id": "q", "payload": { "data": { "viewer": { "role": "ADMIN" } } } })
    );
    assert_eq!(
        ws.next_message().await,
        json!({ "type": "complete", "id": "q" })
    );
}

async fn the_legacy_protocol_starts_streams_and_stops(app: TestApp) {
    let [id] = create_settled(&app, &["Bo"]).await.try_into().unwrap();
    let mut ws = Ws::connect(&app, LEGACY).await;
    ws.send(Ws::init_message(&app.staff())).await;
    assert_eq!(ws.next_message().await, json!({ "type": "connection_ack" }));

    ws.subscribe("1", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    adjust(&app, &id, 30).await;
    let message = ws.next_message().await;
    assert_eq!(message["type"], "data", "{message}");
    assert_eq!(message["id"], "1");
    let entry = &message["payload"]["data"]["pointsChanged"];
    assert_eq!(entry["kind"], "ADJUST");
    assert_eq!(entry["delta"], 30);
    assert_eq!(entry["balanceAfter"], 30);
    assert_eq!(entry["customer"]["id"], id);

    ws.complete("1").await;
    assert_eq!(
        ws.next_message().await,
        json!({ "type": "complete", "id": "1" })
    );

    // Stopped: the next change reaches only a new subscription.
    ws.subscribe(
        "2",
        TIER_CHANGED,
        json!({ "customerId": id, "tierKey": null }),
    )
    .await;
    ws.subscribe("3", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    adjust(&app, &id, 1).await;
    set_tier(&app, &id, "vip").await;
    let got = ws.collect(&[("2", 1), ("3", 1)]).await;
    assert_eq!(got["3"][0]["pointsChanged"]["balanceAfter"], 31);
    let change = &got["2"][0]["tierChanged"];
    assert_eq!(change["reason"], "MANUAL");
    assert_eq!(change["to"]["key"], "vip");
    assert_eq!(change["customer"]["tier"]["key"], "vip");
}

async fn the_legacy_protocol_refuses_a_bad_token_with_connection_error(app: TestApp) {
    let mut ws = Ws::connect(&app, LEGACY).await;
    ws.send(Ws::init_message("forged.token.here")).await;
    let message = ws.next_message().await;
    assert_eq!(message["type"], "connection_error", "{message}");
    assert!(
        message["payload"]["message"].as_str().is_some(),
        "{message}"
    );
    ws.expect_close_with(4403).await;
}

async fn the_server_keeps_idle_connections_alive(app: TestApp) {
    // Every 15 seconds: `ping` in graphql-transport-ws, `ka` in the legacy protocol.
    async fn keep_alive(app: &TestApp, protocol: &str, expected: &str) {
        let mut ws = Ws::open(app, protocol, &app.staff()).await;
        let started = Instant::now();
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.socket.next())
            .await
            .unwrap_or_else(|_| panic!("{protocol}: no keep-alive within 20 s"));
        let Some(Ok(Message::Text(text))) = frame else {
            panic!("{protocol}: expected a keep-alive, got {frame:?}");
        };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(message, json!({ "type": expected }), "{protocol}");
        assert!(
            started.elapsed() >= Duration::from_secs(10),
            "{protocol}: keep-alive after {:?}",
            started.elapsed()
        );
        // Still open and answering.
        ws.sync().await;
    }
    tokio::join!(
        keep_alive(&app, TRANSPORT, "ping"),
        keep_alive(&app, LEGACY, "ka")
    );
}

// ---------------------------------------------------------------------------------------
// Close codes (graphql-transport-ws)

async fn refused_tokens_close_with_4403(app: TestApp) {
    let now = Utc::now().timestamp();
    let expired = app.sign(&Claims {
        exp: now - 60,
        iat: Some(now - 660),
        ..claims("admin")
    });
    let mut wrong_secret = serde_json::to_value(claims("admin")).unwrap();
    wrong_secret["exp"] = json!(now + 600);
    let wrong_secret = sign_raw(
        &wrong_secret,
        jsonwebtoken::Algorithm::HS256,
        b"another-secret-another-secret-0123456789",
    );
    for token in ["forged.token.here", &expired, &wrong_secret] {
        let mut ws = Ws::connect(&app, TRANSPORT).await;
        ws.send(Ws::init_message(token)).await;
        let reason = ws.expect_close_with(4403).await;
        assert!(reason.starts_with("Forbidden"), "{reason}");
    }
    // No token at all.
    let mut ws = Ws::connect(&app, TRANSPORT).await;
    ws.send(json!({ "type": "connection_init" })).await;
    ws.expect_close_with(4403).await;
    let mut ws = Ws::connect(&app, TRANSPORT).await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    ws.expect_close_with(4403).await;
}

async fn subscribing_before_the_acknowledgement_closes_with_4401(app: TestApp) {
    let mut ws = Ws::connect(&app, TRANSPORT).await;
    ws.send_subscribe("1", POINTS_CHANGED, json!({})).await;
    ws.expect_close_with(4401).await;
}

async fn no_connection_init_within_10_seconds_closes_with_4408(app: TestApp) {
    let mut ws = Ws::connect(&app, TRANSPORT).await;
    let started = Instant::now();
    let closed = ws
        .receive_within(Duration::from_secs(15))
        .await
        .expect("closed within 15 s");
    let elapsed = started.elapsed();
    let Received::Closed(Some((code, _))) = closed else {
        panic!("expected a close frame, got {closed:?}");
    };
    assert_eq!(code, 4408);
    assert!(
        elapsed >= Duration::from_millis(9_500) && elapsed <= Duration::from_secs(12),
        "closed after {elapsed:?}"
    );
}

async fn a_second_connection_init_closes_with_4429(app: TestApp) {
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.send(Ws::init_message(&app.admin())).await;
    ws.expect_close_with(4429).await;
}

async fn a_second_subscription_with_a_live_id_closes_with_4409(app: TestApp) {
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("1", POINTS_CHANGED, json!({})).await;
    ws.subscribe("2", POINTS_CHANGED, json!({})).await;
    ws.send_subscribe("1", TIER_CHANGED, json!({})).await;
    ws.expect_close_with(4409).await;

    // Ids are the client's to choose, of any length: the close still says 4409.
    let long = "s".repeat(200);
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe(&long, POINTS_CHANGED, json!({})).await;
    ws.send_subscribe(&long, POINTS_CHANGED, json!({})).await;
    let closed = ws.try_close().await;
    assert!(
        matches!(&closed, Ok((4409, _))),
        "a second subscription with a live 200-character id: {closed:?}"
    );
}

async fn messages_outside_the_protocol_close_with_4400(app: TestApp) {
    let messages = [
        "not json".to_owned(),
        "[1, 2]".to_owned(),
        json!({ "type": "no_such_type" }).to_string(),
        json!({ "type": "subscribe", "payload": { "query": "subscription { pointsChanged { delta } }" } }).to_string(),
        json!({ "type": "subscribe", "id": "1" }).to_string(),
        json!({ "id": "1" }).to_string(),
    ];
    let mut wrong = Vec::new();
    for message in &messages {
        // Before and after the acknowledgement.
        for initialised in [false, true] {
            let mut ws = Ws::connect(&app, TRANSPORT).await;
            if initialised {
                ws.init(&app.admin()).await;
            }
            ws.send_text(message).await;
            match ws.try_close().await {
                Ok((4400, _)) => {}
                other => wrong.push(format!("{message} (initialised: {initialised}): {other:?}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not closed with 4400:\n{}",
        wrong.join("\n")
    );
}

async fn a_token_that_expires_while_connected_closes_with_4403(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Cy" })).await;
    let (token, exp) = token_expiring_in(&app, 3);
    let connected = Instant::now();
    let mut ws = Ws::open(&app, TRANSPORT, &token).await;
    ws.subscribe("1", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    adjust(&app, &id, 3).await;
    assert_eq!(ws.next_data("1").await["pointsChanged"]["delta"], 3);

    let (code, reason) = match ws.receive_within(Duration::from_secs(15)).await {
        Some(Received::Closed(Some(frame))) => frame,
        other => panic!("expected a close within 15 s, got {other:?}"),
    };
    let closed_at_ms = Utc::now().timestamp_millis();
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    assert!(
        closed_at_ms >= exp * 1000 - 200,
        "closed {} ms before the token expired",
        exp * 1000 - closed_at_ms
    );
    assert!(
        connected.elapsed() <= Duration::from_secs(10),
        "closed {:?} after connecting",
        connected.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Events

async fn tier_changes_of_every_reason_are_delivered(app: TestApp) {
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("all", TIER_CHANGED, json!({})).await;

    // CREATED: the first tier, from nothing.
    let id = app.create_customer(json!({ "name": "Dee" })).await;
    let created = ws.next_data("all").await["tierChanged"].clone();
    assert_eq!(
        created,
        json!({
            "reason": "CREATED", "from": null, "to": { "key": "potential" }, "note": null,
            "customer": { "id": id, "name": "Dee", "tier": { "key": "potential" }, "pointsBalance": 0 }
        })
    );

    // INTERACTION: a purchase that scores into regular.
    let bought = record(
        &app,
        json!({ "customerId": id, "kind": "PURCHASE", "amount": "129.90" }),
    )
    .await;
    assert_eq!(bought["tierChange"]["to"]["key"], "regular", "{bought}");
    let balance = bought["customer"]["pointsBalance"].clone();
    assert!(balance.as_i64().unwrap() > 0);
    let change = ws.next_data("all").await["tierChanged"].clone();
    assert_eq!(
        change,
        json!({
            "reason": "INTERACTION", "from": { "key": "potential" }, "to": { "key": "regular" }, "note": null,
            "customer": { "id": id, "name": "Dee", "tier": { "key": "regular" }, "pointsBalance": balance }
        })
    );

    // MANUAL: moved by hand, with its note.
    set_tier(&app, &id, "potential").await;
    let change = ws.next_data("all").await["tierChanged"].clone();
    assert_eq!(
        change,
        json!({
            "reason": "MANUAL", "from": { "key": "regular" }, "to": { "key": "potential" }, "note": "By hand",
            "customer": { "id": id, "name": "Dee", "tier": { "key": "potential" }, "pointsBalance": balance }
        })
    );

    // EVALUATION: the run puts the customer back where its score belongs.
    evaluate(&app, None).await;
    let change = ws.next_data("all").await["tierChanged"].clone();
    assert_eq!(change["reason"], "EVALUATION", "{change:#}");
    assert_eq!(change["from"]["key"], "potential");
    assert_eq!(change["to"]["key"], "regular");
    assert_eq!(change["customer"], customer_state(&app, &id).await);
    assert_eq!(change["customer"]["tier"]["key"], "regular");

    // A purchase that keeps the tier, and a run that changes nothing, announce no tier
    // change: the next one announced is the next one made.
    record(
        &app,
        json!({ "customerId": id, "kind": "PURCHASE", "amount": "1" }),
    )
    .await;
    evaluate(&app, None).await;
    set_tier(&app, &id, "vip").await;
    let change = ws.next_data("all").await["tierChanged"].clone();
    assert_eq!(change["reason"], "MANUAL", "{change:#}");
    assert_eq!(change["to"]["key"], "vip");
    assert_eq!(change["customer"], customer_state(&app, &id).await);
}

async fn ledger_entries_of_every_kind_are_delivered(app: TestApp) {
    let now = Utc::now();
    let long_ago = (now - chrono::Duration::days(500)).to_rfc3339_opts(SecondsFormat::Secs, true);
    // A birthday three days ago: the run below gives the bonus.
    let birthday = (now - chrono::Duration::days(3))
        .format("1992-%m-%d")
        .to_string();
    let id = app
        .create_customer(json!({ "name": "Eve", "birthday": birthday }))
        .await;

    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("p", POINTS_CHANGED, json!({})).await;

    /// The next entry, checked to belong to `customer` and to chain from `before`.
    async fn entry(ws: &mut Ws, customer: &str, before: i64) -> Value {
        let entry = ws.next_data("p").await["pointsChanged"].clone();
        assert_eq!(entry["customer"]["id"], customer, "{entry:#}");
        let delta = entry["delta"].as_i64().unwrap();
        assert_eq!(entry["balanceAfter"], before + delta, "{entry:#}");
        entry
    }

    // EARN: a purchase 500 days ago, whose points are past their expiry (365 days).
    let bought = record(
        &app,
        json!({ "customerId": id, "kind": "PURCHASE", "amount": "200", "orderRef": "ORD-1", "occurredAt": long_ago }),
    )
    .await;
    assert_eq!(bought["pointsEarned"], 200);
    let e = entry(&mut ws, &id, 0).await;
    assert_eq!((&e["kind"], &e["delta"]), (&json!("EARN"), &json!(200)));
    assert_eq!(e["customer"]["pointsBalance"], 200);

    // REVERSAL: a quarter of that order refunded.
    let refunded = record(
        &app,
        json!({ "customerId": id, "kind": "REFUND", "amount": "50", "orderRef": "ORD-1" }),
    )
    .await;
    assert_eq!(refunded["pointsEarned"], -50);
    let e = entry(&mut ws, &id, 200).await;
    assert_eq!((&e["kind"], &e["delta"]), (&json!("REVERSAL"), &json!(-50)));
    assert_eq!(e["customer"]["pointsBalance"], 150);

    // ADJUST, with its reason.
    adjust(&app, &id, 40).await;
    let e = entry(&mut ws, &id, 150).await;
    assert_eq!((&e["kind"], &e["delta"]), (&json!("ADJUST"), &json!(40)));
    assert_eq!(e["reason"], "Test");
    assert_eq!(e["customer"]["pointsBalance"], 190);

    // REDEEM.
    let reward = app
        .ok(
            "mutation($input: RewardInput!) { createReward(input: $input) { id } }",
            json!({ "input": { "name": "Tote bag", "costPoints": 25 } }),
        )
        .await["createReward"]["id"]
        .clone();
    app.ok(
        "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { pointsSpent } }",
        json!({ "input": { "customerId": id, "rewardId": reward } }),
    )
    .await;
    let e = entry(&mut ws, &id, 190).await;
    assert_eq!((&e["kind"], &e["delta"]), (&json!("REDEEM"), &json!(-25)));
    assert_eq!(e["customer"]["pointsBalance"], 165);

    // EXPIRE and BIRTHDAY_BONUS, from one run: what is left of the old lot (200 - 50
    // reversed - 25 redeemed) expires; the birthday earns the default 100.
    evaluate(&app, None).await;
    let first = entry(&mut ws, &id, 165).await;
    let second = entry(&mut ws, &id, first["balanceAfter"].as_i64().unwrap()).await;
    let mut kinds = [
        (first["kind"].clone(), first["delta"].clone()),
        (second["kind"].clone(), second["delta"].clone()),
    ];
    kinds.sort_by_key(|(kind, _)| kind.to_string());
    assert_eq!(
        kinds,
        [
            (json!("BIRTHDAY_BONUS"), json!(100)),
            (json!("EXPIRE"), json!(-125))
        ]
    );
    assert_eq!(second["balanceAfter"], 140);
    assert_eq!(second["customer"]["pointsBalance"], 140);

    // REFERRAL_BONUS: a referee's first purchase pays both sides, in its transaction.
    let referrer = app.create_customer(json!({ "name": "Fay" })).await;
    let code = app
        .ok(
            "query($id: ID!) { customer(id: $id) { referralCode } }",
            json!({ "id": referrer }),
        )
        .await["customer"]["referralCode"]
        .clone();
    let referee = app
        .create_customer(json!({ "name": "Gus", "referralCode": code }))
        .await;
    record(
        &app,
        json!({ "customerId": referee, "kind": "PURCHASE", "amount": "100" }),
    )
    .await;
    let mut entries = Vec::new();
    for _ in 0..3 {
        entries.push(ws.next_data("p").await["pointsChanged"].clone());
    }
    let mut summary: Vec<(Value, Value, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["customer"]["id"].clone(),
                e["kind"].clone(),
                e["delta"].clone(),
            )
        })
        .collect();
    summary.sort_by_key(|s| format!("{s:?}"));
    let mut expected = vec![
        (json!(referee), json!("EARN"), json!(100)),
        (json!(referee), json!("REFERRAL_BONUS"), json!(200)),
        (json!(referrer), json!("REFERRAL_BONUS"), json!(500)),
    ];
    expected.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(summary, expected, "{entries:#?}");
    for e in &entries {
        // Each customer as committed by the purchase's transaction.
        let final_balance = if e["customer"]["id"] == json!(referee) {
            300
        } else {
            500
        };
        assert_eq!(e["customer"]["pointsBalance"], final_balance, "{e:#}");
    }
    let referee_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["customer"]["id"] == json!(referee))
        .collect();
    assert_eq!(
        referee_entries[0]["balanceAfter"].as_i64().unwrap()
            + referee_entries[1]["delta"].as_i64().unwrap(),
        referee_entries[1]["balanceAfter"].as_i64().unwrap(),
        "in the order written: {referee_entries:#?}"
    );
    assert_eq!(referee_entries[1]["balanceAfter"], 300);
}

async fn filters_narrow_to_a_customer_and_to_a_tier(app: TestApp) {
    let [x, y] = create_settled(&app, &["Xu", "Yan"])
        .await
        .try_into()
        .unwrap();
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("tiers of x", TIER_CHANGED, json!({ "customerId": x }))
        .await;
    ws.subscribe("into vip", TIER_CHANGED, json!({ "tierKey": "vip" }))
        .await;
    ws.subscribe(
        "x into regular",
        TIER_CHANGED,
        json!({ "customerId": x, "tierKey": "regular" }),
    )
    .await;
    ws.subscribe("points of x", POINTS_CHANGED, json!({ "customerId": x }))
        .await;
    ws.subscribe("all points", POINTS_CHANGED, json!({})).await;

    adjust(&app, &y, 1).await;
    set_tier(&app, &y, "regular").await;
    set_tier(&app, &y, "vip").await;
    adjust(&app, &x, 2).await;
    set_tier(&app, &x, "regular").await;
    set_tier(&app, &x, "vip").await;

    let got = ws
        .collect(&[
            ("tiers of x", 2),
            ("into vip", 2),
            ("x into regular", 1),
            ("points of x", 1),
            ("all points", 2),
        ])
        .await;
    let tiers = |list: &[Value]| -> Vec<(Value, Value)> {
        list.iter()
            .map(|d| {
                (
                    d["tierChanged"]["customer"]["id"].clone(),
                    d["tierChanged"]["to"]["key"].clone(),
                )
            })
            .collect()
    };
    let points = |list: &[Value]| -> Vec<(Value, Value)> {
        list.iter()
            .map(|d| {
                (
                    d["pointsChanged"]["customer"]["id"].clone(),
                    d["pointsChanged"]["delta"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        tiers(&got["tiers of x"]),
        [(json!(x), json!("regular")), (json!(x), json!("vip"))]
    );
    assert_eq!(
        tiers(&got["into vip"]),
        [(json!(y), json!("vip")), (json!(x), json!("vip"))]
    );
    assert_eq!(
        tiers(&got["x into regular"]),
        [(json!(x), json!("regular"))]
    );
    assert_eq!(points(&got["points of x"]), [(json!(x), json!(2))]);
    assert_eq!(
        points(&got["all points"]),
        [(json!(y), json!(1)), (json!(x), json!(2))]
    );

    // An unknown tier key matches nothing: the next change reaches only the
    // subscription to x.
    ws.subscribe("into gold", TIER_CHANGED, json!({ "tierKey": "gold" }))
        .await;
    set_tier(&app, &x, "potential").await;
    let got = ws.collect(&[("tiers of x", 1)]).await;
    assert_eq!(tiers(&got["tiers of x"]), [(json!(x), json!("potential"))]);
}

/// A subscription made as soon as the server is up receives every change committed
/// after it, even while the server's relay is still starting.
async fn changes_right_after_the_server_starts_are_delivered(app: TestApp) {
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("t", TIER_CHANGED, json!({})).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(json!(
            app.create_customer(json!({ "name": format!("Early {i}") }))
                .await
        ));
    }
    let mut delivered = Vec::new();
    while delivered.len() < created.len() {
        match ws.receive_within(WAIT).await {
            Some(Received::Message(message)) => {
                let data = assert_data(&message, false, "t");
                delivered.push(data["tierChanged"]["customer"]["id"].clone());
            }
            other => {
                eprintln!("then: {other:?}");
                break;
            }
        }
    }
    assert_eq!(
        delivered, created,
        "the CREATED changes of customers created just after the server started"
    );
}

// ---------------------------------------------------------------------------------------
// Who may subscribe

async fn staff_and_partners_with_the_scope_see_everyone(app: TestApp) {
    let [x, y] = create_settled(&app, &["Xu", "Yan"])
        .await
        .try_into()
        .unwrap();
    let mut staff = Ws::open(&app, TRANSPORT, &app.staff()).await;
    let mut partner = Ws::open(&app, TRANSPORT, &app.partner("events:subscribe")).await;
    let mut narrow = Ws::open(
        &app,
        TRANSPORT,
        &app.partner("customers:read events:subscribe"),
    )
    .await;
    staff.subscribe("p", POINTS_CHANGED, json!({})).await;
    staff.subscribe("t", TIER_CHANGED, json!({})).await;
    // Without customers:read a partner learns that something changed, for whom, not
    // the balance or the tier (see `isolation`).
    partner
        .subscribe(
            "p",
            "subscription { pointsChanged { kind delta customer { id name } } }",
            json!({}),
        )
        .await;
    partner
        .subscribe(
            "t",
            "subscription { tierChanged { reason changedAt customer { id } } }",
            json!({}),
        )
        .await;
    narrow
        .subscribe("p", POINTS_CHANGED, json!({ "customerId": y }))
        .await;

    adjust(&app, &x, 4).await;
    adjust(&app, &y, 6).await;
    set_tier(&app, &x, "vip").await;
    for ws in [&mut staff, &mut partner] {
        let got = ws.collect(&[("p", 2), ("t", 1)]).await;
        let customers: Vec<&Value> = got["p"]
            .iter()
            .map(|d| &d["pointsChanged"]["customer"]["id"])
            .collect();
        assert_eq!(customers, [&json!(x), &json!(y)]);
        assert_eq!(got["t"][0]["tierChanged"]["customer"]["id"], x);
    }
    let got = narrow.collect(&[("p", 1)]).await;
    assert_eq!(got["p"][0]["pointsChanged"]["delta"], 6);
}

async fn partners_without_the_scope_are_refused(app: TestApp) {
    let x = app.create_customer(json!({ "name": "Xu" })).await;
    for scope in [
        "customers:read",
        "customers:read customers:write points:write",
    ] {
        let mut ws = Ws::open(&app, TRANSPORT, &app.partner(scope)).await;
        ws.send_subscribe("1", POINTS_CHANGED, json!({})).await;
        let errors = ws.expect_error("1").await;
        assert_eq!(code(&errors), "FORBIDDEN", "{errors:#}");
        assert!(
            errors[0]["message"]
                .as_str()
                .unwrap()
                .contains("events:subscribe"),
            "{errors:#}"
        );
        ws.send_subscribe("2", TIER_CHANGED, json!({ "customerId": x }))
            .await;
        assert_eq!(code(&ws.expect_error("2").await), "FORBIDDEN");
    }
    // Refused on the legacy protocol too.
    let mut ws = Ws::open(&app, LEGACY, &app.partner("customers:read")).await;
    ws.send_subscribe("1", POINTS_CHANGED, json!({})).await;
    assert_eq!(code(&ws.expect_error("1").await), "FORBIDDEN");
}

async fn customers_receive_only_their_own_events(app: TestApp) {
    let [me, other] = create_settled(&app, &["Me", "Other"])
        .await
        .try_into()
        .unwrap();
    let mut ws = Ws::open(&app, TRANSPORT, &app.customer_token(&me)).await;
    ws.subscribe("p", POINTS_CHANGED, json!({})).await;
    ws.subscribe("t", TIER_CHANGED, json!({})).await;
    ws.subscribe("own", POINTS_CHANGED, json!({ "customerId": me }))
        .await;

    // The other customer's changes first: had they been delivered, they would arrive
    // before this customer's own.
    adjust(&app, &other, 9).await;
    set_tier(&app, &other, "vip").await;
    adjust(&app, &me, 3).await;
    set_tier(&app, &me, "regular").await;
    let got = ws.collect(&[("p", 1), ("t", 1), ("own", 1)]).await;
    for data in got["p"].iter().chain(&got["own"]) {
        assert_eq!(data["pointsChanged"]["customer"]["id"], me, "{data:#}");
        assert_eq!(data["pointsChanged"]["delta"], 3);
    }
    let change = &got["t"][0]["tierChanged"];
    assert_eq!(change["customer"]["id"], me, "{change:#}");
    assert_eq!(change["to"]["key"], "regular");

    // Another customer's events are refused outright.
    ws.send_subscribe("x", POINTS_CHANGED, json!({ "customerId": other }))
        .await;
    let errors = ws.expect_error("x").await;
    assert_eq!(code(&errors), "FORBIDDEN", "{errors:#}");
    ws.send_subscribe("y", TIER_CHANGED, json!({ "customerId": other }))
        .await;
    assert_eq!(code(&ws.expect_error("y").await), "FORBIDDEN");

    // The refusals ended nothing else.
    adjust(&app, &other, 1).await;
    adjust(&app, &me, 4).await;
    let got = ws.collect(&[("p", 1), ("own", 1)]).await;
    assert_eq!(got["p"][0]["pointsChanged"]["balanceAfter"], 7);
    assert_eq!(got["own"][0]["pointsChanged"]["balanceAfter"], 7);
}

async fn refused_subscriptions_get_an_error_with_a_code(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Hal" })).await;
    let mut ws = Ws::open(&app, TRANSPORT, &app.customer_token(&id)).await;
    let other = app.create_customer(json!({ "name": "Ivy" })).await;

    let cases = [
        (
            "subscription { pointsChanged { delta ",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "subscription { pointsChanged { noSuchField } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "subscription { noSuchSubscription }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            POINTS_CHANGED,
            json!({ "customerId": "not-an-id" }),
            "BAD_USER_INPUT",
        ),
        (POINTS_CHANGED, json!({ "customerId": other }), "FORBIDDEN"),
    ];
    let mut wrong = Vec::new();
    for (i, (query, variables, expected)) in cases.into_iter().enumerate() {
        let sub = format!("refused {i}");
        ws.send_subscribe(&sub, query, variables.clone()).await;
        let errors = ws.expect_error(&sub).await;
        assert!(errors[0]["message"].is_string(), "{query}: {errors:#}");
        if code(&errors) != expected {
            wrong.push(format!(
                "{query:?} {variables}: expected {expected}, got {errors}"
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong codes:\n{}", wrong.join("\n"));

    // The connection is still good.
    ws.subscribe("1", POINTS_CHANGED, json!({})).await;
    adjust(&app, &id, 8).await;
    assert_eq!(ws.next_data("1").await["pointsChanged"]["delta"], 8);
}

/// The `error` ends the refused operation: its id may be subscribed again straight
/// away, and the new subscription lives on. (Done many times: what goes wrong depends
/// on the order in which the server handles the new `subscribe` and the end of the
/// refused operation.)
async fn an_id_refused_with_an_error_may_be_used_again_at_once(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Jo" })).await;
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    // As many as one socket may hold (MAX_SUBSCRIPTIONS_PER_SOCKET's default).
    let subs: Vec<String> = (0..32).map(|i| format!("s{i}")).collect();
    for sub in &subs {
        ws.send_subscribe(sub, "subscription { noSuchSubscription }", json!({}))
            .await;
        ws.expect_error(sub).await;
        ws.subscribe(sub, POINTS_CHANGED, json!({ "customerId": id }))
            .await;
    }
    adjust(&app, &id, 1).await;
    let counts: Vec<(&str, usize)> = subs.iter().map(|s| (s.as_str(), 1)).collect();
    let got = ws.collect(&counts).await;
    for sub in &subs {
        assert_eq!(got[sub][0]["pointsChanged"]["delta"], 1, "{sub}");
    }
}

// ---------------------------------------------------------------------------------------
// A slow subscriber

/// Events the test makes, one transaction each.
const BURST: usize = 60;
/// How many times the big attributes are selected per event, by aliases.
const COPIES: usize = 16;

async fn a_slow_subscriber_is_dropped_and_a_fast_one_keeps_up(app: TestApp) {
    let notes = "x".repeat(16 * 1024);
    let id = app
        .create_customer(json!({ "name": "Big", "attributes": { "notes": notes } }))
        .await;
    let copies: String = (0..COPIES).map(|i| format!("a{i}: attributes ")).collect();
    let query = format!(
        "subscription($id: ID!) {{ pointsChanged(customerId: $id) {{ delta balanceAfter customer {{ {copies} }} }} }}"
    );
    let mut slow = Ws::open(&app, TRANSPORT, &app.admin()).await;
    slow.subscribe("1", &query, json!({ "id": id })).await;
    let mut fast = Ws::open(&app, TRANSPORT, &app.admin()).await;
    fast.subscribe("1", &query, json!({ "id": id })).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < BURST {
            got.push(fast.next_data("1").await["pointsChanged"].clone());
        }
        got
    });

    // `slow` reads nothing while these commit.
    let started = Instant::now();
    for _ in 0..BURST {
        let entry = adjust(&app, &id, 1).await;
        assert_eq!(entry["delta"], 1);
    }
    let fast_got = reader.await.expect("the fast reader");
    let burst_took = started.elapsed();
    let balances: Vec<i64> = fast_got
        .iter()
        .map(|e| e["balanceAfter"].as_i64().unwrap())
        .collect();
    assert_eq!(balances, (1..=BURST as i64).collect::<Vec<_>>());
    assert_eq!(fast_got[0]["customer"]["a0"]["notes"], json!(notes));

    // Now `slow` reads: some of the events, then the error (or, had the server given up
    // sending, the end of the connection).
    let mut delivered = 0;
    let ending = loop {
        match slow.receive_within(WAIT).await {
            Some(Received::Message(message)) if message["type"] == "next" => {
                assert!(
                    message["payload"].get("errors").is_none(),
                    "{}",
                    message["payload"]["errors"]
                );
                delivered += 1;
            }
            Some(Received::Message(message)) => break Received::Message(message),
            Some(closed) => break closed,
            None => panic!(
                "the slow subscriber got {delivered} of {BURST} events and then nothing \
                 (the burst took {burst_took:?})"
            ),
        }
    };
    eprintln!("slow subscriber: {delivered} of {BURST} delivered, then {ending:?}");
    assert!(delivered < BURST, "the slow subscriber got every event");
    match ending {
        Received::Message(message) => {
            assert_eq!(message["type"], "error", "{message}");
            assert_eq!(message["id"], "1", "{message}");
            assert_eq!(code(&message["payload"]), "SLOW_CONSUMER", "{message}");
        }
        closed => eprintln!("the server closed the slow socket: {closed:?}"),
    }
}

mod a_slow_subscriber_is_dropped_and_a_fast_one_keeps_up {
    use crate::helpers::{Backend, spawn_app_with_event_buffer};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = spawn_app_with_event_buffer(Backend::Sqlite, 4)
            .await
            .expect("SQLite is always there");
        super::a_slow_subscriber_is_dropped_and_a_fast_one_keeps_up(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = spawn_app_with_event_buffer(Backend::Postgres, 4).await {
            super::a_slow_subscriber_is_dropped_and_a_fast_one_keeps_up(app).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Metrics

/// The value of the unlabelled metric `name` in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

async fn metrics_count_open_subscriptions_and_delivered_events(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Max" })).await;
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("1", POINTS_CHANGED, json!({ "customerId": id }))
        .await;
    // Metrics are process-wide: other tests open and close subscriptions meanwhile.
    assert!(metric(&app, "tierwise_subscriptions_active").await >= 1.0);
    adjust(&app, &id, 1).await;
    ws.next_data("1").await;
    assert!(metric(&app, "tierwise_events_delivered_total").await > 0.0);
    assert!(metric(&app, "tierwise_subscriptions_active").await >= 1.0);
}

// ---------------------------------------------------------------------------------------
// Shared feeds

/// Waits until the unlabelled metric `name` is `value`.
async fn metric_becomes(app: &TestApp, name: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = metric(app, name).await;
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {now}, not {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sockets holding the same subscription with the same rights share one feed, resolved
/// once per event; the same query asked with other rights is another feed, answered as
/// those rights allow. A socket that leaves or completes ends nobody else's stream, and
/// a feed stops when its last socket leaves. (Each test runs in its own process under
/// nextest, so the feed count is this test's.)
async fn sockets_with_the_same_subscription_share_a_feed(app: TestApp) {
    let [x, y] = create_settled(&app, &["Xu", "Yan"])
        .await
        .try_into()
        .unwrap();
    let mut admins = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
        ws.subscribe("1", POINTS_CHANGED, json!({})).await;
        admins.push(ws);
    }
    let mut xu = Ws::open(&app, TRANSPORT, &app.customer_token(&x)).await;
    xu.subscribe("1", POINTS_CHANGED, json!({})).await;
    let mut yan = Ws::open(&app, TRANSPORT, &app.customer_token(&y)).await;
    yan.subscribe("1", POINTS_CHANGED, json!({})).await;
    // One feed for the three admins, one for each customer.
    metric_becomes(&app, "tierwise_subscription_feeds_active", 3.0).await;
    assert!(metric(&app, "tierwise_subscriptions_active").await >= 5.0);

    adjust(&app, &x, 4).await;
    adjust(&app, &y, 6).await;
    for ws in &mut admins {
        let got = ws.collect(&[("1", 2)]).await;
        let deltas: Vec<&Value> = got["1"]
            .iter()
            .map(|d| &d["pointsChanged"]["delta"])
            .collect();
        assert_eq!(deltas, [&json!(4), &json!(6)]);
        assert_eq!(got["1"][0]["pointsChanged"]["customer"]["id"], x);
    }
    let mine = xu.next_data("1").await;
    assert_eq!(mine["pointsChanged"]["customer"]["id"], x);
    let mine = yan.next_data("1").await;
    assert_eq!(mine["pointsChanged"]["customer"]["id"], y);

    // One admin completes and one leaves: the third still receives.
    let mut kept = admins.pop().unwrap();
    admins[0].complete("1").await;
    admins[0].sync().await;
    drop(admins);
    adjust(&app, &x, 1).await;
    assert_eq!(kept.next_data("1").await["pointsChanged"]["delta"], 1);
    assert_eq!(xu.next_data("1").await["pointsChanged"]["delta"], 1);
    assert!(
        yan.receive_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    // A socket joining the running feed gets what commits after it joined.
    let mut late = Ws::open(&app, TRANSPORT, &app.admin()).await;
    late.subscribe("1", POINTS_CHANGED, json!({})).await;
    metric_becomes(&app, "tierwise_subscription_feeds_active", 3.0).await;
    adjust(&app, &y, 2).await;
    assert_eq!(late.next_data("1").await["pointsChanged"]["delta"], 2);
    assert_eq!(kept.next_data("1").await["pointsChanged"]["delta"], 2);

    drop((kept, late, xu, yan));
    metric_becomes(&app, "tierwise_subscription_feeds_active", 0.0).await;
}

/// An outbox row of a topic this version does not know (a newer replica's, during a
/// rolling upgrade) is skipped, never read as another topic: here it names a ledger entry
/// as its subject, which the old decoder delivered as a `pointsChanged` again. An event
/// about no single customer is not a subscriber's either.
async fn an_event_of_an_unknown_topic_is_skipped_not_misread(app: TestApp) {
    use sea_orm::ConnectionTrait;
    use tierwise_api::store::{outbox, raw};
    let [x] = create_settled(&app, &["Xiang"]).await.try_into().unwrap();
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.subscribe("points", POINTS_CHANGED, json!({ "customerId": x }))
        .await;
    let earlier = adjust(&app, &x, 5).await;
    assert_eq!(ws.next_data("points").await["pointsChanged"]["delta"], 5);

    let db = app.db.conn();
    let before = outbox::head(db).await.unwrap();
    db.execute_raw(raw(
        db.get_database_backend(),
        "INSERT INTO event_outbox (id, topic, customer_id, subject_id, created_at) \
         VALUES ($1, 'CAMPAIGN_FIRED', $2, $3, $4)",
        vec![
            uuid::Uuid::now_v7().into(),
            uuid::Uuid::parse_str(&x).unwrap().into(),
            uuid::Uuid::parse_str(earlier["id"].as_str().unwrap())
                .unwrap()
                .into(),
            chrono::Utc::now().into(),
        ],
    ))
    .await
    .expect("a newer replica's event");
    // And an event about no single customer, naming the same entry: subscriptions
    // follow customers, so no subscriber is told of it.
    db.execute_raw(raw(
        db.get_database_backend(),
        "INSERT INTO event_outbox (id, topic, customer_id, subject_id, created_at) \
         VALUES ($1, 'POINTS_CHANGED', NULL, $2, $3)",
        vec![
            uuid::Uuid::now_v7().into(),
            uuid::Uuid::parse_str(earlier["id"].as_str().unwrap())
                .unwrap()
                .into(),
            chrono::Utc::now().into(),
        ],
    ))
    .await
    .expect("an event about no customer");
    let read = outbox::read_after(db, before, 10).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].topic, Err("CAMPAIGN_FIRED".to_owned()));
    assert_eq!(read[1].customer_id, None);

    adjust(&app, &x, 7).await;
    let got = ws.next_data("points").await;
    assert_eq!(
        got["pointsChanged"]["delta"], 7,
        "the next event is the new entry, not the old one again: {got}"
    );
}

on_both!(
    the_transport_protocol_acknowledges_answers_pings_and_streams_events,
    the_legacy_protocol_starts_streams_and_stops,
    the_legacy_protocol_refuses_a_bad_token_with_connection_error,
    the_server_keeps_idle_connections_alive,
    refused_tokens_close_with_4403,
    subscribing_before_the_acknowledgement_closes_with_4401,
    no_connection_init_within_10_seconds_closes_with_4408,
    a_second_connection_init_closes_with_4429,
    a_second_subscription_with_a_live_id_closes_with_4409,
    messages_outside_the_protocol_close_with_4400,
    a_token_that_expires_while_connected_closes_with_4403,
    tier_changes_of_every_reason_are_delivered,
    ledger_entries_of_every_kind_are_delivered,
    filters_narrow_to_a_customer_and_to_a_tier,
    changes_right_after_the_server_starts_are_delivered,
    staff_and_partners_with_the_scope_see_everyone,
    partners_without_the_scope_are_refused,
    customers_receive_only_their_own_events,
    refused_subscriptions_get_an_error_with_a_code,
    an_id_refused_with_an_error_may_be_used_again_at_once,
    metrics_count_open_subscriptions_and_delivered_events,
    sockets_with_the_same_subscription_share_a_feed,
    an_event_of_an_unknown_topic_is_skipped_not_misread,
);
