//! Data isolation: a customer's personal data and figures reach only those who may read
//! that customer, whatever path the object takes — a nested field (referrals), a
//! mutation payload, a live event, an error message or an idempotent replay.
//!
//! The permission matrix is generated from the schema: every field of `Customer`,
//! `PointsEntry` and `TierChange` is asked for through every door each role has, so a
//! field added later is covered without anyone remembering to.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tierwise_api::auth::Claims;

use crate::helpers::{TestApp, assert_error, claims, on_both};
use crate::ws_client::{TRANSPORT, Ws};

/// What a caller who may not read a customer still sees of it (README, "Data
/// isolation").
const CUSTOMER_PUBLIC: &[&str] = &["id", "name"];
const POINTS_ENTRY_PUBLIC: &[&str] = &[
    "id",
    "customer",
    "delta",
    "kind",
    "expiresAt",
    "availableAt",
    "createdAt",
];
const TIER_CHANGE_PUBLIC: &[&str] = &["id", "customer", "reason", "changedAt"];

/// A referrer with a full profile and history, and the customer it referred.
struct Family {
    referrer: String,
    referee: String,
}

const REFERRER_EMAIL: &str = "zhou.min@example.com";
const REFERRER_PHONE: &str = "+8613800138000";
const REFEREE_EMAIL: &str = "li.lei@example.com";

async fn family(app: &TestApp) -> Family {
    let referrer = app
        .create_customer(json!({
            "name": "Zhou Min", "email": REFERRER_EMAIL, "phone": REFERRER_PHONE,
            "birthday": "1990-05-01", "externalRef": "SHOP-1",
            "attributes": { "interests": ["tea"] }, "tags": ["vip-candidate"]
        }))
        .await;
    let code = app
        .ok(
            "query($id: ID!) { customer(id: $id) { referralCode } }",
            json!({ "id": referrer }),
        )
        .await["customer"]["referralCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let referee = app
        .create_customer(json!({
            "name": "Li Lei", "email": REFEREE_EMAIL, "birthday": "1995-02-03",
            "referralCode": code
        }))
        .await;
    for (customer, note) in [
        (&referrer, "private note of the referrer"),
        (&referee, "private note of the referee"),
    ] {
        app.ok(
            "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }",
            json!({ "input": { "customerId": customer, "kind": "PURCHASE", "amount": "250.00", "note": note } }),
        )
        .await;
    }
    Family { referrer, referee }
}

fn customer_token(app: &TestApp, customer_id: &str) -> String {
    app.customer_token(customer_id)
}

/// The errors of a response, each as (code, path joined with dots).
fn errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let code = e["extensions"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let path = e["path"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .map(|s| match s {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    (code, path)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that nothing personal of the referrer or referee appears anywhere in `body`.
#[track_caller]
fn assert_no_personal_data(body: &Value) {
    let text = body.to_string();
    for secret in [
        REFERRER_EMAIL,
        REFERRER_PHONE,
        REFEREE_EMAIL,
        "Zhou Min",
        "Li Lei",
        "1990-05-01",
        "1995-02-03",
        "SHOP-1",
        "private note",
        "tea",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked: {body:#}");
    }
}

// ---------------------------------------------------------------------------------------
// Referrals: the nested path of finding 1

async fn a_customer_sees_only_the_public_view_of_its_referrer_and_referees(app: TestApp) {
    let Family { referrer, referee } = family(&app).await;
    let as_referee = customer_token(&app, &referee);
    let as_referrer = customer_token(&app, &referrer);

    // The referral screen works: who referred me, by initial.
    let data = app
        .ok_as(
            &as_referee,
            "{ viewer { customer { name referredBy { id name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["customer"]["name"], "Li Lei");
    assert_eq!(
        data["viewer"]["customer"]["referredBy"]["id"],
        referrer.as_str()
    );
    assert_eq!(data["viewer"]["customer"]["referredBy"]["name"], "Z.");

    // The query of the finding: nothing of the referrer comes back.
    let body = app
        .gql(
            Some(&as_referee),
            "{ viewer { customer { referredBy { name email attributes pointsBalance externalRef
                pointsLedger(first: 3) { nodes { delta reason } }
                interactions(first: 3) { nodes { kind amount } }
                referrals { referee { email phone } } } } } }",
            json!({}),
        )
        .await;
    assert_no_personal_data(&body);
    let found = errors(&body);
    assert!(!found.is_empty(), "{body:#}");
    for (code, path) in &found {
        assert_eq!(code, "FORBIDDEN", "{body:#}");
        assert!(path.starts_with("viewer.customer.referredBy."), "{path}");
    }
    // A nullable field is null with its own error; the customer's own data stays.
    let body = app
        .gql(
            Some(&as_referee),
            "{ viewer { customer { email referredBy { name email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["viewer"]["customer"]["email"], REFEREE_EMAIL);
    assert_eq!(
        body["data"]["viewer"]["customer"]["referredBy"]["name"],
        "Z."
    );
    assert_eq!(
        body["data"]["viewer"]["customer"]["referredBy"]["email"],
        Value::Null
    );
    assert_eq!(
        errors(&body),
        vec![(
            "FORBIDDEN".to_owned(),
            "viewer.customer.referredBy.email".to_owned()
        )]
    );

    // The referrer sees its referrals' status and reward, the referee by initial only.
    let data = app
        .ok_as(
            &as_referrer,
            "{ viewer { customer { referrals { status referrerPoints refereePoints referee { id name } } } } }",
            json!({}),
        )
        .await;
    let referral = &data["viewer"]["customer"]["referrals"][0];
    assert_eq!(referral["status"], "REWARDED");
    assert_eq!(referral["referee"]["id"], referee.as_str());
    assert_eq!(referral["referee"]["name"], "L.");
    let body = app
        .gql(
            Some(&as_referrer),
            "{ viewer { customer { referrals { referee { email birthday interactions { nodes { note } } } } } } }",
            json!({}),
        )
        .await;
    assert!(!body.to_string().contains(REFEREE_EMAIL), "{body:#}");
    assert!(!body.to_string().contains("1995-02-03"), "{body:#}");
    assert!(
        !body.to_string().contains("note of the referee"),
        "{body:#}"
    );
    assert!(
        errors(&body).iter().all(|(code, _)| code == "FORBIDDEN"),
        "{body:#}"
    );

    // Chaining back through the referrer's referrals reaches no one else either.
    let body = app
        .gql(
            Some(&as_referee),
            "{ viewer { customer { referredBy { referrals { referee { email } } } } } }",
            json!({}),
        )
        .await;
    assert!(
        errors(&body).iter().all(|(code, _)| code == "FORBIDDEN"),
        "{body:#}"
    );
    assert!(
        !body.to_string().contains(REFEREE_EMAIL)
            || body["data"]["viewer"]["customer"]["referredBy"].is_null()
    );
}

async fn a_customer_still_reads_all_of_itself(app: TestApp) {
    let Family { referrer, .. } = family(&app).await;
    let own = customer_token(&app, &referrer);
    let data = app
        .ok_as(
            &own,
            "{ viewer { customer { id name email phone birthday externalRef tags attributes
                pointsBalance tier { key name } score metrics { lifetimeSpend purchaseCount }
                pointsLedger { nodes { delta balanceAfter reason kind customer { id email } } }
                tierHistory { nodes { from { key } to { key } score note reason customer { name } } }
                interactions { nodes { kind amount note } }
                referrals { status referee { id name } } } } }",
            json!({}),
        )
        .await;
    let me = &data["viewer"]["customer"];
    assert_eq!(me["email"], REFERRER_EMAIL);
    assert_eq!(me["phone"], REFERRER_PHONE);
    assert_eq!(
        me["pointsLedger"]["nodes"][0]["customer"]["email"],
        REFERRER_EMAIL
    );
    assert!(
        me["pointsLedger"]["nodes"][0]["balanceAfter"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(
        me["interactions"]["nodes"][0]["note"],
        "private note of the referrer"
    );
    let data = app
        .ok_as(
            &own,
            "query($id: ID!) { customer(id: $id) { email } }",
            json!({ "id": referrer }),
        )
        .await;
    assert_eq!(data["customer"]["email"], REFERRER_EMAIL);
}

// ---------------------------------------------------------------------------------------
// The permission matrix, generated from the schema

/// The fields of `type_name` as selections: a scalar's name, an object's name with
/// `{ __typename }`.
async fn selections(app: &TestApp, type_name: &str) -> Vec<(String, String)> {
    let data = app
        .ok(
            "query($name: String!) { __type(name: $name) { fields {
               name args { name defaultValue type { kind } }
               type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
             } } }",
            json!({ "name": type_name }),
        )
        .await;
    let fields = data["__type"]["fields"]
        .as_array()
        .expect("the type exists");
    assert!(fields.len() > 5, "{type_name} has fields: {data}");
    fields
        .iter()
        .map(|field| {
            let name = field["name"].as_str().unwrap().to_owned();
            // Every argument of these fields has a default or is nullable.
            for arg in field["args"].as_array().unwrap() {
                let required = arg["type"]["kind"] == "NON_NULL" && arg["defaultValue"].is_null();
                assert!(!required, "{name}({arg}) needs a value");
            }
            let mut ty = &field["type"];
            while ty["kind"] == "NON_NULL" || ty["kind"] == "LIST" {
                ty = &ty["ofType"];
            }
            let selection = if ty["kind"] == "OBJECT" {
                format!("{name} {{ __typename }}")
            } else {
                name.clone()
            };
            (name, selection)
        })
        .collect()
}

/// Whether `body` shows field `name` (asked alone) to the caller: no error at all; or
/// refuses it: exactly one `FORBIDDEN` error whose path ends at the field.
#[track_caller]
fn check_field(body: &Value, name: &str, visible: bool, door: &str) {
    let found = errors(body);
    if visible {
        assert!(
            found.is_empty(),
            "{door}: {name} should be readable: {body:#}"
        );
        return;
    }
    assert_eq!(
        found.len(),
        1,
        "{door}: {name} should be refused once: {body:#}"
    );
    let (code, path) = &found[0];
    assert_eq!(code, "FORBIDDEN", "{door}: {name}: {body:#}");
    assert!(
        path.ends_with(&format!(".{name}")),
        "{door}: {name} at {path}"
    );
}

/// One way a caller reaches the target customer: the token and the operation around the
/// selection (`@@` stands for it).
struct Door {
    name: &'static str,
    token: String,
    operation: String,
    /// Whether this caller may read the customer.
    reads: bool,
    /// Whether it may also read segments (which a customer may not, even its own).
    segments: bool,
}

async fn every_field_of_a_customer_answers_by_the_permission_table(app: TestApp) {
    let Family { referrer, referee } = family(&app).await;
    let reward = app
        .ok(
            "mutation { createReward(input: { name: \"Sticker\", costPoints: 1 }) { id } }",
            json!({}),
        )
        .await["createReward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 100000, reason: \"matrix\" }) { id } }",
        json!({ "id": referrer }),
    )
    .await;
    let target = &referrer;
    let by_id = format!("query {{ customer(id: \"{target}\") {{ @@ }} }}");
    let doors = vec![
        Door {
            name: "admin",
            token: app.admin(),
            operation: by_id.clone(),
            reads: true,
            segments: true,
        },
        Door {
            name: "staff",
            token: app.staff(),
            operation: by_id.clone(),
            reads: true,
            segments: true,
        },
        Door {
            name: "partner customers:read",
            token: app.partner("customers:read"),
            operation: by_id.clone(),
            reads: true,
            segments: true,
        },
        Door {
            name: "the customer itself",
            token: customer_token(&app, target),
            operation: "query { viewer { customer { @@ } } }".into(),
            reads: true,
            segments: false,
        },
        Door {
            name: "the customer it referred",
            token: customer_token(&app, &referee),
            operation: "query { viewer { customer { referredBy { @@ } } } }".into(),
            reads: false,
            segments: false,
        },
        Door {
            name: "partner interactions:write",
            token: app.partner("interactions:write"),
            operation: format!(
                "mutation {{ recordInteraction(input: {{ customerId: \"{target}\", kind: VISIT }}) {{ customer {{ @@ }} }} }}"
            ),
            reads: false,
            segments: false,
        },
        Door {
            name: "partner customers:write",
            token: app.partner("customers:write"),
            operation: format!(
                "mutation {{ updateCustomer(id: \"{target}\", input: {{}}) {{ @@ }} }}"
            ),
            reads: false,
            segments: false,
        },
        Door {
            name: "partner points:write",
            token: app.partner("points:write"),
            operation: format!(
                "mutation {{ adjustPoints(input: {{ customerId: \"{target}\", delta: 1, reason: \"m\" }}) {{ customer {{ @@ }} }} }}"
            ),
            reads: false,
            segments: false,
        },
        Door {
            name: "partner rewards:redeem",
            token: app.partner("rewards:redeem"),
            operation: format!(
                "mutation {{ redeemReward(input: {{ customerId: \"{target}\", rewardId: \"{reward}\" }}) {{ customer {{ @@ }} }} }}"
            ),
            reads: false,
            segments: false,
        },
    ];
    let fields = selections(&app, "Customer").await;
    for door in &doors {
        for (name, selection) in &fields {
            let query = door.operation.replace("@@", selection);
            let body = app.gql(Some(&door.token), &query, json!({})).await;
            let readable = door.reads && (name != "segments" || door.segments);
            let visible = readable || CUSTOMER_PUBLIC.contains(&name.as_str());
            check_field(&body, name, visible, door.name);
            if !door.reads {
                assert_no_personal_data(&body);
            }
        }
    }

    // A ledger entry, through the payload of the write that made it.
    let entry_fields = selections(&app, "PointsEntry").await;
    for (token, reads, door) in [
        (app.staff(), true, "staff"),
        (app.partner("points:write"), false, "partner points:write"),
    ] {
        for (name, selection) in &entry_fields {
            let query = format!(
                "mutation {{ adjustPoints(input: {{ customerId: \"{target}\", delta: 1, reason: \"m\" }}) {{ {selection} }} }}"
            );
            let body = app.gql(Some(&token), &query, json!({})).await;
            check_field(
                &body,
                name,
                reads || POINTS_ENTRY_PUBLIC.contains(&name.as_str()),
                door,
            );
        }
    }
    // And through a redemption's entry.
    let query = format!(
        "mutation {{ redeemReward(input: {{ customerId: \"{target}\", rewardId: \"{reward}\" }}) {{ pointsSpent entry {{ delta balanceAfter }} }} }}"
    );
    let body = app
        .gql(Some(&app.partner("rewards:redeem")), &query, json!({}))
        .await;
    assert_eq!(
        errors(&body),
        vec![(
            "FORBIDDEN".to_owned(),
            "redeemReward.entry.balanceAfter".to_owned()
        )],
        "{body:#}"
    );
}

/// Live events: every field of `PointsEntry` and `TierChange` asked by a partner that
/// may subscribe but not read, and by one that may do both.
async fn events_carry_personal_data_only_to_readers(app: TestApp) {
    let Family { referrer, .. } = family(&app).await;
    let entry_fields = selections(&app, "PointsEntry").await;
    let change_fields = selections(&app, "TierChange").await;
    for (scope, reads) in [
        ("events:subscribe", false),
        ("events:subscribe customers:read", true),
    ] {
        let mut ws = Ws::open(&app, TRANSPORT, &app.partner(scope)).await;
        let mut expected: HashMap<String, (String, bool)> = HashMap::new();
        for (name, selection) in &entry_fields {
            let id = format!("points-{name}");
            ws.subscribe(
                &id,
                &format!("subscription {{ pointsChanged {{ {selection} }} }}"),
                json!({}),
            )
            .await;
            let public = POINTS_ENTRY_PUBLIC.contains(&name.as_str());
            expected.insert(id, (name.clone(), reads || public));
        }
        for (name, selection) in &change_fields {
            let id = format!("tier-{name}");
            ws.subscribe(
                &id,
                &format!("subscription {{ tierChanged {{ {selection} }} }}"),
                json!({}),
            )
            .await;
            let public = TIER_CHANGE_PUBLIC.contains(&name.as_str());
            expected.insert(id, (name.clone(), reads || public));
        }
        // The public view of the customer, in an event.
        ws.subscribe(
            "customer",
            "subscription { pointsChanged { customer { id name } } }",
            json!({}),
        )
        .await;
        app.ok(
            "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 5, reason: \"event\" }) { id } }",
            json!({ "id": referrer }),
        )
        .await;
        app.ok(
            "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"private note\") { id } }",
            json!({ "id": referrer }),
        )
        .await;
        let mut seen: HashMap<String, Value> = HashMap::new();
        while seen.len() < expected.len() + 1 {
            let message = ws.next_message().await;
            assert_eq!(message["type"], "next", "{message}");
            let id = message["id"].as_str().unwrap().to_owned();
            seen.entry(id).or_insert(message["payload"].clone());
        }
        let customer = &seen["customer"]["data"]["pointsChanged"]["customer"];
        assert_eq!(customer["id"], referrer.as_str());
        assert_eq!(customer["name"], if reads { "Zhou Min" } else { "Z." });
        for (id, (name, visible)) in &expected {
            check_field(&seen[id], name, *visible, scope);
            if !reads {
                assert_no_personal_data(&seen[id]);
            }
        }
        drop(ws);
        // Back to the lowest tier for the next round.
        app.ok(
            "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"potential\", note: \"n\") { id } }",
            json!({ "id": referrer }),
        )
        .await;
    }
    // Filtering on the tier would tell who holds it.
    let mut ws = Ws::open(&app, TRANSPORT, &app.partner("events:subscribe")).await;
    ws.send_subscribe(
        "gold",
        "subscription { tierChanged(tierKey: \"vip\") { id } }",
        json!({}),
    )
    .await;
    let refused = ws.expect_error("gold").await;
    assert_eq!(crate::ws_client::code(&refused), "FORBIDDEN", "{refused}");
}

// ---------------------------------------------------------------------------------------
// Errors and aggregates

async fn errors_tell_a_balance_only_to_those_who_may_read_it(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 4321, reason: \"gift\" }) { id } }",
        json!({ "id": customer }),
    )
    .await;
    let take = "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: -1000000000, reason: \"probe\" }) { id } }";
    let body = app
        .gql(
            Some(&app.partner("points:write")),
            take,
            json!({ "id": customer }),
        )
        .await;
    let message = assert_error(&body, "INSUFFICIENT_POINTS");
    assert!(!message.contains("4321"), "{message}");
    let body = app
        .gql(Some(&app.staff()), take, json!({ "id": customer }))
        .await;
    let message = assert_error(&body, "INSUFFICIENT_POINTS");
    assert!(
        message.contains("4321"),
        "staff may read the balance: {message}"
    );

    let reward = app
        .ok(
            "mutation { createReward(input: { name: \"Teapot\", costPoints: 90000 }) { id } }",
            json!({}),
        )
        .await["createReward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeem = "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r }) { id } }";
    let variables = json!({ "c": customer, "r": reward });
    let body = app
        .gql(
            Some(&app.partner("rewards:redeem")),
            redeem,
            variables.clone(),
        )
        .await;
    let message = assert_error(&body, "INSUFFICIENT_POINTS");
    assert!(!message.contains("4321"), "{message}");
    let body = app
        .gql(Some(&customer_token(&app, &customer)), redeem, variables)
        .await;
    let message = assert_error(&body, "INSUFFICIENT_POINTS");
    assert!(
        message.contains("4321"),
        "a customer may read its own balance: {message}"
    );
}

async fn program_aggregates_are_for_those_who_may_read_the_program(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let query = "{ viewer { customer { tier { key memberCount } } } }";
    let body = app
        .gql(Some(&customer_token(&app, &customer)), query, json!({}))
        .await;
    assert!(
        body["data"]["viewer"]["customer"]["tier"]["memberCount"].is_null(),
        "{body:#}"
    );
    assert_eq!(
        errors(&body),
        vec![(
            "FORBIDDEN".to_owned(),
            "viewer.customer.tier.memberCount".to_owned()
        )]
    );
    let body = app
        .gql(
            Some(&customer_token(&app, &customer)),
            "{ programStats { customerCount } }",
            json!({}),
        )
        .await;
    assert_error(&body, "FORBIDDEN");
    let data = app
        .ok_as(
            &app.staff(),
            "query($id: ID!) { customer(id: $id) { tier { memberCount } } }",
            json!({ "id": customer }),
        )
        .await;
    assert_eq!(data["customer"]["tier"]["memberCount"], 1);
}

// ---------------------------------------------------------------------------------------
// Idempotency keys bound to their request

/// A customer token whose `sub` is the same for every customer, as the CLI used to mint.
fn token_with_shared_sub(app: &TestApp, customer_id: &str) -> String {
    app.sign(&Claims {
        sub: "customer".into(),
        customer_id: Some(customer_id.into()),
        ..claims("customer")
    })
}

async fn idempotency_keys_replay_only_the_same_request(app: TestApp) {
    let a = app
        .create_customer(json!({ "name": "Zhou Min", "email": REFERRER_EMAIL }))
        .await;
    let b = app.create_customer(json!({ "name": "Li Lei" })).await;
    for customer in [&a, &b] {
        app.ok(
            "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 500, reason: \"gift\" }) { id } }",
            json!({ "id": customer }),
        )
        .await;
    }
    let reward = app
        .ok(
            "mutation { createReward(input: { name: \"Mug\", costPoints: 100 }) { id } }",
            json!({}),
        )
        .await["createReward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeem = "mutation($c: ID!, $r: ID!, $k: String) {
        redeemReward(input: { customerId: $c, rewardId: $r, idempotencyKey: $k }) {
          id customer { id name email pointsBalance } } }";

    // Two customers, one `sub`, one key: each gets its own redemption.
    let as_a = token_with_shared_sub(&app, &a);
    let as_b = token_with_shared_sub(&app, &b);
    let first = app
        .ok_as(
            &as_a,
            redeem,
            json!({ "c": a, "r": reward, "k": "checkout-1" }),
        )
        .await;
    let other = app
        .ok_as(
            &as_b,
            redeem,
            json!({ "c": b, "r": reward, "k": "checkout-1" }),
        )
        .await;
    assert_ne!(first["redeemReward"]["id"], other["redeemReward"]["id"]);
    assert_eq!(other["redeemReward"]["customer"]["id"], b.as_str());
    assert_eq!(other["redeemReward"]["customer"]["pointsBalance"], 400);
    assert!(!other.to_string().contains(REFERRER_EMAIL));
    // The same customer and request again: the first redemption, points taken once.
    let again = app
        .ok_as(
            &as_a,
            redeem,
            json!({ "c": a, "r": reward, "k": "checkout-1" }),
        )
        .await;
    assert_eq!(again["redeemReward"]["id"], first["redeemReward"]["id"]);
    assert_eq!(again["redeemReward"]["customer"]["pointsBalance"], 400);

    // Staff reusing a key for another customer or reward: refused, nothing happens.
    let staff = app.staff();
    let original = app
        .ok_as(
            &staff,
            redeem,
            json!({ "c": a, "r": reward, "k": "desk-7" }),
        )
        .await;
    let body = app
        .gql(
            Some(&staff),
            redeem,
            json!({ "c": b, "r": reward, "k": "desk-7" }),
        )
        .await;
    let message = assert_error(&body, "CONFLICT");
    assert!(
        message.contains("idempotency key reused with a different request"),
        "{message}"
    );
    assert!(!body.to_string().contains(REFERRER_EMAIL));
    let balance = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsBalance } }",
            json!({ "id": b }),
        )
        .await;
    assert_eq!(
        balance["customer"]["pointsBalance"], 400,
        "nothing taken from b"
    );
    let replay = app
        .ok_as(
            &staff,
            redeem,
            json!({ "c": a, "r": reward, "k": "desk-7" }),
        )
        .await;
    assert_eq!(replay["redeemReward"]["id"], original["redeemReward"]["id"]);

    // Adjustments and interactions alike.
    let adjust = "mutation($c: ID!, $d: Int!) { adjustPoints(input: { customerId: $c, delta: $d, reason: \"fix\", idempotencyKey: \"adj-1\" }) { id } }";
    let entry = app.ok_as(&staff, adjust, json!({ "c": a, "d": 10 })).await;
    let repeat = app.ok_as(&staff, adjust, json!({ "c": a, "d": 10 })).await;
    assert_eq!(entry, repeat);
    let body = app
        .gql(Some(&staff), adjust, json!({ "c": a, "d": 11 }))
        .await;
    assert_error(&body, "CONFLICT");

    let record = "mutation($c: ID!, $amount: Decimal!) { recordInteraction(input: {
        customerId: $c, kind: PURCHASE, amount: $amount, idempotencyKey: \"receipt-9\" }) {
        duplicate interaction { id } } }";
    let pos = app.partner("interactions:write");
    let first = app
        .ok_as(&pos, record, json!({ "c": a, "amount": "80.00" }))
        .await;
    assert_eq!(first["recordInteraction"]["duplicate"], false);
    // Sent again later without occurredAt: the same request, replayed.
    let again = app
        .ok_as(&pos, record, json!({ "c": a, "amount": "80.00" }))
        .await;
    assert_eq!(again["recordInteraction"]["duplicate"], true);
    assert_eq!(
        again["recordInteraction"]["interaction"],
        first["recordInteraction"]["interaction"]
    );
    for variables in [
        json!({ "c": a, "amount": "81.00" }),
        json!({ "c": b, "amount": "80.00" }),
    ] {
        let body = app.gql(Some(&pos), record, variables).await;
        assert_error(&body, "CONFLICT");
    }
    let count = app
        .ok(
            "query($id: ID!) { customer(id: $id) { interactions(kinds: [PURCHASE]) { totalCount } } }",
            json!({ "id": b }),
        )
        .await;
    assert_eq!(count["customer"]["interactions"]["totalCount"], 0);

    // A staff member whose `sub` equals a partner's has keys of its own.
    let desk = app.sign(&Claims {
        sub: "partner-tester".into(),
        ..claims("staff")
    });
    let mine = app
        .ok_as(&desk, record, json!({ "c": a, "amount": "80.00" }))
        .await;
    assert_eq!(
        mine["recordInteraction"]["duplicate"], false,
        "not the partner's key"
    );
}

async fn a_sold_out_reward_says_so_whatever_the_customer_holds(app: TestApp) {
    let broke = app.create_customer(json!({ "name": "Li Lei" })).await;
    let reward = app
        .ok(
            "mutation { createReward(input: { name: \"Last mug\", costPoints: 100, stock: 0, minTierKey: \"vip\" }) { id } }",
            json!({}),
        )
        .await["createReward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Neither the tier nor the balance of the customer shows through the refusal.
    let body = app
        .gql(
            Some(&app.partner("rewards:redeem")),
            "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r }) { id } }",
            json!({ "c": broke, "r": reward }),
        )
        .await;
    assert_error(&body, "OUT_OF_STOCK");
}

// ---------------------------------------------------------------------------------------
// WebSocket operations are the sender's own

async fn websocket_mutations_of_two_users_are_never_shared(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let batch = "mutation($inputs: [RecordInteractionInput!]!) {
        recordInteractions(inputs: $inputs) { interaction { id recordedBy } } }";
    let inputs: Vec<Value> = (0..5)
        .map(|_| json!({ "customerId": customer, "kind": "VISIT" }))
        .collect();
    let subjects = ["desk-anna", "desk-bo"];
    let sockets = join_all(subjects.iter().map(|sub| {
        let token = app.sign(&Claims {
            sub: (*sub).into(),
            ..claims("staff")
        });
        let app = &app;
        async move { Ws::open(app, TRANSPORT, &token).await }
    }))
    .await;
    let results = join_all(sockets.into_iter().map(|mut ws| {
        let inputs = inputs.clone();
        async move {
            ws.send_subscribe("m", batch, json!({ "inputs": inputs }))
                .await;
            let message = ws.next_message().await;
            assert_eq!(message["type"], "next", "{message}");
            message["payload"]["data"]["recordInteractions"].clone()
        }
    }))
    .await;
    for (sub, result) in subjects.iter().zip(&results) {
        let rows = result.as_array().expect("a result for each sender");
        assert_eq!(rows.len(), 5);
        for row in rows {
            assert_eq!(row["interaction"]["recordedBy"], *sub, "{result}");
        }
    }
    let count = app
        .ok(
            "query($id: ID!) { customer(id: $id) { interactions(kinds: [VISIT]) { totalCount } } }",
            json!({ "id": customer }),
        )
        .await;
    assert_eq!(
        count["customer"]["interactions"]["totalCount"], 10,
        "both batches written"
    );
}

on_both!(
    a_customer_sees_only_the_public_view_of_its_referrer_and_referees,
    a_customer_still_reads_all_of_itself,
    every_field_of_a_customer_answers_by_the_permission_table,
    events_carry_personal_data_only_to_readers,
    errors_tell_a_balance_only_to_those_who_may_read_it,
    program_aggregates_are_for_those_who_may_read_the_program,
    idempotency_keys_replay_only_the_same_request,
    a_sold_out_reward_says_so_whatever_the_customer_holds,
    websocket_mutations_of_two_users_are_never_shared,
);
