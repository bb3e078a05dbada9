//! Points expiry and birthday bonuses, end to end: purchases earn lots that expire
//! `pointsExpiryDays` after their `occurredAt`; every way of spending (redemptions,
//! negative adjustments, reversals, expiry itself) uses the lots that expire soonest
//! first and the points without expiry last; evaluation runs write one `EXPIRE` entry per
//! customer for what is still unspent in the lots due by their `asOf`, never twice, and
//! count it in `pointsExpired`; `Customer.pointsExpiring` looks ahead; runs give
//! `birthdayBonus` once per customer per calendar year to those whose birthday fell in
//! the 30 days up to their `asOf`.
//!
//! Expiry timelines are built relative to `now()` with purchases dated in the past, so
//! that every run's `asOf` is in the past too; birthday timelines use fixed dates in past
//! years. Every scenario ends by walking each customer's whole ledger: the balance is
//! the sum of its deltas and every `balanceAfter` chains. Every expected value is worked
//! out by hand from CONTRACT.md.

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, instant as parse, on_both, ts};
use crate::ledger::{ENTRY, assert_ledger_consistent, entry, summary};

const RUN: &str = "id status asOf customersEvaluated pointsExpired";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { pointsEarned }
}";

const BALANCE: &str = "query($id: ID!) { customer(id: $id) { pointsBalance } }";

const EXPIRING: &str =
    "query($id: ID!, $days: Int) { customer(id: $id) { pointsExpiring(withinDays: $days) } }";

const EXPIRING_BY_DEFAULT: &str = "query($id: ID!) { customer(id: $id) { pointsExpiring } }";

/// The default `pointsExpiryDays`.
const EXPIRY_DAYS: i64 = 365;

/// The default `birthdayBonus`.
const BONUS: i64 = 100;

// ---------------------------------------------------------------------------------------
// Time

/// Now, to the second.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Noon (UTC) of a calendar day.
fn noon(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 12, 0, 0)
        .single()
        .expect("a valid day")
}

// ---------------------------------------------------------------------------------------
// Writes

/// A new customer with `birthday` ("YYYY-MM-DD"), or none.
async fn customer(app: &TestApp, name: &str, birthday: Option<&str>) -> String {
    app.create_customer(json!({ "name": name, "birthday": birthday }))
        .await
}

/// Records a PURCHASE of `amount` that occurred `at` and checks the points it earned
/// (one per currency unit, in a tier with multiplier 1.0).
async fn buy(app: &TestApp, id: &str, amount: i64, at: DateTime<Utc>, order_ref: &str) {
    let input = json!({
        "customerId": id,
        "kind": "PURCHASE",
        "amount": amount.to_string(),
        "occurredAt": ts(at),
        "orderRef": order_ref,
    });
    let payload = app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone();
    assert_eq!(payload["pointsEarned"], amount, "{payload:#}");
}

/// Records a REFUND of `amount` of the purchase `order_ref`, now, and returns the points
/// it earned (negative).
async fn refund(app: &TestApp, id: &str, amount: i64, order_ref: &str) -> i64 {
    let input = json!({
        "customerId": id,
        "kind": "REFUND",
        "amount": amount.to_string(),
        "orderRef": order_ref,
    });
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"]["pointsEarned"]
        .as_i64()
        .expect("points earned")
}

/// `adjustPoints` as admin; returns the entry.
async fn adjust(app: &TestApp, id: &str, delta: i64, reason: &str) -> Value {
    let query = format!(
        "mutation($input: AdjustPointsInput!) {{ adjustPoints(input: $input) {{ {ENTRY} }} }}"
    );
    let input = json!({ "customerId": id, "delta": delta, "reason": reason });
    app.ok(&query, json!({ "input": input })).await["adjustPoints"].clone()
}

/// A reward costing `cost` points; returns its id.
async fn create_reward(app: &TestApp, name: &str, cost: i64) -> String {
    let query = "mutation($input: RewardInput!) { createReward(input: $input) { id } }";
    let input = json!({ "name": name, "costPoints": cost });
    app.ok(query, json!({ "input": input })).await["createReward"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// Redeems `reward` for `id` as admin; returns the REDEEM entry.
async fn redeem(app: &TestApp, id: &str, reward: &str) -> Value {
    let query = format!(
        "mutation($input: RedeemRewardInput!) {{ redeemReward(input: $input) {{ entry {{ {ENTRY} }} }} }}"
    );
    let input = json!({ "customerId": id, "rewardId": reward });
    app.ok(&query, json!({ "input": input })).await["redeemReward"]["entry"].clone()
}

/// `updateProgramSettings` as admin; returns the settings.
async fn update_settings(app: &TestApp, input: Value) -> Value {
    let query = "mutation($input: ProgramSettingsInput!) { \
                   updateProgramSettings(input: $input) { pointsExpiryDays birthdayBonus } }";
    app.ok(query, json!({ "input": input })).await["updateProgramSettings"].clone()
}

// ---------------------------------------------------------------------------------------
// Runs

async fn evaluate_vars(app: &TestApp, variables: Value) -> Value {
    let query = format!(
        "mutation($asOf: DateTime, $customerIds: [ID!]) {{ \
           evaluateTiers(asOf: $asOf, customerIds: $customerIds) {{ {RUN} }} }}"
    );
    let run = app.ok(&query, variables).await["evaluateTiers"].clone();
    assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
    run
}

/// A run over everyone as of `as_of`; returns its `pointsExpired`, after checking that
/// the stored run says the same.
async fn run(app: &TestApp, as_of: DateTime<Utc>) -> i64 {
    let run = evaluate_vars(app, json!({ "asOf": ts(as_of) })).await;
    assert_eq!(parse(&run["asOf"]), as_of, "{run:#}");
    points_expired(app, &run).await
}

/// A run limited to `ids` as of `as_of`; returns its `pointsExpired`.
async fn run_only(app: &TestApp, as_of: DateTime<Utc>, ids: &[&str]) -> i64 {
    let run = evaluate_vars(app, json!({ "asOf": ts(as_of), "customerIds": ids })).await;
    assert_eq!(run["customersEvaluated"], ids.len(), "{run:#}");
    points_expired(app, &run).await
}

/// A run over everyone without `asOf` (as of now); returns its `pointsExpired`.
async fn run_now(app: &TestApp) -> i64 {
    let run = evaluate_vars(app, json!({})).await;
    points_expired(app, &run).await
}

async fn points_expired(app: &TestApp, run: &Value) -> i64 {
    let expired = run["pointsExpired"].as_i64().expect("pointsExpired");
    let stored = app
        .ok(
            &format!("query($id: ID!) {{ evaluationRun(id: $id) {{ {RUN} }} }}"),
            json!({ "id": run["id"] }),
        )
        .await["evaluationRun"]
        .clone();
    assert_eq!(stored, *run, "the stored run is the one returned");
    expired
}

// ---------------------------------------------------------------------------------------
// Reads

async fn balance(app: &TestApp, id: &str) -> i64 {
    app.ok(BALANCE, json!({ "id": id })).await["customer"]["pointsBalance"]
        .as_i64()
        .expect("a balance")
}

/// `pointsExpiring(withinDays: days)` as admin, the raw body.
async fn try_expiring(app: &TestApp, id: &str, days: i64) -> Value {
    app.gql(
        Some(&app.admin()),
        EXPIRING,
        json!({ "id": id, "days": days }),
    )
    .await
}

/// `pointsExpiring(withinDays: days)`, which must succeed.
async fn expiring(app: &TestApp, id: &str, days: i64) -> i64 {
    let body = try_expiring(app, id, days).await;
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
    body["data"]["customer"]["pointsExpiring"]
        .as_i64()
        .expect("pointsExpiring")
}

/// `pointsExpiring` without `withinDays` (30 days).
async fn expiring_by_default(app: &TestApp, id: &str) -> i64 {
    app.ok(EXPIRING_BY_DEFAULT, json!({ "id": id })).await["customer"]["pointsExpiring"]
        .as_i64()
        .expect("pointsExpiring")
}

/// The sum of every customer's balance, read from the database.
async fn outstanding(app: &TestApp) -> i64 {
    use sea_orm::EntityTrait;
    entity::customer::Entity::find()
        .all(app.db.conn())
        .await
        .expect("customers")
        .iter()
        .map(|c| c.points_balance)
        .sum()
}

/// Checks the whole ledger of `id` (newest first) against `expected`, and returns it.
async fn assert_ledger(app: &TestApp, id: &str, expected: &[(&str, i64, i64)]) -> Vec<Value> {
    let entries = assert_ledger_consistent(app, id).await;
    let expected: Vec<_> = expected
        .iter()
        .map(|&(kind, delta, after)| entry(kind, delta, after))
        .collect();
    assert_eq!(summary(&entries), expected, "ledger of {id}: {entries:#?}");
    entries
}

/// The `expiresAt` of an entry, if any.
fn expires_at(entry: &Value) -> Option<DateTime<Utc>> {
    (!entry["expiresAt"].is_null()).then(|| parse(&entry["expiresAt"]))
}

/// The BIRTHDAY_BONUS entries of `id`, checked to be well formed, as deltas.
async fn bonuses(app: &TestApp, id: &str) -> Vec<i64> {
    let entries = assert_ledger_consistent(app, id).await;
    entries
        .iter()
        .filter(|e| e["kind"] == "BIRTHDAY_BONUS")
        .map(|e| {
            assert_eq!(expires_at(e), None, "bonuses never expire: {e:#}");
            e["delta"].as_i64().expect("a delta")
        })
        .collect()
}

/// For each customer, how many birthday bonuses it has had so far.
async fn bonus_counts(app: &TestApp, ids: &[&str]) -> Vec<usize> {
    let mut counts = Vec::new();
    for id in ids {
        let deltas = bonuses(app, id).await;
        assert!(deltas.iter().all(|&d| d == BONUS), "{id}: {deltas:?}");
        counts.push(deltas.len());
    }
    counts
}

// ---------------------------------------------------------------------------------------
// Expiry

async fn expiry_takes_what_is_left_of_the_soonest_lots(app: TestApp) {
    let n = now();
    let (p1, p2) = (n - days(500), n - days(420));
    let (t1, t2) = (p1 + days(EXPIRY_DAYS), p2 + days(EXPIRY_DAYS));

    // Ada: 100 due at t1, 50 due at t2, a credit of 40 without expiry; 30 spent, from the
    // lot due at t1 (the soonest), whatever order they were earned in.
    let ada = customer(&app, "Ada", None).await;
    buy(&app, &ada, 50, p2, "ADA-2").await;
    buy(&app, &ada, 100, p1, "ADA-1").await;
    let credit = adjust(&app, &ada, 40, "Goodwill").await;
    assert_eq!(expires_at(&credit), None, "adjustments never expire");
    adjust(&app, &ada, -30, "Correction").await;
    let entries = assert_ledger(
        &app,
        &ada,
        &[
            ("ADJUST", -30, 160),
            ("ADJUST", 40, 190),
            ("EARN", 100, 150),
            ("EARN", 50, 50),
        ],
    )
    .await;
    assert_eq!(expires_at(&entries[2]), Some(t1), "{:#}", entries[2]);
    assert_eq!(expires_at(&entries[3]), Some(t2), "{:#}", entries[3]);

    // Bo: 80 due five days before t1, 25 redeemed.
    let bo = customer(&app, "Bo", None).await;
    buy(&app, &bo, 80, p1 - days(5), "BO-1").await;
    let tote = create_reward(&app, "Tote bag", 25).await;
    let redeemed = redeem(&app, &bo, &tote).await;
    assert_eq!(redeemed["balanceAfter"], 55);

    // Cy: 60 due one second after t1.
    let cy = customer(&app, "Cy", None).await;
    buy(&app, &cy, 60, p1 + Duration::seconds(1), "CY-1").await;

    // Due at t1 exactly is due by t1: Ada's 70 and Bo's 55 expire, Cy's 60 not yet.
    assert_eq!(run(&app, t1).await, 70 + 55);
    assert_eq!(balance(&app, &ada).await, 90);
    assert_eq!(balance(&app, &bo).await, 0);
    assert_eq!(balance(&app, &cy).await, 60);

    // Never twice: the same asOf, or an earlier one, expires nothing more.
    assert_eq!(run(&app, t1).await, 0);
    assert_eq!(run(&app, t1 - days(30)).await, 0);
    let ada_ledger = assert_ledger(
        &app,
        &ada,
        &[
            ("EXPIRE", -70, 90),
            ("ADJUST", -30, 160),
            ("ADJUST", 40, 190),
            ("EARN", 100, 150),
            ("EARN", 50, 50),
        ],
    )
    .await;
    assert_ledger(
        &app,
        &bo,
        &[("EXPIRE", -55, 0), ("REDEEM", -25, 55), ("EARN", 80, 80)],
    )
    .await;
    assert_ledger(&app, &cy, &[("EARN", 60, 60)]).await;

    // The expired lot is used up: Ada's next 10 come from the lot due at t2.
    adjust(&app, &ada, -10, "Correction").await;
    assert_eq!(run(&app, t1 + Duration::seconds(1)).await, 60, "Cy's lot");
    assert_eq!(balance(&app, &cy).await, 0);
    assert_eq!(
        run(&app, t2).await,
        40,
        "what Ada has left of the lot due at t2"
    );
    assert_eq!(balance(&app, &ada).await, 40, "the credit stays");
    assert_eq!(run(&app, n).await, 0);
    assert_eq!(run_now(&app).await, 0);

    let entries = assert_ledger(
        &app,
        &ada,
        &[
            ("EXPIRE", -40, 40),
            ("ADJUST", -10, 80),
            ("EXPIRE", -70, 90),
            ("ADJUST", -30, 160),
            ("ADJUST", 40, 190),
            ("EARN", 100, 150),
            ("EARN", 50, 50),
        ],
    )
    .await;
    assert_eq!(entries[2..], ada_ledger[..], "earlier entries never change");
    assert_ledger(
        &app,
        &bo,
        &[("EXPIRE", -55, 0), ("REDEEM", -25, 55), ("EARN", 80, 80)],
    )
    .await;
    assert_ledger(&app, &cy, &[("EXPIRE", -60, 0), ("EARN", 60, 60)]).await;
}

async fn points_expiring_looks_ahead_of_now(app: TestApp) {
    let n = now();
    let id = customer(&app, "Eve", None).await;
    let idle = customer(&app, "Idle", None).await;

    // Lots due 35 days ago (not written off yet), in 15 days and in 65 days; a credit of
    // 20 without expiry; 30 spent from the lot already due.
    buy(&app, &id, 100, n - days(400), "EVE-1").await;
    buy(&app, &id, 50, n - days(350), "EVE-2").await;
    buy(&app, &id, 70, n - days(300), "EVE-3").await;
    adjust(&app, &id, 20, "Welcome").await;
    adjust(&app, &id, -30, "Correction").await;
    assert_eq!(balance(&app, &id).await, 210);

    assert_eq!(expiring_by_default(&app, &id).await, 70 + 50);
    for (within, expected) in [
        (0, 70),
        (14, 70),
        (15, 70 + 50),
        (30, 70 + 50),
        (64, 70 + 50),
        (65, 70 + 50 + 70),
        (3650, 70 + 50 + 70),
    ] {
        assert_eq!(expiring(&app, &id, within).await, expected, "{within} days");
    }
    assert_eq!(expiring_by_default(&app, &idle).await, 0);
    assert_eq!(expiring(&app, &idle, 3650).await, 0);

    // Negative days are refused.
    let message = assert_error(&try_expiring(&app, &id, -1).await, "BAD_USER_INPUT");
    assert!(message.contains("withinDays"), "{message}");

    // The customer reads its own.
    let own = app
        .ok_as(
            &app.customer_token(&id),
            EXPIRING_BY_DEFAULT,
            json!({ "id": id }),
        )
        .await;
    assert_eq!(own["customer"]["pointsExpiring"], 120);

    // A redemption of 60 takes from the lot already due too.
    let lamp = create_reward(&app, "Lamp", 60).await;
    redeem(&app, &id, &lamp).await;
    assert_eq!(expiring(&app, &id, 0).await, 10);
    assert_eq!(expiring_by_default(&app, &id).await, 10 + 50);

    // A run as of now writes the 10 off; what is due later is still ahead.
    assert_eq!(run_now(&app).await, 10);
    assert_eq!(balance(&app, &id).await, 140);
    assert_eq!(expiring(&app, &id, 0).await, 0);
    assert_eq!(expiring_by_default(&app, &id).await, 50);
    assert_eq!(expiring(&app, &id, 65).await, 50 + 70);
    assert_eq!(expiring(&app, &id, 3650).await, 50 + 70, "not the credit");
    assert_eq!(run_now(&app).await, 0);

    assert_ledger(
        &app,
        &id,
        &[
            ("EXPIRE", -10, 140),
            ("REDEEM", -60, 150),
            ("ADJUST", -30, 210),
            ("ADJUST", 20, 240),
            ("EARN", 70, 220),
            ("EARN", 50, 150),
            ("EARN", 100, 100),
        ],
    )
    .await;
    assert_ledger(&app, &idle, &[]).await;
}

async fn reversals_spend_the_soonest_lots_first(app: TestApp) {
    let n = now();
    let id = customer(&app, "Ren", None).await;
    buy(&app, &id, 100, n - days(500), "REN-1").await;
    buy(&app, &id, 60, n - days(450), "REN-2").await;

    // Half of the second order comes back: 30 points are reversed, from the lot due
    // first (the first order's).
    assert_eq!(refund(&app, &id, 30, "REN-2").await, -30);
    assert_eq!(expiring(&app, &id, 0).await, 130);

    assert_eq!(run(&app, n - days(135)).await, 70);
    assert_eq!(run(&app, n - days(85)).await, 60);
    assert_eq!(run(&app, n).await, 0);
    assert_ledger(
        &app,
        &id,
        &[
            ("EXPIRE", -60, 0),
            ("EXPIRE", -70, 60),
            ("REVERSAL", -30, 130),
            ("EARN", 60, 160),
            ("EARN", 100, 100),
        ],
    )
    .await;
}

async fn with_expiry_days_zero_new_points_never_expire(app: TestApp) {
    let n = now();
    let id = customer(&app, "Zed", None).await;
    buy(&app, &id, 100, n - days(500), "ZED-1").await;

    let settings = update_settings(&app, json!({ "pointsExpiryDays": 0 })).await;
    assert_eq!(settings["pointsExpiryDays"], 0);
    buy(&app, &id, 50, n - days(450), "ZED-2").await;
    let entries = assert_ledger(&app, &id, &[("EARN", 50, 150), ("EARN", 100, 100)]).await;
    assert_eq!(expires_at(&entries[0]), None, "earned after the change");
    assert_eq!(
        expires_at(&entries[1]),
        Some(n - days(500) + days(EXPIRY_DAYS)),
        "earned before the change: its date stays"
    );
    assert_eq!(expiring(&app, &id, 0).await, 100);
    assert_eq!(expiring(&app, &id, 3650).await, 100);

    // Points that never expire are spent last.
    adjust(&app, &id, -30, "Correction").await;
    assert_eq!(expiring(&app, &id, 0).await, 70);
    assert_eq!(run(&app, n).await, 70);
    assert_eq!(balance(&app, &id).await, 50);
    assert_eq!(expiring(&app, &id, 3650).await, 0);
    assert_eq!(run(&app, n).await, 0);

    // A shorter period applies to the purchases made after it is set.
    update_settings(&app, json!({ "pointsExpiryDays": 30 })).await;
    buy(&app, &id, 10, n - days(40), "ZED-3").await;
    let entries = assert_ledger_consistent(&app, &id).await;
    assert_eq!(
        expires_at(&entries[0]),
        Some(n - days(10)),
        "{:#}",
        entries[0]
    );
    assert_eq!(expiring(&app, &id, 0).await, 10);
    assert_eq!(run(&app, n).await, 10);
    assert_eq!(run(&app, n).await, 0);
    assert_eq!(balance(&app, &id).await, 50);

    assert_ledger(
        &app,
        &id,
        &[
            ("EXPIRE", -10, 50),
            ("EARN", 10, 60),
            ("EXPIRE", -70, 50),
            ("ADJUST", -30, 120),
            ("EARN", 50, 150),
            ("EARN", 100, 100),
        ],
    )
    .await;
}

async fn a_limited_run_expires_only_its_customers_points(app: TestApp) {
    let n = now();
    let mut ids = Vec::new();
    for name in ["Ann", "Ben", "Cat"] {
        let id = customer(&app, name, None).await;
        buy(&app, &id, 100, n - days(400), &format!("{name}-1")).await;
        ids.push(id);
    }
    let [ann, ben, cat] = [&ids[0], &ids[1], &ids[2]].map(String::as_str);

    assert_eq!(run_only(&app, n, &[ann]).await, 100);
    assert_eq!(balance(&app, ann).await, 0);
    assert_eq!(balance(&app, ben).await, 100);
    assert_eq!(expiring(&app, ben, 0).await, 100);
    assert_eq!(balance(&app, cat).await, 100);

    assert_eq!(run_only(&app, n, &[ann, ben]).await, 100, "only Ben's");
    assert_eq!(balance(&app, cat).await, 100);
    assert_eq!(run(&app, n).await, 100, "only Cat's");
    assert_eq!(run(&app, n).await, 0);

    for id in [ann, ben, cat] {
        assert_ledger(&app, id, &[("EXPIRE", -100, 0), ("EARN", 100, 100)]).await;
        assert_eq!(expiring(&app, id, 3650).await, 0);
    }
}

async fn birthday_points_never_expire_and_are_spent_last(app: TestApp) {
    let n = now();
    let party = n - days(200);
    let birthday = party.format("1992-%m-%d").to_string();
    let id = customer(&app, "Bea", Some(&birthday)).await;
    buy(&app, &id, 100, n - days(500), "BEA-1").await;
    buy(&app, &id, 50, n - days(450), "BEA-2").await;

    assert_eq!(run(&app, party).await, 0);
    assert_eq!(bonuses(&app, &id).await, [BONUS]);
    assert_eq!(balance(&app, &id).await, 250);

    // 120 spent: the first lot, then 20 of the second; the bonus is left alone.
    adjust(&app, &id, -120, "Correction").await;
    assert_eq!(expiring(&app, &id, 0).await, 30);
    assert_eq!(run(&app, n - days(135)).await, 0, "the first lot is spent");
    assert_eq!(run(&app, n - days(85)).await, 30);
    assert_eq!(run(&app, n).await, 0);
    assert_eq!(expiring(&app, &id, 3650).await, 0);
    assert_ledger(
        &app,
        &id,
        &[
            ("EXPIRE", -30, 100),
            ("ADJUST", -120, 130),
            ("BIRTHDAY_BONUS", BONUS, 250),
            ("EARN", 50, 150),
            ("EARN", 100, 100),
        ],
    )
    .await;
}

async fn expiry_never_writes_off_more_than_the_balance(app: TestApp) {
    let n = now();
    let id = customer(&app, "Dee", None).await;

    // 100 earned and redeemed, then the order refunded: the reversal leaves a debt of 100.
    buy(&app, &id, 100, n - days(10), "DEE-1").await;
    let voucher = create_reward(&app, "Voucher", 100).await;
    redeem(&app, &id, &voucher).await;
    assert_eq!(refund(&app, &id, 100, "DEE-1").await, -100);
    assert_eq!(balance(&app, &id).await, -100);

    // 150 more, due 35 days ago: 250 earned, 200 spent, so 50 are unspent and can expire.
    buy(&app, &id, 150, n - days(400), "DEE-2").await;
    assert_eq!(balance(&app, &id).await, 50);
    assert_eq!(expiring(&app, &id, 0).await, 50);
    assert_eq!(run(&app, n).await, 50);
    assert_eq!(balance(&app, &id).await, 0);
    assert_ledger(
        &app,
        &id,
        &[
            ("EXPIRE", -50, 0),
            ("EARN", 150, 50),
            ("REVERSAL", -100, -100),
            ("REDEEM", -100, 0),
            ("EARN", 100, 100),
        ],
    )
    .await;
}

async fn a_run_and_redemptions_in_parallel_spend_each_point_once(app: TestApp) {
    let n = now();
    let mut ids = Vec::new();
    for i in 0..16 {
        let id = customer(&app, &format!("Racer {i}"), None).await;
        buy(&app, &id, 100, n - days(400), &format!("RACE-{i}")).await;
        ids.push(id);
    }
    let gift = create_reward(&app, "Gift card", 100).await;

    let query = format!(
        "mutation($input: RedeemRewardInput!) {{ redeemReward(input: $input) {{ entry {{ {ENTRY} }} }} }}"
    );
    let admin = app.admin();
    let redemptions = futures_util::future::join_all(ids.iter().map(|id| {
        app.gql(
            Some(&admin),
            &query,
            json!({ "input": { "customerId": id, "rewardId": gift } }),
        )
    }));
    let (bodies, expired) = tokio::join!(redemptions, run_now(&app));

    let mut refused = 0;
    for (id, body) in ids.iter().zip(&bodies) {
        let entries = assert_ledger_consistent(&app, id).await;
        if body.get("errors").is_some() {
            assert_error(body, "INSUFFICIENT_POINTS");
            refused += 1;
            assert_eq!(
                summary(&entries),
                [entry("EXPIRE", -100, 0), entry("EARN", 100, 100)]
            );
        } else {
            assert_eq!(
                summary(&entries),
                [entry("REDEEM", -100, 0), entry("EARN", 100, 100)]
            );
        }
    }
    assert_eq!(expired, 100 * refused, "{bodies:#?}");
    assert_eq!(run_now(&app).await, 0);
}

async fn a_run_over_many_customers_expires_and_gives_to_each(app: TestApp) {
    use tierwise_api::service::customers::{ProfileInput, create_many};

    const CUSTOMERS: usize = 1_100;
    let n = now();
    let birthday = (n - days(3)).format("1992-%m-%d").to_string();
    let inputs = (0..CUSTOMERS)
        .map(|i| ProfileInput {
            name: format!("Member {i}"),
            birthday: Some(birthday.parse().expect("a date")),
            ..Default::default()
        })
        .collect();
    let created = create_many(&app.db, inputs).await.expect("customers");
    let purchases: Vec<Value> = created
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "customerId": c.id.to_string(),
                "kind": "PURCHASE",
                "amount": (i % 5 + 1).to_string(),
                "occurredAt": ts(n - days(400)),
            })
        })
        .collect();
    let record = "mutation($inputs: [RecordInteractionInput!]!) { \
                    recordInteractions(inputs: $inputs) { pointsEarned } }";
    for chunk in purchases.chunks(1000) {
        app.ok(record, json!({ "inputs": chunk })).await;
    }
    let earned: i64 = (0..CUSTOMERS).map(|i| (i % 5 + 1) as i64).sum();

    assert_eq!(outstanding(&app).await, earned);
    assert_eq!(run(&app, n).await, earned);
    let everyone = CUSTOMERS as i64 * BONUS;
    assert_eq!(
        outstanding(&app).await,
        everyone,
        "only the bonuses are left"
    );
    assert_eq!(run(&app, n).await, 0);
    assert_eq!(outstanding(&app).await, everyone);
    for c in [
        &created[0],
        &created[499],
        &created[500],
        &created[CUSTOMERS - 1],
    ] {
        let id = c.id.to_string();
        let entries = assert_ledger_consistent(&app, &id).await;
        let kinds: Vec<_> = entries.iter().map(|e| e["kind"].clone()).collect();
        assert_eq!(kinds.len(), 3, "{entries:#?}");
        assert!(kinds.contains(&json!("EXPIRE")), "{entries:#?}");
        assert!(kinds.contains(&json!("BIRTHDAY_BONUS")), "{entries:#?}");
        assert_eq!(balance(&app, &id).await, BONUS);
    }
}

// ---------------------------------------------------------------------------------------
// Birthday bonuses

async fn birthday_bonus_window_is_the_30_days_up_to_the_run(app: TestApp) {
    let on_the_day = customer(&app, "On the day", Some("1990-03-10")).await;
    let first_day = customer(&app, "29 days before", Some("1985-02-09")).await;
    let too_early = customer(&app, "30 days before", Some("1992-02-08")).await;
    let too_late = customer(&app, "The day after", Some("1991-03-11")).await;
    let elsewhere = customer(&app, "In September", Some("1980-09-01")).await;
    let nobody = customer(&app, "No birthday", None).await;
    let all = [
        &on_the_day,
        &first_day,
        &too_early,
        &too_late,
        &elsewhere,
        &nobody,
    ]
    .map(String::as_str);

    // The window of 2025-03-10 is 2025-02-09 ..= 2025-03-10.
    assert_eq!(
        run(&app, noon(2025, 3, 10)).await,
        0,
        "bonuses expire nothing"
    );
    assert_eq!(bonus_counts(&app, &all).await, [1, 1, 0, 0, 0, 0]);
    assert_ledger(&app, &on_the_day, &[("BIRTHDAY_BONUS", BONUS, BONUS)]).await;

    // Later in the same window, or again: once a year. 2025-03-15 reaches 2025-03-11.
    run(&app, noon(2025, 3, 15)).await;
    run(&app, noon(2025, 3, 10)).await;
    assert_eq!(bonus_counts(&app, &all).await, [1, 1, 0, 1, 0, 0]);

    // The next year, again; at midnight the window is still 2026-02-09 ..= 2026-03-10.
    let midnight = Utc
        .with_ymd_and_hms(2026, 3, 10, 0, 0, 0)
        .single()
        .expect("a valid instant");
    run(&app, midnight).await;
    assert_eq!(bonus_counts(&app, &all).await, [2, 2, 0, 1, 0, 0]);
    assert_eq!(balance(&app, &on_the_day).await, 2 * BONUS);
    assert_eq!(balance(&app, &nobody).await, 0);
}

async fn birthday_bonus_is_once_per_calendar_year_of_the_birthday(app: TestApp) {
    let christmas = customer(&app, "Christmas", Some("1988-12-25")).await;
    let january = customer(&app, "January", Some("1995-01-05")).await;
    let both = [&christmas, &january].map(String::as_str);

    run(&app, noon(2023, 12, 30)).await;
    assert_eq!(bonus_counts(&app, &both).await, [1, 0]);
    // 2023-12-12 ..= 2024-01-10: Christmas 2023 was paid; 5 January 2024 is new.
    run(&app, noon(2024, 1, 10)).await;
    assert_eq!(bonus_counts(&app, &both).await, [1, 1]);
    run(&app, noon(2024, 1, 20)).await;
    assert_eq!(bonus_counts(&app, &both).await, [1, 1]);
    run(&app, noon(2024, 12, 25)).await;
    assert_eq!(bonus_counts(&app, &both).await, [2, 1]);
    // 2024-12-07 ..= 2025-01-05: Christmas 2024 was paid; 5 January 2025 is new.
    run(&app, noon(2025, 1, 5)).await;
    assert_eq!(bonus_counts(&app, &both).await, [2, 2]);

    for id in both {
        assert_ledger(
            &app,
            id,
            &[
                ("BIRTHDAY_BONUS", BONUS, 2 * BONUS),
                ("BIRTHDAY_BONUS", BONUS, BONUS),
            ],
        )
        .await;
    }
}

async fn a_29_february_birthday_counts_on_28_february_in_common_years(app: TestApp) {
    let leapling = customer(&app, "Leapling", Some("1992-02-29")).await;
    let just = [leapling.as_str()];

    run(&app, noon(2023, 2, 27)).await;
    assert_eq!(bonus_counts(&app, &just).await, [0]);
    run(&app, noon(2023, 2, 28)).await;
    assert_eq!(bonus_counts(&app, &just).await, [1]);
    run(&app, noon(2023, 3, 29)).await;
    assert_eq!(bonus_counts(&app, &just).await, [1], "once in 2023");

    // 2024 is a leap year: not on the 28th, on the 29th.
    run(&app, noon(2024, 2, 28)).await;
    assert_eq!(bonus_counts(&app, &just).await, [1]);
    run(&app, noon(2024, 2, 29)).await;
    assert_eq!(bonus_counts(&app, &just).await, [2]);

    // 2025: 2025-03-01 ..= 2025-03-30 misses 28 February; 2025-02-28 ..= 2025-03-29 has it.
    run(&app, noon(2025, 3, 30)).await;
    assert_eq!(bonus_counts(&app, &just).await, [2]);
    run(&app, noon(2025, 3, 29)).await;
    assert_eq!(bonus_counts(&app, &just).await, [3]);
    assert_eq!(balance(&app, &leapling).await, 3 * BONUS);
}

async fn the_birthday_bonus_follows_the_setting(app: TestApp) {
    let june = customer(&app, "June", Some("1990-06-15")).await;
    let nobody = customer(&app, "No birthday", None).await;

    let settings = update_settings(&app, json!({ "birthdayBonus": 0 })).await;
    assert_eq!(settings["birthdayBonus"], 0);
    run(&app, noon(2025, 6, 20)).await;
    assert_ledger(&app, &june, &[]).await;

    let settings = update_settings(&app, json!({ "birthdayBonus": 250 })).await;
    assert_eq!(settings["birthdayBonus"], 250);
    run(&app, noon(2026, 6, 20)).await;
    assert_eq!(bonuses(&app, &june).await, [250]);
    assert_ledger(&app, &june, &[("BIRTHDAY_BONUS", 250, 250)]).await;
    assert_ledger(&app, &nobody, &[]).await;
}

/// Expiring everyone's points on one night (points cleared at the end of the year) costs
/// a fixed number of statements per 500 customers, not a round trip per customer; and it
/// writes what the row-by-row rules would (the ledger walks, the balances are zero).
async fn expiry_costs_statements_per_chunk_not_per_customer(app: TestApp) {
    let long_ago = (Utc::now() - Duration::days(400)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = app
            .create_customer(json!({ "name": format!("Customer {i}") }))
            .await;
        app.ok(
            "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }",
            json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "10", "occurredAt": long_ago } }),
        )
        .await;
        ids.push(id);
    }
    let before = app.db.statement_count();
    let expired = tierwise_api::jobs::points_upkeep::expire_points(&app.db, Utc::now(), None)
        .await
        .expect("expired");
    let statements = app.db.statement_count() - before;
    assert_eq!(expired, 600);
    assert!(statements <= 12, "{statements} statements for 60 customers");
    for id in ids.iter().take(3) {
        let entries = assert_ledger_consistent(&app, id).await;
        assert_eq!(
            summary(&entries),
            vec![entry("EXPIRE", -10, 0), entry("EARN", 10, 10)]
        );
    }
}

/// After a full run has written off everything due by its `asOf`, the next run looks
/// only at customers with lots newly due or with ledgers changed since (not at everyone
/// who ever held an expiring lot, who owe nothing more), and still writes off a purchase
/// backdated past the last run, as the full rule would.
async fn steady_state_runs_look_only_at_what_changed(app: TestApp) {
    use tierwise_api::store::points::{ExpiredUpTo, expiry_candidates};
    let at = |days_ago: i64| (now() - days(days_ago)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let record = |id: &str, amount: &str, occurred: String| json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": amount, "occurredAt": occurred } });
    // Ten customers whose lots fell due long ago, each keeping points without expiry.
    let mut old = Vec::new();
    for i in 0..10 {
        let id = app
            .create_customer(json!({ "name": format!("Old {i}") }))
            .await;
        app.ok(RECORD, record(&id, "10", at(EXPIRY_DAYS + 40)))
            .await;
        adjust(&app, &id, 5, "goodwill").await;
        old.push(id);
    }
    // One whose lot falls due between the two runs.
    let due_later = app.create_customer(json!({ "name": "Due later" })).await;
    app.ok(RECORD, record(&due_later, "20", at(EXPIRY_DAYS + 5)))
        .await;

    let first_as_of = now() - days(10);
    assert_eq!(run(&app, first_as_of).await, 100);
    let since = tierwise_api::store::evaluation_runs::latest_full(app.db.conn())
        .await
        .expect("read")
        .map(|run| ExpiredUpTo {
            as_of: run.as_of,
            started_at: run.started_at,
        });
    assert!(since.is_some());

    // Nothing changed since: only the lot newly due is looked at.
    let candidates = expiry_candidates(app.db.conn(), now(), since)
        .await
        .expect("read");
    let due_later_id: uuid::Uuid = due_later.parse().expect("a uuid");
    assert_eq!(candidates, vec![due_later_id]);
    let everyone = expiry_candidates(app.db.conn(), now(), None)
        .await
        .expect("read");
    assert_eq!(
        everyone.len(),
        11,
        "the full rule reads everyone who held a due lot"
    );

    // A purchase backdated past the first run's asOf changes one old customer's ledger.
    app.ok(RECORD, record(&old[3], "7", at(EXPIRY_DAYS + 30)))
        .await;
    let mut candidates = expiry_candidates(app.db.conn(), now(), since)
        .await
        .expect("read");
    candidates.sort();
    let mut expected: Vec<uuid::Uuid> = vec![due_later_id, old[3].parse().expect("a uuid")];
    expected.sort();
    assert_eq!(candidates, expected);

    // And the run writes off both, exactly as the full rule would.
    assert_eq!(run_now(&app).await, 27);
    assert_eq!(balance(&app, &old[3]).await, 5);
    assert_eq!(balance(&app, &due_later).await, 0);
    for id in old.iter().chain([&due_later]) {
        assert_ledger_consistent(&app, id).await;
    }
}

on_both!(
    steady_state_runs_look_only_at_what_changed,
    expiry_costs_statements_per_chunk_not_per_customer,
    expiry_takes_what_is_left_of_the_soonest_lots,
    points_expiring_looks_ahead_of_now,
    reversals_spend_the_soonest_lots_first,
    with_expiry_days_zero_new_points_never_expire,
    a_limited_run_expires_only_its_customers_points,
    birthday_points_never_expire_and_are_spent_last,
    expiry_never_writes_off_more_than_the_balance,
    a_run_and_redemptions_in_parallel_spend_each_point_once,
    a_run_over_many_customers_expires_and_gives_to_each,
    birthday_bonus_window_is_the_30_days_up_to_the_run,
    birthday_bonus_is_once_per_calendar_year_of_the_birthday,
    a_29_february_birthday_counts_on_28_february_in_common_years,
    the_birthday_bonus_follows_the_setting,
);
