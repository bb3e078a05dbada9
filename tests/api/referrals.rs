//! Referrals: every customer's `referralCode`, codes applied at sign-up
//! (`createCustomer(input: { referralCode })`) or later (`applyReferralCode`), the
//! referee's first purchase paying `REFERRAL_BONUS` entries to both sides, the yearly cap
//! (`maxRewardedReferralsPerYear`), settings changes, `Customer.referredBy` and
//! `Customer.referrals`, error codes, roles, and races fought with real parallel requests.
//! Every scenario ends by walking each customer's whole ledger: the balance is the sum of
//! its deltas and every `balanceAfter` chains.

use std::collections::HashSet;

use chrono::Utc;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, data, instant, on_both};
use crate::ledger::assert_ledger_consistent;

const REFERRAL: &str = "id referrer { id } referee { id } code status referrerPoints \
    refereePoints createdAt rewardedAt";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { duplicate interaction { id } customer { pointsBalance } }
}";

const RECORD_BATCH: &str = "mutation($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) { interaction { id } }
}";

const SETTINGS: &str = "mutation($input: ProgramSettingsInput!) {
  updateProgramSettings(input: $input) { referrerBonus refereeBonus maxRewardedReferralsPerYear }
}";

const COUNT: &str = "{ customers { totalCount } }";

/// The characters a referral code may use: upper-case letters and digits without the
/// confusable 0/O and 1/I.
const CODE_ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn customer_query() -> String {
    format!(
        "query($id: ID!) {{ customer(id: $id) {{
           id referralCode pointsBalance
           referredBy {{ id referralCode }}
           referrals {{ {REFERRAL} }}
         }} }}"
    )
}

fn create_mutation() -> String {
    format!(
        "mutation($input: CreateCustomerInput!) {{ createCustomer(input: $input) {{
           id referralCode referredBy {{ id }} referrals {{ {REFERRAL} }}
         }} }}"
    )
}

fn apply_mutation() -> String {
    format!(
        "mutation($customerId: ID!, $code: String!) {{
           applyReferralCode(customerId: $customerId, code: $code) {{ {REFERRAL} }}
         }}"
    )
}

#[track_caller]
fn text(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

fn unknown_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn customer(app: &TestApp, id: &str) -> Value {
    app.ok(&customer_query(), json!({ "id": id })).await["customer"].clone()
}

async fn code_of(app: &TestApp, id: &str) -> String {
    text(&customer(app, id).await["referralCode"])
}

/// A new customer without a referrer: its id and its referral code.
async fn referrer(app: &TestApp, name: &str) -> (String, String) {
    let id = app.create_customer(json!({ "name": name })).await;
    let code = code_of(app, &id).await;
    (id, code)
}

/// Creates a customer as admin with `input`; the whole response body.
async fn try_create(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(Some(token), &create_mutation(), json!({ "input": input }))
        .await
}

/// A new customer signed up with `code`; its id.
async fn sign_up(app: &TestApp, name: &str, code: &str) -> String {
    app.create_customer(json!({ "name": name, "referralCode": code }))
        .await
}

async fn try_apply(app: &TestApp, token: &str, customer_id: &str, code: &str) -> Value {
    app.gql(
        Some(token),
        &apply_mutation(),
        json!({ "customerId": customer_id, "code": code }),
    )
    .await
}

/// Applies `code` to `customer_id` as admin; the referral.
async fn apply(app: &TestApp, customer_id: &str, code: &str) -> Value {
    let body = try_apply(app, &app.admin(), customer_id, code).await;
    data(&body, "applyReferralCode").clone()
}

fn purchase(customer_id: &str, amount: &str) -> Value {
    json!({ "customerId": customer_id, "kind": "PURCHASE", "amount": amount })
}

async fn record(app: &TestApp, input: Value) -> Value {
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone()
}

async fn buy(app: &TestApp, customer_id: &str, amount: &str) -> Value {
    record(app, purchase(customer_id, amount)).await
}

async fn update_settings(app: &TestApp, input: Value) -> Value {
    app.ok(SETTINGS, json!({ "input": input })).await["updateProgramSettings"].clone()
}

async fn customer_count(app: &TestApp) -> i64 {
    app.ok(COUNT, json!({})).await["customers"]["totalCount"]
        .as_i64()
        .expect("a count")
}

/// The referrals `referrer_id` made, oldest first.
async fn referrals_of(app: &TestApp, referrer_id: &str) -> Vec<Value> {
    customer(app, referrer_id).await["referrals"]
        .as_array()
        .expect("a list of referrals")
        .clone()
}

/// The referral `referrer_id` made of `referee_id`.
async fn referral(app: &TestApp, referrer_id: &str, referee_id: &str) -> Value {
    let referrals = referrals_of(app, referrer_id).await;
    let found: Vec<&Value> = referrals
        .iter()
        .filter(|r| r["referee"]["id"] == referee_id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one referral of {referee_id}: {referrals:#?}"
    );
    found[0].clone()
}

/// The referee ids of `referrals`, in order.
fn referees(referrals: &[Value]) -> Vec<String> {
    referrals
        .iter()
        .map(|r| text(&r["referee"]["id"]))
        .collect()
}

#[track_caller]
fn assert_pending(referral: &Value, referrer_id: &str, referee_id: &str, code: &str) {
    assert_eq!(referral["referrer"]["id"], referrer_id, "{referral:#}");
    assert_eq!(referral["referee"]["id"], referee_id, "{referral:#}");
    assert_eq!(referral["code"], code, "{referral:#}");
    assert_eq!(referral["status"], "PENDING", "{referral:#}");
    assert_eq!(referral["referrerPoints"], 0, "{referral:#}");
    assert_eq!(referral["refereePoints"], 0, "{referral:#}");
    assert_eq!(referral["rewardedAt"], Value::Null, "{referral:#}");
    instant(&referral["createdAt"]);
}

#[track_caller]
fn assert_rewarded(referral: &Value, referrer_points: i64, referee_points: i64) {
    assert_eq!(referral["status"], "REWARDED", "{referral:#}");
    assert_eq!(referral["referrerPoints"], referrer_points, "{referral:#}");
    assert_eq!(referral["refereePoints"], referee_points, "{referral:#}");
    assert!(
        instant(&referral["rewardedAt"]) >= instant(&referral["createdAt"]),
        "rewarded after it was made: {referral:#}"
    );
}

#[track_caller]
fn assert_rejected(referral: &Value) {
    assert_eq!(referral["status"], "REJECTED", "{referral:#}");
    assert_eq!(referral["referrerPoints"], 0, "{referral:#}");
    assert_eq!(referral["refereePoints"], 0, "{referral:#}");
}

/// Checks the ledger of every customer in `ids`.
async fn assert_ledgers_consistent(app: &TestApp, ids: &[&String]) {
    for id in ids {
        assert_ledger_consistent(app, id).await;
    }
}

/// `(kind, delta)` of each entry, sorted: entries written in one transaction have no
/// order between them that the contract fixes.
fn kinds(entries: &[Value]) -> Vec<(String, i64)> {
    let mut kinds: Vec<(String, i64)> = entries
        .iter()
        .map(|e| (text(&e["kind"]), e["delta"].as_i64().expect("a delta")))
        .collect();
    kinds.sort();
    kinds
}

fn entry(kind: &str, delta: i64) -> (String, i64) {
    (kind.to_owned(), delta)
}

/// `entries` as `(kind, delta)`, sorted.
fn entries<const N: usize>(expected: [(&str, i64); N]) -> Vec<(String, i64)> {
    let mut entries: Vec<(String, i64)> = expected.iter().map(|(k, d)| entry(k, *d)).collect();
    entries.sort();
    entries
}

async fn every_customer_has_a_unique_referral_code(app: TestApp) {
    let ids: Vec<String> =
        join_all((0..30).map(|n| app.create_customer(json!({ "name": format!("Customer {n}") }))))
            .await;
    let mut codes = HashSet::new();
    for id in &ids {
        let read = customer(&app, id).await;
        let code = text(&read["referralCode"]);
        assert_eq!(code.chars().count(), 8, "{code}");
        assert!(
            code.chars().all(|c| CODE_ALPHABET.contains(c)),
            "{code} uses only {CODE_ALPHABET}"
        );
        assert!(codes.insert(code.clone()), "{code} is unique");
        assert_eq!(read["referredBy"], Value::Null);
        assert_eq!(read["referrals"], json!([]));
        assert_eq!(read["pointsBalance"], 0);
    }
    // The code is the customer's for good.
    let before = code_of(&app, &ids[0]).await;
    app.ok(
        "mutation($id: ID!) { updateCustomer(id: $id, input: { name: \"Renamed\" }) { id } }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(code_of(&app, &ids[0]).await, before);
}

async fn a_code_given_at_sign_up_makes_a_pending_referral(app: TestApp) {
    let (zhang, code) = referrer(&app, "Zhang Wei").await;
    let body = try_create(
        &app,
        &app.admin(),
        json!({ "name": "Li Na", "referralCode": code }),
    )
    .await;
    let created = data(&body, "createCustomer").clone();
    let li = text(&created["id"]);
    assert_eq!(created["referredBy"]["id"], zhang);
    assert_eq!(created["referrals"], json!([]));
    assert_ne!(
        created["referralCode"], code,
        "the referee has a code of its own"
    );

    let read = customer(&app, &li).await;
    assert_eq!(
        read["referredBy"],
        json!({ "id": zhang, "referralCode": code })
    );
    assert_eq!(read["referrals"], json!([]));
    let made = referrals_of(&app, &zhang).await;
    assert_eq!(made.len(), 1, "{made:#?}");
    assert_pending(&made[0], &zhang, &li, &code);
    assert_eq!(customer(&app, &zhang).await["referredBy"], Value::Null);

    // A code cannot be applied on top of the one given at sign-up.
    let (_, other_code) = referrer(&app, "Chen Jie").await;
    assert_error(
        &try_apply(&app, &app.admin(), &li, &other_code).await,
        "CONFLICT",
    );
    assert_error(&try_apply(&app, &app.admin(), &li, &code).await, "CONFLICT");
    assert_eq!(
        referrals_of(&app, &zhang).await,
        made,
        "refusals changed nothing"
    );

    // A partner signing a customer up may pass a code too; it may write customers, not
    // read them, so it asks for the new customer's id.
    let partner = app.partner("customers:write");
    let body = app
        .gql(
            Some(&partner),
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            json!({ "input": { "name": "Wang Lei", "referralCode": code } }),
        )
        .await;
    let wang = text(&data(&body, "createCustomer")["id"]);
    assert_eq!(
        referees(&referrals_of(&app, &zhang).await),
        vec![li.clone(), wang.clone()],
        "oldest first"
    );

    // An unknown code refuses the sign-up, and no customer is created.
    let before = customer_count(&app).await;
    for unknown in ["ZZZZZZZZ", "23456789"] {
        let body = try_create(
            &app,
            &app.admin(),
            json!({ "name": "Sun Qi", "externalRef": "SIGNUP-1", "referralCode": unknown }),
        )
        .await;
        assert_error(&body, "NOT_FOUND");
    }
    assert_eq!(
        customer_count(&app).await,
        before,
        "no customer was created"
    );
    let by_ref = app
        .ok(
            "{ customerByExternalRef(externalRef: \"SIGNUP-1\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(by_ref["customerByExternalRef"], Value::Null);

    assert_ledgers_consistent(&app, &[&zhang, &li, &wang]).await;
}

async fn apply_referral_code_links_a_customer_before_its_first_purchase(app: TestApp) {
    let (zhao, code) = referrer(&app, "Zhao Min").await;
    let qian = app.create_customer(json!({ "name": "Qian Hao" })).await;
    // Engagement without a purchase does not stand in the way.
    record(&app, json!({ "customerId": qian, "kind": "VISIT" })).await;

    let applied = apply(&app, &qian, &code).await;
    assert_pending(&applied, &zhao, &qian, &code);
    let made = referrals_of(&app, &zhao).await;
    assert_eq!(made, vec![applied.clone()], "the same referral is listed");
    let read = customer(&app, &qian).await;
    assert_eq!(read["referredBy"]["id"], zhao);
    assert_eq!(
        read["pointsBalance"], 0,
        "nothing is paid before a purchase"
    );

    // Once per referee, whichever code.
    let (sun, sun_code) = referrer(&app, "Sun Li").await;
    assert_error(
        &try_apply(&app, &app.admin(), &qian, &sun_code).await,
        "CONFLICT",
    );
    assert_error(
        &try_apply(&app, &app.admin(), &qian, &code).await,
        "CONFLICT",
    );

    // Never to oneself.
    assert_error(
        &try_apply(&app, &app.admin(), &sun, &sun_code).await,
        "CONFLICT",
    );
    assert_eq!(customer(&app, &sun).await["referredBy"], Value::Null);

    // Not after the first purchase.
    let zhou = app.create_customer(json!({ "name": "Zhou Yu" })).await;
    buy(&app, &zhou, "100").await;
    assert_error(
        &try_apply(&app, &app.admin(), &zhou, &code).await,
        "CONFLICT",
    );
    assert_eq!(customer(&app, &zhou).await["referredBy"], Value::Null);

    // Unknown codes and customers.
    let wu = app.create_customer(json!({ "name": "Wu Fang" })).await;
    assert_error(
        &try_apply(&app, &app.admin(), &wu, "ZZZZZZZZ").await,
        "NOT_FOUND",
    );
    assert_error(
        &try_apply(&app, &app.admin(), &unknown_id(), &code).await,
        "NOT_FOUND",
    );
    assert_eq!(customer(&app, &wu).await["referredBy"], Value::Null);

    assert_eq!(
        referrals_of(&app, &zhao).await,
        made,
        "refusals changed nothing"
    );
    assert!(referrals_of(&app, &sun).await.is_empty());

    // A refused customer may still be referred by someone else.
    let later = apply(&app, &wu, &sun_code).await;
    assert_pending(&later, &sun, &wu, &sun_code);

    assert_ledgers_consistent(&app, &[&zhao, &qian, &sun, &zhou, &wu]).await;
}

async fn who_may_apply_referral_codes(app: TestApp) {
    let (he, code) = referrer(&app, "He Jun").await;
    let allowed = [
        app.admin(),
        app.staff(),
        app.partner("customers:write"),
        app.partner("customers:read customers:write"),
    ];
    for token in &allowed {
        let referee = app.create_customer(json!({ "name": "Referee" })).await;
        let body = try_apply(&app, token, &referee, &code).await;
        assert_pending(data(&body, "applyReferralCode"), &he, &referee, &code);
    }

    let ma = app.create_customer(json!({ "name": "Ma Li" })).await;
    let forbidden = [
        app.customer_token(&ma),
        app.customer_token(&he),
        app.partner("customers:read"),
        app.partner("interactions:write points:write rewards:redeem"),
        app.partner(""),
    ];
    for token in &forbidden {
        assert_error(&try_apply(&app, token, &ma, &code).await, "FORBIDDEN");
    }
    let body = app
        .gql(
            None,
            &apply_mutation(),
            json!({ "customerId": ma, "code": code }),
        )
        .await;
    assert_error(&body, "UNAUTHENTICATED");

    assert_eq!(customer(&app, &ma).await["referredBy"], Value::Null);
    assert_eq!(referrals_of(&app, &he).await.len(), allowed.len());
    assert_ledgers_consistent(&app, &[&he, &ma]).await;
}

async fn the_first_purchase_rewards_both_sides_once(app: TestApp) {
    let (lin, code) = referrer(&app, "Lin Tao").await;
    let guo = sign_up(&app, "Guo Jing", &code).await;

    // A visit is not a purchase: nothing is paid.
    record(&app, json!({ "customerId": guo, "kind": "VISIT" })).await;
    assert_pending(&referral(&app, &lin, &guo).await, &lin, &guo, &code);
    assert_eq!(customer(&app, &lin).await["pointsBalance"], 0);

    let before = Utc::now();
    let first = record(
        &app,
        json!({ "customerId": guo, "kind": "PURCHASE", "amount": "100", "idempotencyKey": "receipt-1" }),
    )
    .await;
    let after = Utc::now();
    assert_eq!(first["duplicate"], false);
    assert_eq!(
        first["customer"]["pointsBalance"], 300,
        "the payload sees the bonus written in the same transaction"
    );

    let rewarded = referral(&app, &lin, &guo).await;
    assert_rewarded(&rewarded, 500, 200);
    let rewarded_at = instant(&rewarded["rewardedAt"]);
    assert!(
        rewarded_at >= before - chrono::Duration::seconds(5)
            && rewarded_at <= after + chrono::Duration::seconds(5),
        "rewarded when the purchase was recorded: {rewarded:#}"
    );
    assert_eq!(rewarded["code"], code);

    let referrer_entries = assert_ledger_consistent(&app, &lin).await;
    assert_eq!(kinds(&referrer_entries), entries([("REFERRAL_BONUS", 500)]));
    let referee_entries = assert_ledger_consistent(&app, &guo).await;
    assert_eq!(
        kinds(&referee_entries),
        entries([("EARN", 100), ("REFERRAL_BONUS", 200)])
    );
    assert_eq!(customer(&app, &lin).await["pointsBalance"], 500);
    assert_eq!(customer(&app, &guo).await["pointsBalance"], 300);

    // A retry of the same purchase and a second purchase pay nothing more.
    let retry = record(
        &app,
        json!({ "customerId": guo, "kind": "PURCHASE", "amount": "100", "idempotencyKey": "receipt-1" }),
    )
    .await;
    assert_eq!(retry["duplicate"], true);
    buy(&app, &guo, "50").await;
    record(&app, json!({ "customerId": guo, "kind": "VISIT" })).await;
    assert_eq!(
        referral(&app, &lin, &guo).await,
        rewarded,
        "settled for good"
    );
    assert_eq!(customer(&app, &lin).await["pointsBalance"], 500);
    assert_eq!(customer(&app, &guo).await["pointsBalance"], 350);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &guo).await),
        entries([("EARN", 100), ("EARN", 50), ("REFERRAL_BONUS", 200)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &lin).await),
        entries([("REFERRAL_BONUS", 500)])
    );

    // The referrer's own purchases pay no referral: it was not referred.
    buy(&app, &lin, "10").await;
    assert_eq!(customer(&app, &lin).await["pointsBalance"], 510);
    assert_ledgers_consistent(&app, &[&lin, &guo]).await;
}

async fn a_code_applied_later_is_rewarded_on_the_first_purchase(app: TestApp) {
    let (xu, code) = referrer(&app, "Xu Ming").await;
    let luo = app.create_customer(json!({ "name": "Luo Yi" })).await;
    let staff = app.staff();
    let body = try_apply(&app, &staff, &luo, &code).await;
    let applied = data(&body, "applyReferralCode").clone();

    buy(&app, &luo, "80").await;
    let rewarded = referral(&app, &xu, &luo).await;
    assert_eq!(rewarded["id"], applied["id"]);
    assert_rewarded(&rewarded, 500, 200);
    assert_eq!(customer(&app, &xu).await["pointsBalance"], 500);
    assert_eq!(customer(&app, &luo).await["pointsBalance"], 280);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &luo).await),
        entries([("EARN", 80), ("REFERRAL_BONUS", 200)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &xu).await),
        entries([("REFERRAL_BONUS", 500)])
    );
}

async fn a_batch_pays_each_referral_once(app: TestApp) {
    let (song, code) = referrer(&app, "Song Jia").await;
    let tang = sign_up(&app, "Tang Yan", &code).await;
    let feng = sign_up(&app, "Feng Qi", &code).await;
    let body = app
        .gql(
            Some(&app.admin()),
            RECORD_BATCH,
            json!({ "inputs": [
                purchase(&tang, "10"),
                purchase(&tang, "20"),
                purchase(&feng, "30"),
                { "customerId": feng, "kind": "VISIT" },
                purchase(&feng, "40"),
            ] }),
        )
        .await;
    assert_eq!(
        data(&body, "recordInteractions").as_array().unwrap().len(),
        5
    );
    for referee in [&tang, &feng] {
        assert_rewarded(&referral(&app, &song, referee).await, 500, 200);
    }
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &song).await),
        entries([("REFERRAL_BONUS", 500), ("REFERRAL_BONUS", 500)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &tang).await),
        entries([("EARN", 10), ("EARN", 20), ("REFERRAL_BONUS", 200)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &feng).await),
        entries([("EARN", 30), ("EARN", 40), ("REFERRAL_BONUS", 200)])
    );
    assert_eq!(customer(&app, &song).await["pointsBalance"], 1000);
}

async fn past_the_yearly_cap_referrals_are_rejected(app: TestApp) {
    let settings = update_settings(&app, json!({ "maxRewardedReferralsPerYear": 2 })).await;
    assert_eq!(settings["maxRewardedReferralsPerYear"], 2);
    assert_eq!(settings["referrerBonus"], 500);
    assert_eq!(settings["refereeBonus"], 200);

    let (han, code) = referrer(&app, "Han Bing").await;
    let first = sign_up(&app, "First", &code).await;
    let second = sign_up(&app, "Second", &code).await;
    let third = app.create_customer(json!({ "name": "Third" })).await;
    apply(&app, &third, &code).await;
    let fourth = sign_up(&app, "Fourth", &code).await;
    let (cao, cao_code) = referrer(&app, "Cao Yu").await;
    let other = sign_up(&app, "Other", &cao_code).await;

    // The cap counts rewarded referrals, not made ones: the second referee buys first.
    buy(&app, &second, "100").await;
    buy(&app, &first, "100").await;
    buy(&app, &third, "100").await;

    let made = referrals_of(&app, &han).await;
    assert_eq!(
        referees(&made),
        vec![first.clone(), second.clone(), third.clone(), fourth.clone()],
        "oldest first"
    );
    assert_rewarded(&made[0], 500, 200);
    assert_rewarded(&made[1], 500, 200);
    assert_rejected(&made[2]);
    assert_pending(&made[3], &han, &fourth, &code);
    assert_eq!(customer(&app, &han).await["pointsBalance"], 1000);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &han).await),
        entries([("REFERRAL_BONUS", 500), ("REFERRAL_BONUS", 500)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &third).await),
        entries([("EARN", 100)]),
        "a rejected referral pays the referee nothing"
    );
    assert_eq!(
        customer(&app, &third).await["referredBy"]["id"],
        han,
        "still referred"
    );

    // A rejected referral stays rejected; later referees are rejected too.
    buy(&app, &third, "100").await;
    buy(&app, &fourth, "100").await;
    let made = referrals_of(&app, &han).await;
    assert_rejected(&made[2]);
    assert_rejected(&made[3]);
    assert_eq!(customer(&app, &han).await["pointsBalance"], 1000);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &fourth).await),
        entries([("EARN", 100)])
    );

    // The cap is per referrer.
    buy(&app, &other, "100").await;
    assert_rewarded(&referral(&app, &cao, &other).await, 500, 200);
    assert_eq!(customer(&app, &cao).await["pointsBalance"], 500);

    assert_ledgers_consistent(
        &app,
        &[&han, &first, &second, &third, &fourth, &cao, &other],
    )
    .await;
}

async fn parallel_first_purchases_pay_a_referral_once(app: TestApp) {
    let (ye, code) = referrer(&app, "Ye Qing").await;
    let yu = sign_up(&app, "Yu Lan", &code).await;
    let token = app.staff();
    let bodies = join_all((0..10).map(|_| {
        app.gql(
            Some(&token),
            RECORD,
            json!({ "input": purchase(&yu, "100") }),
        )
    }))
    .await;
    let interactions: HashSet<String> = bodies
        .iter()
        .map(|b| text(&data(b, "recordInteraction")["interaction"]["id"]))
        .collect();
    assert_eq!(interactions.len(), 10, "ten distinct purchases");

    assert_rewarded(&referral(&app, &ye, &yu).await, 500, 200);
    assert_eq!(customer(&app, &ye).await["pointsBalance"], 500);
    assert_eq!(customer(&app, &yu).await["pointsBalance"], 1200);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &ye).await),
        entries([("REFERRAL_BONUS", 500)])
    );
    let referee_entries = assert_ledger_consistent(&app, &yu).await;
    let mut expected = vec![entry("EARN", 100); 10];
    expected.push(entry("REFERRAL_BONUS", 200));
    expected.sort();
    assert_eq!(kinds(&referee_entries), expected);
}

async fn parallel_referees_each_pay_their_referrer(app: TestApp) {
    let (du, code) = referrer(&app, "Du Fei").await;
    let invited: Vec<String> = join_all((0..5).map(|n| {
        let name = format!("Referee {n}");
        let code = code.clone();
        let app = &app;
        async move { sign_up(app, &name, &code).await }
    }))
    .await;
    assert_eq!(referrals_of(&app, &du).await.len(), 5);

    let token = app.staff();
    let bodies = join_all(invited.iter().map(|id| {
        app.gql(
            Some(&token),
            RECORD,
            json!({ "input": purchase(id, "100") }),
        )
    }))
    .await;
    for body in &bodies {
        data(body, "recordInteraction");
    }
    for referral in referrals_of(&app, &du).await {
        assert_rewarded(&referral, 500, 200);
    }
    assert_eq!(customer(&app, &du).await["pointsBalance"], 5 * 500);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &du).await),
        vec![entry("REFERRAL_BONUS", 500); 5]
    );
    for id in &invited {
        assert_eq!(customer(&app, id).await["pointsBalance"], 300);
        assert_eq!(
            kinds(&assert_ledger_consistent(&app, id).await),
            entries([("EARN", 100), ("REFERRAL_BONUS", 200)])
        );
    }
}

async fn the_cap_holds_under_parallel_first_purchases(app: TestApp) {
    update_settings(&app, json!({ "maxRewardedReferralsPerYear": 3 })).await;
    let (jiang, code) = referrer(&app, "Jiang Tao").await;
    let mut invited = Vec::new();
    for n in 0..6 {
        invited.push(sign_up(&app, &format!("Referee {n}"), &code).await);
    }
    let token = app.admin();
    let bodies = join_all(invited.iter().map(|id| {
        app.gql(
            Some(&token),
            RECORD,
            json!({ "input": purchase(id, "100") }),
        )
    }))
    .await;
    for body in &bodies {
        data(body, "recordInteraction");
    }

    let made = referrals_of(&app, &jiang).await;
    let rewarded: Vec<&Value> = made.iter().filter(|r| r["status"] == "REWARDED").collect();
    let rejected: Vec<&Value> = made.iter().filter(|r| r["status"] == "REJECTED").collect();
    assert_eq!(rewarded.len(), 3, "exactly the cap is rewarded: {made:#?}");
    assert_eq!(rejected.len(), 3, "the rest is rejected: {made:#?}");
    for referral in &rewarded {
        assert_rewarded(referral, 500, 200);
    }
    for referral in &rejected {
        assert_rejected(referral);
    }
    assert_eq!(customer(&app, &jiang).await["pointsBalance"], 3 * 500);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &jiang).await),
        vec![entry("REFERRAL_BONUS", 500); 3]
    );
    for referral in &made {
        let id = text(&referral["referee"]["id"]);
        let expected = if referral["status"] == "REWARDED" {
            entries([("EARN", 100), ("REFERRAL_BONUS", 200)])
        } else {
            entries([("EARN", 100)])
        };
        assert_eq!(kinds(&assert_ledger_consistent(&app, &id).await), expected);
    }
}

/// Codes applied while the referees make their first purchase and the referrer buys too:
/// each code is either refused (the purchase came first) or rewarded or rejected by that
/// purchase, never left pending, and the cap and the ledgers hold.
async fn codes_applied_while_referees_buy_settle_consistently(app: TestApp) {
    update_settings(&app, json!({ "maxRewardedReferralsPerYear": 2 })).await;
    let (bai, code) = referrer(&app, "Bai Lu").await;
    let mut invited = Vec::new();
    for n in 0..8 {
        invited.push(
            app.create_customer(json!({ "name": format!("Referee {n}") }))
                .await,
        );
    }
    let token = app.staff();
    let applying = join_all(invited.iter().map(|id| try_apply(&app, &token, id, &code)));
    let buying = join_all(
        invited
            .iter()
            .chain(std::iter::repeat_n(&bai, 4))
            .map(|id| {
                app.gql(
                    Some(&token),
                    RECORD,
                    json!({ "input": purchase(id, "100") }),
                )
            }),
    );
    let (applied, bought) = tokio::join!(applying, buying);
    for body in &bought {
        data(body, "recordInteraction");
    }

    let made = referrals_of(&app, &bai).await;
    for (id, body) in invited.iter().zip(&applied) {
        let found: Vec<&Value> = made.iter().filter(|r| r["referee"]["id"] == *id).collect();
        if body.get("errors").is_some() {
            assert_error(body, "CONFLICT");
            assert!(
                found.is_empty(),
                "a refused code made no referral: {found:#?}"
            );
            assert_eq!(customer(&app, id).await["referredBy"], Value::Null);
        } else {
            assert_eq!(found.len(), 1, "{made:#?}");
            assert_ne!(
                found[0]["status"], "PENDING",
                "the purchase came after: {made:#?}"
            );
            assert_eq!(customer(&app, id).await["referredBy"]["id"], bai);
        }
    }
    let rewarded = made.iter().filter(|r| r["status"] == "REWARDED").count();
    assert!(rewarded <= 2, "the cap holds: {made:#?}");
    let referrer_entries = assert_ledger_consistent(&app, &bai).await;
    let mut expected = vec![entry("EARN", 100); 4];
    expected.extend(vec![entry("REFERRAL_BONUS", 500); rewarded]);
    expected.sort();
    assert_eq!(kinds(&referrer_entries), expected);
    for referral in &made {
        let id = text(&referral["referee"]["id"]);
        let paid = referral["status"] == "REWARDED";
        if paid {
            assert_rewarded(referral, 500, 200);
        } else {
            assert_rejected(referral);
        }
        let referee_entries = assert_ledger_consistent(&app, &id).await;
        let bonuses = kinds(&referee_entries)
            .iter()
            .filter(|(kind, _)| kind == "REFERRAL_BONUS")
            .count();
        assert_eq!(bonuses, usize::from(paid), "{referee_entries:#?}");
    }
}

async fn settings_changes_apply_to_referrals_rewarded_afterwards(app: TestApp) {
    let (peng, code) = referrer(&app, "Peng Hui").await;
    let early = sign_up(&app, "Early", &code).await;
    let late = sign_up(&app, "Late", &code).await;

    buy(&app, &early, "100").await;
    assert_rewarded(&referral(&app, &peng, &early).await, 500, 200);

    let settings = update_settings(&app, json!({ "referrerBonus": 300, "refereeBonus": 0 })).await;
    assert_eq!(
        settings,
        json!({ "referrerBonus": 300, "refereeBonus": 0, "maxRewardedReferralsPerYear": 50 })
    );
    // Made before the change, rewarded after it: the new bonuses apply.
    buy(&app, &late, "100").await;
    let made = referrals_of(&app, &peng).await;
    assert_rewarded(&made[0], 500, 200);
    assert_rewarded(&made[1], 300, 0);
    assert_eq!(referees(&made), vec![early.clone(), late.clone()]);

    assert_eq!(customer(&app, &peng).await["pointsBalance"], 800);
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &peng).await),
        entries([("REFERRAL_BONUS", 300), ("REFERRAL_BONUS", 500)])
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &late).await),
        entries([("EARN", 100)]),
        "no zero-point entry for the referee"
    );
    assert_eq!(
        kinds(&assert_ledger_consistent(&app, &early).await),
        entries([("EARN", 100), ("REFERRAL_BONUS", 200)])
    );
}

on_both!(
    every_customer_has_a_unique_referral_code,
    a_code_given_at_sign_up_makes_a_pending_referral,
    apply_referral_code_links_a_customer_before_its_first_purchase,
    who_may_apply_referral_codes,
    the_first_purchase_rewards_both_sides_once,
    a_code_applied_later_is_rewarded_on_the_first_purchase,
    a_batch_pays_each_referral_once,
    past_the_yearly_cap_referrals_are_rejected,
    parallel_first_purchases_pay_a_referral_once,
    parallel_referees_each_pay_their_referrer,
    the_cap_holds_under_parallel_first_purchases,
    codes_applied_while_referees_buy_settle_consistently,
    settings_changes_apply_to_referrals_rewarded_afterwards,
);
