//! Points and rewards: the rewards catalogue (`createReward`, `updateReward`, `rewards`),
//! redemptions (`redeemReward`), adjustments by hand (`adjustPoints`) and the ledger
//! (`Customer.pointsLedger`): validation, error codes, roles, idempotency, and races fought
//! with real parallel requests. Every scenario ends by walking each customer's whole
//! ledger: the balance is the sum of its deltas and every `balanceAfter` chains.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, data, error_code, instant, on_both};
use crate::ledger::{ENTRY, assert_ledger_consistent, entry, ledger_query, summary};

const REWARD: &str = "id name description costPoints stock active minTierKey";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { pointsEarned customer { pointsBalance } }
}";

const SET_TIER: &str = "mutation($customerId: ID!, $tierKey: String!, $note: String!) {
  setCustomerTier(customerId: $customerId, tierKey: $tierKey, note: $note) { to { key } }
}";

const BALANCE: &str = "query($id: ID!) { customer(id: $id) { pointsBalance } }";

fn create_reward_mutation() -> String {
    format!("mutation($input: RewardInput!) {{ createReward(input: $input) {{ {REWARD} }} }}")
}

fn update_reward_mutation() -> String {
    format!(
        "mutation($id: ID!, $input: RewardInput!) {{ updateReward(id: $id, input: $input) {{ {REWARD} }} }}"
    )
}

fn redeem_mutation() -> String {
    format!(
        "mutation($input: RedeemRewardInput!) {{ redeemReward(input: $input) {{ \
           id customer {{ id }} reward {{ {REWARD} }} pointsSpent entry {{ {ENTRY} }} redeemedAt \
         }} }}"
    )
}

fn adjust_mutation() -> String {
    format!("mutation($input: AdjustPointsInput!) {{ adjustPoints(input: $input) {{ {ENTRY} }} }}")
}

#[track_caller]
fn id_of(object: &Value) -> String {
    object["id"].as_str().expect("an id").to_owned()
}

/// `base` with the fields of `extra` added or replaced.
fn with(mut base: Value, extra: Value) -> Value {
    let fields = base.as_object_mut().expect("an object");
    for (key, value) in extra.as_object().expect("an object") {
        fields.insert(key.clone(), value.clone());
    }
    base
}

fn without_id(object: &Value) -> Value {
    let mut object = object.clone();
    object.as_object_mut().expect("an object").remove("id");
    object
}

/// How many responses succeeded (`"OK"`) and failed with each error code.
fn tally(bodies: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in bodies {
        let outcome = match body.get("errors") {
            None => "OK",
            Some(_) => error_code(body).unwrap_or("no code"),
        };
        *counts.entry(outcome.to_owned()).or_default() += 1;
    }
    counts
}

fn counts<const N: usize>(expected: [(&str, usize); N]) -> BTreeMap<String, usize> {
    expected
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect()
}

async fn try_create_reward(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(
        Some(token),
        &create_reward_mutation(),
        json!({ "input": input }),
    )
    .await
}

/// Creates a reward as admin and returns it; fails the test on any error.
async fn create_reward(app: &TestApp, input: Value) -> Value {
    app.ok(&create_reward_mutation(), json!({ "input": input }))
        .await["createReward"]
        .clone()
}

async fn try_update_reward(app: &TestApp, token: &str, id: &str, input: Value) -> Value {
    app.gql(
        Some(token),
        &update_reward_mutation(),
        json!({ "id": id, "input": input }),
    )
    .await
}

async fn update_reward(app: &TestApp, id: &str, input: Value) -> Value {
    let body = try_update_reward(app, &app.admin(), id, input).await;
    data(&body, "updateReward").clone()
}

/// `rewards` as `token`; `None` leaves `includeInactive` to its default.
async fn try_list_rewards(app: &TestApp, token: &str, include_inactive: Option<bool>) -> Value {
    match include_inactive {
        None => {
            let query = format!("{{ rewards {{ {REWARD} }} }}");
            app.gql(Some(token), &query, json!({})).await
        }
        Some(all) => {
            let query = format!(
                "query($all: Boolean!) {{ rewards(includeInactive: $all) {{ {REWARD} }} }}"
            );
            app.gql(Some(token), &query, json!({ "all": all })).await
        }
    }
}

async fn list_rewards(app: &TestApp, token: &str, include_inactive: Option<bool>) -> Value {
    let body = try_list_rewards(app, token, include_inactive).await;
    data(&body, "rewards").clone()
}

/// The whole catalogue, inactive rewards included, as admin.
async fn catalogue(app: &TestApp) -> Value {
    list_rewards(app, &app.admin(), Some(true)).await
}

/// One reward as it is now, read from the whole catalogue.
async fn reward(app: &TestApp, id: &str) -> Value {
    catalogue(app)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("reward {id} is in the catalogue"))
        .clone()
}

fn names(rewards: &Value) -> Vec<&str> {
    rewards
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["name"].as_str().expect("a name"))
        .collect()
}

fn redeem_variables(customer_id: &str, reward_id: &str, key: Option<&str>) -> Value {
    json!({ "input": { "customerId": customer_id, "rewardId": reward_id, "idempotencyKey": key } })
}

async fn try_redeem(
    app: &TestApp,
    token: &str,
    customer_id: &str,
    reward_id: &str,
    key: Option<&str>,
) -> Value {
    app.gql(
        Some(token),
        &redeem_mutation(),
        redeem_variables(customer_id, reward_id, key),
    )
    .await
}

/// Redeems as `token` and returns the redemption; fails the test on any error.
async fn redeem(app: &TestApp, token: &str, customer_id: &str, reward_id: &str) -> Value {
    let body = try_redeem(app, token, customer_id, reward_id, None).await;
    data(&body, "redeemReward").clone()
}

/// Checks a redemption of `reward_id` by `customer_id` that spent `cost` and left
/// `balance_after`.
#[track_caller]
fn assert_redeemed(
    redemption: &Value,
    customer_id: &str,
    reward_id: &str,
    cost: i64,
    balance_after: i64,
) {
    assert!(redemption["id"].is_string(), "{redemption:#}");
    assert_eq!(redemption["customer"]["id"], customer_id, "{redemption:#}");
    assert_eq!(redemption["reward"]["id"], reward_id, "{redemption:#}");
    assert_eq!(redemption["pointsSpent"], cost, "{redemption:#}");
    let entry = &redemption["entry"];
    assert_eq!(entry["kind"], "REDEEM", "{redemption:#}");
    assert_eq!(entry["delta"], -cost, "{redemption:#}");
    assert_eq!(entry["balanceAfter"], balance_after, "{redemption:#}");
    assert_eq!(entry["customer"]["id"], customer_id, "{redemption:#}");
    let at = instant(&redemption["redeemedAt"]);
    assert!((Utc::now() - at).num_seconds().abs() < 60, "{redemption:#}");
}

fn adjust_variables(customer_id: &str, delta: i64, reason: &str, key: Option<&str>) -> Value {
    json!({ "input": {
        "customerId": customer_id, "delta": delta, "reason": reason, "idempotencyKey": key
    } })
}

async fn try_adjust(
    app: &TestApp,
    token: &str,
    customer_id: &str,
    delta: i64,
    reason: &str,
    key: Option<&str>,
) -> Value {
    app.gql(
        Some(token),
        &adjust_mutation(),
        adjust_variables(customer_id, delta, reason, key),
    )
    .await
}

/// Adjusts as admin and returns the entry; fails the test on any error.
async fn adjust(app: &TestApp, customer_id: &str, delta: i64, reason: &str) -> Value {
    let body = try_adjust(app, &app.admin(), customer_id, delta, reason, None).await;
    data(&body, "adjustPoints").clone()
}

/// Records an interaction as admin and returns the payload; fails the test on any error.
async fn record(app: &TestApp, input: Value) -> Value {
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone()
}

fn purchase(customer_id: &str, amount: &str, order_ref: &str) -> Value {
    json!({ "customerId": customer_id, "kind": "PURCHASE", "amount": amount, "orderRef": order_ref })
}

fn refund(customer_id: &str, amount: &str, order_ref: &str) -> Value {
    json!({ "customerId": customer_id, "kind": "REFUND", "amount": amount, "orderRef": order_ref })
}

async fn set_tier(app: &TestApp, customer_id: &str, tier: &str) {
    app.ok(
        SET_TIER,
        json!({ "customerId": customer_id, "tierKey": tier, "note": "Key account" }),
    )
    .await;
}

async fn balance(app: &TestApp, customer_id: &str) -> i64 {
    app.ok(BALANCE, json!({ "id": customer_id })).await["customer"]["pointsBalance"]
        .as_i64()
        .expect("a balance")
}

async fn admins_keep_the_rewards_catalogue(app: TestApp) {
    let mug = create_reward(
        &app,
        json!({ "name": "Coffee mug", "description": "Ceramic, 350 ml", "costPoints": 300, "stock": 10 }),
    )
    .await;
    assert_eq!(
        without_id(&mug),
        json!({
            "name": "Coffee mug", "description": "Ceramic, 350 ml", "costPoints": 300,
            "stock": 10, "active": true, "minTierKey": null
        })
    );
    let tote = create_reward(&app, json!({ "name": "Tote bag", "costPoints": 100 })).await;
    assert_eq!(
        without_id(&tote),
        json!({
            "name": "Tote bag", "description": null, "costPoints": 100,
            "stock": null, "active": true, "minTierKey": null
        }),
        "stock null is unlimited; active defaults to true"
    );
    let lounge = create_reward(
        &app,
        json!({ "name": "Airport lounge pass", "costPoints": 300, "stock": 0, "minTierKey": "vip" }),
    )
    .await;
    assert_eq!(lounge["stock"], 0);
    assert_eq!(lounge["minTierKey"], "vip");
    let keyring = create_reward(
        &app,
        json!({ "name": "Old keyring", "costPoints": 50, "active": false }),
    )
    .await;
    assert_eq!(keyring["active"], false);
    let ids: HashSet<String> = [&mug, &tote, &lounge, &keyring]
        .into_iter()
        .map(id_of)
        .collect();
    assert_eq!(ids.len(), 4);

    // Active rewards by cost, then name; inactive ones only on request.
    let admin = app.admin();
    assert_eq!(
        list_rewards(&app, &admin, None).await,
        json!([tote, lounge, mug])
    );
    assert_eq!(catalogue(&app).await, json!([keyring, tote, lounge, mug]));

    // Anyone authenticated sees the active catalogue; only admin and staff the rest.
    let customer = app.create_customer(json!({ "name": "Qian Hui" })).await;
    for token in [
        app.staff(),
        app.partner(""),
        app.partner("rewards:redeem"),
        app.customer_token(&customer),
    ] {
        for include_inactive in [None, Some(false)] {
            assert_eq!(
                list_rewards(&app, &token, include_inactive).await,
                json!([tote, lounge, mug])
            );
        }
    }
    assert_eq!(
        list_rewards(&app, &app.staff(), Some(true)).await,
        json!([keyring, tote, lounge, mug])
    );
    for (who, token) in [
        (
            "partner",
            app.partner("rewards:redeem points:write interactions:write"),
        ),
        ("customer", app.customer_token(&customer)),
        // Reading customers is not reading the whole catalogue.
        (
            "partner with customers:read",
            app.partner("customers:read rewards:redeem"),
        ),
    ] {
        let body = try_list_rewards(&app, &token, Some(true)).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{who}: {body:#}");
    }
    let body = app.gql(None, "{ rewards { id } }", json!({})).await;
    assert_error(&body, "UNAUTHENTICATED");

    // An update replaces the whole reward.
    let mug_id = id_of(&mug);
    let changed = update_reward(
        &app,
        &mug_id,
        json!({
            "name": "Coffee mug, large", "description": null, "costPoints": 350, "stock": 3,
            "active": false, "minTierKey": "regular"
        }),
    )
    .await;
    assert_eq!(
        changed,
        json!({
            "id": mug_id, "name": "Coffee mug, large", "description": null, "costPoints": 350,
            "stock": 3, "active": false, "minTierKey": "regular"
        })
    );
    assert_eq!(
        list_rewards(&app, &admin, None).await,
        json!([tote, lounge])
    );
    assert_eq!(reward(&app, &mug_id).await, changed);
    // `active` defaults to true on an update too.
    let back = update_reward(
        &app,
        &mug_id,
        json!({ "name": "Coffee mug, large", "costPoints": 350, "minTierKey": "regular" }),
    )
    .await;
    assert_eq!(back["active"], true);
    assert_eq!(back["stock"], Value::Null);
    assert_eq!(
        names(&list_rewards(&app, &admin, None).await),
        ["Tote bag", "Airport lounge pass", "Coffee mug, large"]
    );

    // Stock 0 and the tiers that exist are fine.
    let valid = json!({ "name": "Umbrella", "costPoints": 80 });
    let edge = with(
        valid.clone(),
        json!({ "stock": 0, "minTierKey": "potential" }),
    );
    let edge = create_reward(&app, edge).await;
    assert_eq!(edge["stock"], 0);
    assert_eq!(edge["minTierKey"], "potential");

    // Invalid input is refused naming the field, on create and update alike.
    let before = catalogue(&app).await;
    let cases = [
        (json!({ "costPoints": 0 }), "input.costPoints"),
        (json!({ "costPoints": -80 }), "input.costPoints"),
        (json!({ "stock": -1 }), "input.stock"),
        (json!({ "minTierKey": "gold" }), "input.minTierKey"),
        (json!({ "name": "  " }), "input.name"),
    ];
    for (change, field) in cases {
        let input = with(valid.clone(), change);
        let body = try_create_reward(&app, &admin, input.clone()).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains(field), "{field}: {message} for {input}");
        let body = try_update_reward(&app, &admin, &mug_id, input.clone()).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains(field), "{field}: {message} for {input}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let body = try_update_reward(&app, &admin, &unknown, valid.clone()).await;
    assert_error(&body, "NOT_FOUND");
    assert_eq!(
        catalogue(&app).await,
        before,
        "refused changes left no trace"
    );

    // Neither staff nor partners nor customers keep the catalogue.
    for token in [
        app.staff(),
        app.partner("rewards:redeem points:write customers:write interactions:write"),
        app.customer_token(&customer),
    ] {
        let body = try_create_reward(&app, &token, valid.clone()).await;
        assert_error(&body, "FORBIDDEN");
        let body = try_update_reward(&app, &token, &mug_id, valid.clone()).await;
        assert_error(&body, "FORBIDDEN");
    }
    let body = app
        .gql(
            None,
            &create_reward_mutation(),
            json!({ "input": valid.clone() }),
        )
        .await;
    assert_error(&body, "UNAUTHENTICATED");
    assert_eq!(
        catalogue(&app).await,
        before,
        "refused changes left no trace"
    );
    assert_ledger_consistent(&app, &customer).await;
}

async fn a_redemption_spends_points_and_stock(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Zhou Xin" })).await;
    let bought = record(&app, purchase(&id, "500", "O-1")).await;
    assert_eq!(bought["pointsEarned"], 500);

    let ticket = create_reward(
        &app,
        json!({ "name": "Cinema ticket", "costPoints": 120, "stock": 3 }),
    )
    .await;
    let ticket_id = id_of(&ticket);
    let first = redeem(&app, &app.admin(), &id, &ticket_id).await;
    assert_redeemed(&first, &id, &ticket_id, 120, 380);
    assert_eq!(first["reward"]["name"], "Cinema ticket");
    assert_eq!(first["reward"]["costPoints"], 120);
    assert_eq!(balance(&app, &id).await, 380);
    assert_eq!(reward(&app, &ticket_id).await["stock"], 2);

    let second = redeem(&app, &app.staff(), &id, &ticket_id).await;
    assert_redeemed(&second, &id, &ticket_id, 120, 260);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(reward(&app, &ticket_id).await["stock"], 1);

    // Unlimited stock stays unlimited.
    let coffee = create_reward(&app, json!({ "name": "Coffee", "costPoints": 60 })).await;
    let coffee_id = id_of(&coffee);
    let third = redeem(&app, &app.customer_token(&id), &id, &coffee_id).await;
    assert_redeemed(&third, &id, &coffee_id, 60, 200);
    assert_eq!(reward(&app, &coffee_id).await["stock"], Value::Null);

    // Spending the whole balance on the last one in stock is allowed.
    let voucher = create_reward(
        &app,
        json!({ "name": "Gift voucher", "costPoints": 200, "stock": 1 }),
    )
    .await;
    let voucher_id = id_of(&voucher);
    let fourth = redeem(&app, &app.admin(), &id, &voucher_id).await;
    assert_redeemed(&fourth, &id, &voucher_id, 200, 0);
    assert_eq!(reward(&app, &voucher_id).await["stock"], 0);
    assert_eq!(balance(&app, &id).await, 0);
    assert_eq!(
        reward(&app, &ticket_id).await["stock"],
        1,
        "stock is per reward"
    );

    // The ledger, newest first, holds the very entries the redemptions returned.
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        summary(&entries),
        [
            entry("REDEEM", -200, 0),
            entry("REDEEM", -60, 200),
            entry("REDEEM", -120, 260),
            entry("REDEEM", -120, 380),
            entry("EARN", 500, 500),
        ]
    );
    for (listed, redemption) in entries.iter().zip([&fourth, &third, &second, &first]) {
        for (field, value) in redemption["entry"].as_object().expect("an entry") {
            assert_eq!(&listed[field], value, "{field} of the redemption's entry");
        }
    }
    let newest = app
        .ok(&ledger_query(), json!({ "id": id, "first": 2 }))
        .await;
    let page = &newest["customer"]["pointsLedger"];
    assert_eq!(
        page["nodes"],
        json!([{ "id": entries[0]["id"] }, { "id": entries[1]["id"] }])
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["totalCount"], 5);
    let body = app
        .gql(
            Some(&app.admin()),
            &ledger_query(),
            json!({ "id": id, "first": 101 }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
}

async fn refused_redemptions_change_nothing(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Feng Yu" })).await;
    // Points given by hand, so that the customer stays in the lowest tier.
    adjust(&app, &id, 250, "Welcome gift").await;
    let bicycle =
        id_of(&create_reward(&app, json!({ "name": "Bicycle", "costPoints": 300 })).await);
    let concert = id_of(
        &create_reward(
            &app,
            json!({ "name": "Concert ticket", "costPoints": 10, "stock": 0 }),
        )
        .await,
    );
    let lounge = id_of(
        &create_reward(
            &app,
            json!({ "name": "Airport lounge pass", "costPoints": 100, "stock": 2, "minTierKey": "vip" }),
        )
        .await,
    );
    let support = id_of(
        &create_reward(
            &app,
            json!({ "name": "Priority support", "costPoints": 50, "minTierKey": "regular" }),
        )
        .await,
    );
    let keyring_input = json!({ "name": "Old keyring", "costPoints": 10, "active": false });
    let keyring = id_of(&create_reward(&app, keyring_input.clone()).await);
    let sticker = id_of(&create_reward(&app, json!({ "name": "Sticker", "costPoints": 5 })).await);
    let catalogue_before = catalogue(&app).await;
    let ledger_before = assert_ledger_consistent(&app, &id).await;
    assert_eq!(ledger_before.len(), 1);

    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        (&bicycle, "INSUFFICIENT_POINTS"),
        (&concert, "OUT_OF_STOCK"),
        (&lounge, "TIER_TOO_LOW"),
        (&support, "TIER_TOO_LOW"),
        (&keyring, "CONFLICT"),
        (&unknown, "NOT_FOUND"),
    ];
    let admin = app.admin();
    let own = app.customer_token(&id);
    for (reward_id, code) in cases {
        let body = try_redeem(&app, &admin, &id, reward_id, None).await;
        assert_error(&body, code);
        // The customer's own attempt, with a key, fails the same way.
        let key = format!("attempt-{code}-{reward_id}");
        let body = try_redeem(&app, &own, &id, reward_id, Some(&key)).await;
        assert_error(&body, code);
    }
    let body = try_redeem(&app, &admin, &unknown, &sticker, None).await;
    assert_error(&body, "NOT_FOUND");

    assert_eq!(balance(&app, &id).await, 250);
    assert_eq!(catalogue(&app).await, catalogue_before, "no stock moved");
    assert_eq!(
        assert_ledger_consistent(&app, &id).await,
        ledger_before,
        "no entry was written"
    );

    // VIP reaches both tier-bound rewards, the one for a lower tier included.
    set_tier(&app, &id, "vip").await;
    let lounge_pass = redeem(&app, &own, &id, &lounge).await;
    assert_redeemed(&lounge_pass, &id, &lounge, 100, 150);
    assert_eq!(reward(&app, &lounge).await["stock"], 1);
    let priority = redeem(&app, &own, &id, &support).await;
    assert_redeemed(&priority, &id, &support, 50, 100);
    // A reward made active again may be redeemed.
    update_reward(
        &app,
        &keyring,
        with(keyring_input, json!({ "active": true })),
    )
    .await;
    let old = redeem(&app, &admin, &id, &keyring).await;
    assert_redeemed(&old, &id, &keyring, 10, 90);
    let body = try_redeem(&app, &admin, &id, &bicycle, None).await;
    assert_error(&body, "INSUFFICIENT_POINTS");
    let body = try_redeem(&app, &admin, &id, &concert, None).await;
    assert_error(&body, "OUT_OF_STOCK");
    let small = redeem(&app, &admin, &id, &sticker).await;
    assert_redeemed(&small, &id, &sticker, 5, 85);

    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        summary(&entries),
        [
            entry("REDEEM", -5, 85),
            entry("REDEEM", -10, 90),
            entry("REDEEM", -50, 100),
            entry("REDEEM", -100, 150),
            entry("ADJUST", 250, 250),
        ]
    );
}

async fn parallel_redemptions_never_take_the_balance_below_zero(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wu Lan" })).await;
    let bought = record(&app, purchase(&id, "1000", "O-7")).await;
    assert_eq!(bought["pointsEarned"], 1000);
    let ticket =
        id_of(&create_reward(&app, json!({ "name": "Cinema ticket", "costPoints": 100 })).await);

    let token = app.customer_token(&id);
    let query = redeem_mutation();
    let bodies = join_all(
        (0..50).map(|_| app.gql(Some(&token), &query, redeem_variables(&id, &ticket, None))),
    )
    .await;
    assert_eq!(
        tally(&bodies),
        counts([("OK", 10), ("INSUFFICIENT_POINTS", 40)])
    );
    let won: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("errors").is_none())
        .map(|b| &b["data"]["redeemReward"])
        .collect();
    let ids: HashSet<&Value> = won.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids.len(), 10, "ten distinct redemptions");
    let mut after: Vec<i64> = won
        .iter()
        .map(|r| r["entry"]["balanceAfter"].as_i64().unwrap())
        .collect();
    after.sort_unstable();
    assert_eq!(after, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);

    assert_eq!(balance(&app, &id).await, 0);
    assert_eq!(reward(&app, &ticket).await["stock"], Value::Null);
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(entries.len(), 11);
    assert!(entries[..10].iter().all(|e| e["kind"] == "REDEEM"));
    assert_eq!(entries[10]["kind"], "EARN");
}

async fn stock_is_never_oversold(app: TestApp) {
    let print = id_of(
        &create_reward(
            &app,
            json!({ "name": "Limited print", "costPoints": 100, "stock": 5 }),
        )
        .await,
    );
    let customers: Vec<String> = join_all(
        (0..50).map(|i| app.create_customer(json!({ "name": format!("Collector {i:02}") }))),
    )
    .await;
    join_all(
        customers
            .iter()
            .map(|id| adjust(&app, id, 100, "Launch bonus")),
    )
    .await;

    let token = app.staff();
    let query = redeem_mutation();
    let bodies = join_all(
        customers
            .iter()
            .map(|id| app.gql(Some(&token), &query, redeem_variables(id, &print, None))),
    )
    .await;
    assert_eq!(tally(&bodies), counts([("OK", 5), ("OUT_OF_STOCK", 45)]));
    assert_eq!(reward(&app, &print).await["stock"], 0);

    for (id, body) in customers.iter().zip(&bodies) {
        let won = body.get("errors").is_none();
        if won {
            assert_redeemed(&body["data"]["redeemReward"], id, &print, 100, 0);
        }
        let entries = assert_ledger_consistent(&app, id).await;
        let expected = if won {
            vec![entry("REDEEM", -100, 0), entry("ADJUST", 100, 100)]
        } else {
            vec![entry("ADJUST", 100, 100)]
        };
        assert_eq!(summary(&entries), expected, "customer {id}");
    }
    // One who lost still has the points, and still finds nothing in stock.
    let (loser, _) = customers
        .iter()
        .zip(&bodies)
        .find(|(_, body)| body.get("errors").is_some())
        .expect("someone lost");
    let body = try_redeem(&app, &token, loser, &print, None).await;
    assert_error(&body, "OUT_OF_STOCK");
    assert_eq!(balance(&app, loser).await, 100);
}

async fn an_idempotency_key_redeems_once_under_parallel_retries(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Liu Yang" })).await;
    adjust(&app, &id, 500, "Opening balance").await;
    let ticket = id_of(
        &create_reward(
            &app,
            json!({ "name": "Cinema ticket", "costPoints": 100, "stock": 10 }),
        )
        .await,
    );

    // A kiosk that shows the customer's balance reads customers as well as redeeming.
    let partner = app.partner("customers:read rewards:redeem");
    let key = Some("kiosk-3-receipt-0001");
    let query = redeem_mutation();
    let bodies = join_all(
        (0..20).map(|_| app.gql(Some(&partner), &query, redeem_variables(&id, &ticket, key))),
    )
    .await;
    assert_eq!(tally(&bodies), counts([("OK", 20)]));
    let first = &bodies[0]["data"]["redeemReward"];
    assert_redeemed(first, &id, &ticket, 100, 400);
    for body in &bodies {
        let redemption = &body["data"]["redeemReward"];
        assert_eq!(redemption["id"], first["id"], "one redemption");
        assert_eq!(redemption["entry"]["id"], first["entry"]["id"], "one entry");
    }
    assert_eq!(balance(&app, &id).await, 400, "points spent once");
    assert_eq!(reward(&app, &ticket).await["stock"], 9, "stock taken once");

    // A later retry is the same redemption too.
    let body = try_redeem(&app, &partner, &id, &ticket, key).await;
    assert_eq!(data(&body, "redeemReward")["id"], first["id"]);

    // Another caller's key of the same name is its own.
    let staff = app.staff();
    let body = try_redeem(&app, &staff, &id, &ticket, key).await;
    let by_staff = data(&body, "redeemReward").clone();
    assert_redeemed(&by_staff, &id, &ticket, 100, 300);
    assert_ne!(by_staff["id"], first["id"]);
    let body = try_redeem(&app, &staff, &id, &ticket, key).await;
    assert_eq!(data(&body, "redeemReward")["id"], by_staff["id"]);

    // Another key is another redemption.
    let body = try_redeem(&app, &partner, &id, &ticket, Some("kiosk-3-receipt-0002")).await;
    assert_redeemed(data(&body, "redeemReward"), &id, &ticket, 100, 200);

    assert_eq!(balance(&app, &id).await, 200);
    assert_eq!(reward(&app, &ticket).await["stock"], 7);
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        summary(&entries),
        [
            entry("REDEEM", -100, 200),
            entry("REDEEM", -100, 300),
            entry("REDEEM", -100, 400),
            entry("ADJUST", 500, 500),
        ]
    );
}

async fn points_are_adjusted_by_hand(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Deng Hui" })).await;
    let admin = app.admin();

    let body = try_adjust(&app, &admin, &id, 300, "Goodwill: late delivery", None).await;
    let up = data(&body, "adjustPoints").clone();
    assert_eq!(up["kind"], "ADJUST");
    assert_eq!(up["delta"], 300);
    assert_eq!(up["balanceAfter"], 300);
    assert_eq!(up["reason"], "Goodwill: late delivery");
    assert_eq!(up["customer"]["id"], id.as_str());
    assert!((Utc::now() - instant(&up["createdAt"])).num_seconds().abs() < 60);

    let body = try_adjust(
        &app,
        &app.staff(),
        &id,
        -120,
        "Correction: duplicate receipt",
        None,
    )
    .await;
    let down = data(&body, "adjustPoints").clone();
    assert_eq!(down["delta"], -120);
    assert_eq!(down["balanceAfter"], 180);

    // Never below zero; zero itself is fine.
    let body = try_adjust(&app, &admin, &id, -181, "Too much", None).await;
    assert_error(&body, "INSUFFICIENT_POINTS");
    for (delta, reason, field) in [
        (0, "Nothing at all", "input.delta"),
        (10, "", "input.reason"),
        (10, "   ", "input.reason"),
    ] {
        let body = try_adjust(&app, &admin, &id, delta, reason, None).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains(field), "{field}: {message}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let body = try_adjust(&app, &admin, &unknown, 10, "Nobody", None).await;
    assert_error(&body, "NOT_FOUND");
    assert_eq!(
        balance(&app, &id).await,
        180,
        "refused adjustments change nothing"
    );
    let emptied = adjust(&app, &id, -180, "Account closed").await;
    assert_eq!(emptied["balanceAfter"], 0);

    // Partners with `points:write` may; other partners and customers may not.
    let body = try_adjust(
        &app,
        &app.partner("customers:read points:write"),
        &id,
        50,
        "Partner campaign",
        None,
    )
    .await;
    let by_partner = data(&body, "adjustPoints").clone();
    assert_eq!(by_partner["balanceAfter"], 50);
    for token in [
        app.partner("rewards:redeem customers:write interactions:write events:subscribe"),
        app.partner(""),
        app.customer_token(&id),
    ] {
        let body = try_adjust(&app, &token, &id, 50, "Let me in", None).await;
        assert_error(&body, "FORBIDDEN");
    }
    let body = app
        .gql(
            None,
            &adjust_mutation(),
            adjust_variables(&id, 50, "Anonymous", None),
        )
        .await;
    assert_error(&body, "UNAUTHENTICATED");

    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        summary(&entries),
        [
            entry("ADJUST", 50, 50),
            entry("ADJUST", -180, 0),
            entry("ADJUST", -120, 180),
            entry("ADJUST", 300, 300),
        ]
    );
    assert_eq!(entries[0], by_partner);
    assert_eq!(entries[2], down);
    assert_eq!(entries[3], up);
    assert_eq!(entries[1]["reason"], "Account closed");
}

async fn adjustments_are_idempotent_and_never_overdraw_in_parallel(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Kong Mei" })).await;
    let staff = app.staff();
    let key = Some("crm-ticket-77");
    let query = adjust_mutation();
    let bodies = join_all((0..20).map(|_| {
        app.gql(
            Some(&staff),
            &query,
            adjust_variables(&id, 250, "Compensation", key),
        )
    }))
    .await;
    assert_eq!(tally(&bodies), counts([("OK", 20)]));
    let first = &bodies[0]["data"]["adjustPoints"];
    assert_eq!(first["balanceAfter"], 250);
    for body in &bodies {
        assert_eq!(body["data"]["adjustPoints"], *first, "one entry");
    }
    assert_eq!(balance(&app, &id).await, 250);
    assert_eq!(assert_ledger_consistent(&app, &id).await.len(), 1);

    // A later retry is the same entry; another caller's key is its own.
    let body = try_adjust(&app, &staff, &id, 250, "Compensation", key).await;
    assert_eq!(data(&body, "adjustPoints")["id"], first["id"]);
    let body = try_adjust(&app, &app.admin(), &id, 250, "Compensation", key).await;
    let by_admin = data(&body, "adjustPoints");
    assert_ne!(by_admin["id"], first["id"]);
    assert_eq!(by_admin["balanceAfter"], 500);

    // Thirty parallel deductions of 50 from 500: ten fit.
    let bodies = join_all((0..30).map(|_| {
        app.gql(
            Some(&staff),
            &query,
            adjust_variables(&id, -50, "Manual redemption", None),
        )
    }))
    .await;
    assert_eq!(
        tally(&bodies),
        counts([("OK", 10), ("INSUFFICIENT_POINTS", 20)])
    );
    assert_eq!(balance(&app, &id).await, 0);
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(entries.len(), 12);
    assert!(entries[..10].iter().all(|e| e["delta"] == -50));
}

async fn who_may_redeem(app: TestApp) {
    let me = app.create_customer(json!({ "name": "Pan Rui" })).await;
    let other = app.create_customer(json!({ "name": "Yu Jia" })).await;
    for id in [&me, &other] {
        adjust(&app, id, 1000, "Opening balance").await;
    }
    let ticket =
        id_of(&create_reward(&app, json!({ "name": "Cinema ticket", "costPoints": 100 })).await);

    for (token, customer_id) in [
        (app.customer_token(&me), &me),
        (app.partner("rewards:redeem"), &me),
        (app.partner("customers:read rewards:redeem"), &other),
        (app.staff(), &other),
        (app.admin(), &other),
    ] {
        // What a redeemer that may not read the customer gets back: ids and the
        // redemption (see `isolation` for the rest).
        let body = app
            .gql(
                Some(&token),
                "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { id pointsSpent customer { id } entry { delta } } }",
                redeem_variables(customer_id, &ticket, None),
            )
            .await;
        assert_eq!(
            data(&body, "redeemReward")["customer"]["id"],
            customer_id.as_str()
        );
    }
    for (token, customer_id) in [
        (app.customer_token(&me), &other),
        (app.customer_token(&other), &me),
        (
            app.partner(
                "customers:read customers:write interactions:write points:write events:subscribe",
            ),
            &me,
        ),
        (app.partner(""), &other),
    ] {
        let body = try_redeem(&app, &token, customer_id, &ticket, None).await;
        assert_error(&body, "FORBIDDEN");
    }
    let body = app
        .gql(
            None,
            &redeem_mutation(),
            redeem_variables(&me, &ticket, None),
        )
        .await;
    assert_error(&body, "UNAUTHENTICATED");

    assert_eq!(balance(&app, &me).await, 800);
    assert_eq!(balance(&app, &other).await, 700);
    // A customer reads its own ledger.
    let own = app
        .ok_as(
            &app.customer_token(&me),
            "query($id: ID!) { customer(id: $id) { pointsLedger { totalCount } } }",
            json!({ "id": me }),
        )
        .await;
    assert_eq!(own["customer"]["pointsLedger"]["totalCount"], 3);
    assert_eq!(assert_ledger_consistent(&app, &me).await.len(), 3);
    assert_eq!(assert_ledger_consistent(&app, &other).await.len(), 4);
}

async fn a_refund_after_a_redemption_keeps_the_ledger_consistent(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Tang Wen" })).await;
    let bought = record(&app, purchase(&id, "500", "O1")).await;
    assert_eq!(bought["pointsEarned"], 500);
    let headphones =
        id_of(&create_reward(&app, json!({ "name": "Headphones", "costPoints": 400 })).await);
    let spent = redeem(&app, &app.admin(), &id, &headphones).await;
    assert_redeemed(&spent, &id, &headphones, 400, 100);

    // The whole order comes back: its 500 points are reversed, although 400 were spent.
    let refunded = record(&app, refund(&id, "500", "O1")).await;
    assert_eq!(refunded["pointsEarned"], -500);
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        refunded["customer"]["pointsBalance"],
        entries[0]["balanceAfter"]
    );
    assert_eq!(entries.len(), 3);

    // Nothing is left to spend.
    let sticker = id_of(&create_reward(&app, json!({ "name": "Sticker", "costPoints": 1 })).await);
    let body = try_redeem(&app, &app.admin(), &id, &sticker, None).await;
    assert_error(&body, "INSUFFICIENT_POINTS");
    assert_eq!(assert_ledger_consistent(&app, &id).await, entries);
}

async fn mixed_parallel_traffic_keeps_the_ledger_consistent(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Bai Lu" })).await;
    adjust(&app, &id, 1000, "Opening balance").await;
    let print = id_of(
        &create_reward(
            &app,
            json!({ "name": "Limited print", "costPoints": 100, "stock": 6 }),
        )
        .await,
    );
    let coffee = id_of(&create_reward(&app, json!({ "name": "Coffee", "costPoints": 70 })).await);

    // 1500 points come and go while 2950 are asked for, all at once.
    let token = app.staff();
    let (redeem_query, adjust_query) = (redeem_mutation(), adjust_mutation());
    let mut requests: Vec<(&str, &str, Value)> = Vec::new();
    for n in 0..15 {
        requests.push(("print", &redeem_query, redeem_variables(&id, &print, None)));
        requests.push((
            "coffee",
            &redeem_query,
            redeem_variables(&id, &coffee, None),
        ));
        if n < 10 {
            let input = purchase(&id, "50", &format!("O-{n}"));
            requests.push(("purchase", RECORD, json!({ "input": input })));
            let deduction = adjust_variables(&id, -40, "Fee", None);
            requests.push(("deduction", &adjust_query, deduction));
        }
    }
    let bodies = join_all(
        requests
            .iter()
            .map(|(_, query, variables)| app.gql(Some(&token), query, variables.clone())),
    )
    .await;
    let outcomes = |label: &str| {
        let of_label: Vec<Value> = requests
            .iter()
            .zip(&bodies)
            .filter(|((l, _, _), _)| *l == label)
            .map(|(_, body)| body.clone())
            .collect();
        tally(&of_label)
    };
    let succeeded = |label: &str| outcomes(label).get("OK").copied().unwrap_or(0) as i64;
    assert_eq!(outcomes("purchase"), counts([("OK", 10)]));
    for (label, refusals) in [
        ("print", ["INSUFFICIENT_POINTS", "OUT_OF_STOCK"].as_slice()),
        ("coffee", &["INSUFFICIENT_POINTS"]),
        ("deduction", &["INSUFFICIENT_POINTS"]),
    ] {
        for outcome in outcomes(label).keys() {
            assert!(
                outcome == "OK" || refusals.contains(&outcome.as_str()),
                "{label}: {:?}",
                outcomes(label)
            );
        }
    }
    let (prints, coffees, deductions) = (
        succeeded("print"),
        succeeded("coffee"),
        succeeded("deduction"),
    );
    assert!(prints <= 6, "{prints} prints of 6 in stock");
    assert_eq!(
        reward(&app, &print).await["stock"],
        6 - prints,
        "stock taken once per redemption"
    );
    let expected = 1000 + 10 * 50 - 100 * prints - 70 * coffees - 40 * deductions;
    assert!(expected >= 0);
    assert_eq!(balance(&app, &id).await, expected);
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(entries.len() as i64, 1 + 10 + prints + coffees + deductions);
    for entry in &entries {
        assert!(entry["balanceAfter"].as_i64().unwrap() >= 0, "{entry:#}");
    }
}

/// The ledger guards its invariant itself, whoever calls it and whether or not the caller
/// locked the customer: an entry that may not overdraw (a redemption, an adjustment) is
/// refused when the balance does not cover it, one that may (a refund's reversal, an
/// expiry) goes below zero, and an entry for a customer that does not exist is an error,
/// not a `balanceAfter` of zero.
async fn the_ledger_refuses_an_overdraft_by_itself(app: TestApp) {
    use entity::enums::PointsEntryKind;
    use tierwise_api::domain::DomainError;
    use tierwise_api::store::customers::lock_balances_in_order;
    use tierwise_api::store::points::{NewEntry, append, append_to_each};
    let id = app.create_customer(json!({ "name": "Ledger Guard" })).await;
    let customer_id = uuid::Uuid::parse_str(&id).expect("a uuid");
    let entry = |customer_id, delta, kind| NewEntry {
        id: None,
        customer_id,
        delta,
        kind,
        reason: Some("ledger guard"),
        expires_at: None,
        interaction_id: None,
        campaign_id: None,
        transfer_id: None,
        created_by: "test",
    };
    let append_one = |customer_id, delta, kind| {
        let db = app.db.clone();
        async move {
            db.write(move |txn| {
                Box::pin(async move { append(txn, entry(customer_id, delta, kind)).await })
            })
            .await
        }
    };

    let earned = append_one(customer_id, 100, PointsEntryKind::Earn)
        .await
        .expect("earned");
    assert_eq!(earned.balance_after, 100);
    for kind in [PointsEntryKind::Redeem, PointsEntryKind::Adjust] {
        match append_one(customer_id, -101, kind).await {
            Err(DomainError::InsufficientPoints { balance, needed }) => {
                assert_eq!((balance, needed), (Some(100), 101), "{kind:?}")
            }
            other => panic!("{kind:?} overdrew: {other:?}"),
        }
    }
    let spent = append_one(customer_id, -100, PointsEntryKind::Redeem)
        .await
        .expect("spent");
    assert_eq!(spent.balance_after, 0, "the whole balance may be spent");
    let reversed = append_one(customer_id, -30, PointsEntryKind::Reversal)
        .await
        .expect("a reversal may overdraw");
    assert_eq!(reversed.balance_after, -30);
    match append_one(uuid::Uuid::now_v7(), 10, PointsEntryKind::Earn).await {
        Err(DomainError::NotFound(_)) => {}
        other => panic!("an entry for nobody: {other:?}"),
    }
    // Many customers at once (an evaluation run's chunk): the same rule against the
    // balances read under their locks.
    let each = |delta, kind| {
        let db = app.db.clone();
        async move {
            db.write(move |txn| {
                Box::pin(async move {
                    let locked = lock_balances_in_order(txn, &[customer_id]).await?;
                    append_to_each(txn, &locked, &[entry(customer_id, delta, kind)]).await
                })
            })
            .await
        }
    };
    match each(-1, PointsEntryKind::Redeem).await {
        Err(DomainError::InsufficientPoints { balance, needed }) => {
            assert_eq!((balance, needed), (Some(-30), 1))
        }
        other => panic!("a chunk's redemption overdrew: {other:?}"),
    }
    let expired = each(-1, PointsEntryKind::Expire)
        .await
        .expect("an expiry may");
    assert_eq!(expired[0].balance_after, -31);

    let (entries, balance) = crate::ledger::ledger(&app, &id).await;
    assert_eq!(
        (entries.len(), balance),
        (4, -31),
        "the refused entries left nothing"
    );
}

/// A client that sends `null` for the contract's nullable arguments with defaults
/// (`includeInactive`, `active`, `wait`) gets the default, not an error.
async fn null_means_the_contracts_default(app: TestApp) {
    let created = app
        .ok(
            "mutation($active: Boolean) { createReward(input: { name: \"Mug\", costPoints: 10, active: $active }) { active } }",
            json!({ "active": null }),
        )
        .await;
    assert_eq!(created["createReward"]["active"], true);
    app.ok(
        "mutation { createReward(input: { name: \"Old mug\", costPoints: 10, active: false }) { active } }",
        json!({}),
    )
    .await;
    let listed = app
        .ok(
            "query($all: Boolean) { rewards(includeInactive: $all) { name } }",
            json!({ "all": null }),
        )
        .await;
    assert_eq!(listed["rewards"], json!([{ "name": "Mug" }]));
    let run = app
        .ok(
            "mutation($wait: Boolean) { evaluateTiers(wait: $wait) { status } }",
            json!({ "wait": null }),
        )
        .await;
    assert_eq!(
        run["evaluateTiers"]["status"], "SUCCEEDED",
        "null waits: {run}"
    );
}

on_both!(
    null_means_the_contracts_default,
    admins_keep_the_rewards_catalogue,
    a_redemption_spends_points_and_stock,
    refused_redemptions_change_nothing,
    parallel_redemptions_never_take_the_balance_below_zero,
    stock_is_never_oversold,
    an_idempotency_key_redeems_once_under_parallel_retries,
    points_are_adjusted_by_hand,
    adjustments_are_idempotent_and_never_overdraw_in_parallel,
    who_may_redeem,
    mixed_parallel_traffic_keeps_the_ledger_consistent,
    a_refund_after_a_redemption_keeps_the_ledger_consistent,
    the_ledger_refuses_an_overdraft_by_itself,
);
