//! Campaigns, end to end: who manages and reads them, each trigger and action, member
//! days in the program's time zone, refunds, limits and budgets under parallel
//! purchases, no double firing under retries and reruns, `automation.fired` to webhooks
//! and subscribers, and simulations that equal what the live path then does.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Duration as Days, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, error_message, on_both, spawn_app, ts};
use crate::webhooks::{Receiver, create_endpoint};
use crate::ws_client::{TRANSPORT, Ws};

const CAMPAIGN: &str = "id name status timesFired customersReached pointsAwarded \
    budgetExhaustedAt limitPerCustomer budgetPoints condition \
    trigger { kind interactionKinds channels minAmount daysOfWeek toTierKey segmentId toStage withinDays } \
    actions { kind points multiplier tag segmentId message }";

async fn create(app: &TestApp, input: Value) -> Value {
    app.ok(
        &format!(
            "mutation($input: CampaignInput!) {{ createCampaign(input: $input) {{ {CAMPAIGN} }} }}"
        ),
        json!({ "input": input }),
    )
    .await["createCampaign"]
        .clone()
}

async fn change_status(app: &TestApp, mutation: &str, id: &str) -> Value {
    app.ok(
        &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ {CAMPAIGN} }} }}"),
        json!({ "id": id }),
    )
    .await[mutation]
        .clone()
}

/// Creates and starts a campaign; returns its id.
async fn launch(app: &TestApp, input: Value) -> String {
    let id = create(app, input).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        change_status(app, "activateCampaign", &id).await["status"],
        "ACTIVE"
    );
    id
}

async fn campaign(app: &TestApp, id: &str) -> Value {
    app.ok(
        &format!("query($id: ID!) {{ campaign(id: $id) {{ {CAMPAIGN} }} }}"),
        json!({ "id": id }),
    )
    .await["campaign"]
        .clone()
}

async fn record(app: &TestApp, input: Value) -> Value {
    app.ok(
        "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {
           pointsEarned interaction { id } customer { pointsBalance tags } } }",
        json!({ "input": input }),
    )
    .await["recordInteraction"]
        .clone()
}

fn purchase(customer: &str, amount: &str, at: DateTime<Utc>) -> Value {
    json!({ "customerId": customer, "kind": "PURCHASE", "amount": amount, "occurredAt": ts(at) })
}

/// The customer's ledger, oldest first: `(kind, delta, campaign name)`.
async fn ledger(app: &TestApp, customer: &str) -> Vec<(String, i64, Option<String>)> {
    let body = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsLedger(first: 100) { nodes {
               kind delta campaign { name } } } } }",
            json!({ "id": customer }),
        )
        .await;
    let mut entries: Vec<_> = body["customer"]["pointsLedger"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["delta"].as_i64().unwrap(),
                e["campaign"]["name"].as_str().map(str::to_owned),
            )
        })
        .collect();
    entries.reverse();
    entries
}

fn bonuses(entries: &[(String, i64, Option<String>)]) -> i64 {
    entries
        .iter()
        .filter(|(kind, ..)| kind == "CAMPAIGN_BONUS")
        .map(|(_, delta, _)| delta)
        .sum()
}

/// Thursday 26 November 2026, 17:00 UTC: already Friday 01:00 in Shanghai.
fn friday_in_shanghai() -> DateTime<Utc> {
    "2026-11-26T17:00:00Z".parse().unwrap()
}

/// Waits until `done` holds for what `read` returns (automations run after the commit).
async fn eventually<F, Fut>(what: &str, read: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {value:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------

async fn campaigns_are_managed_by_admins_and_read_by_staff(app: TestApp) {
    let input = json!({
        "name": "Double Fridays",
        "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"], "daysOfWeek": [5] },
        "actions": [{ "kind": "MULTIPLY_POINTS", "multiplier": 2.0 }],
        "limitPerCustomer": 4,
        "budgetPoints": 1000000
    });
    let created = create(&app, input.clone()).await;
    assert_eq!(created["status"], "DRAFT");
    assert_eq!(created["trigger"]["daysOfWeek"], json!([5]));
    assert_eq!(created["actions"][0]["multiplier"], 2.0);
    assert_eq!(created["timesFired"], 0);
    let id = created["id"].as_str().unwrap().to_owned();

    // Refused, each naming the field at fault.
    let mutation = "mutation($input: CampaignInput!) { createCampaign(input: $input) { id } }";
    for (bad, field) in [
        (
            json!({ "daysOfWeek": [5, 8] }),
            "input.trigger.daysOfWeek[1]",
        ),
        (json!({ "toTierKey": "vip" }), "input.trigger.toTierKey"),
    ] {
        let mut trigger = json!({ "kind": "INTERACTION" });
        trigger
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let body = app
            .gql(
                Some(&app.admin()),
                mutation,
                json!({ "input": { "name": "x", "trigger": trigger,
                "actions": [{ "kind": "AWARD_POINTS", "points": 5 }] } }),
            )
            .await;
        assert_error(&body, "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body:#}");
    }
    let body = app
        .gql(
            Some(&app.admin()),
            mutation,
            json!({ "input": { "name": "x",
            "trigger": { "kind": "TIER_CHANGED" },
            "actions": [{ "kind": "MULTIPLY_POINTS", "multiplier": 2 }] } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let body = app
        .gql(Some(&app.admin()), mutation, json!({ "input": { "name": "x",
            "trigger": { "kind": "INTERACTION" }, "condition": { "field": "nope", "op": "eq", "value": 1 },
            "actions": [{ "kind": "AWARD_POINTS", "points": 5 }] } }))
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["extensions"]["field"]
            .as_str()
            .unwrap()
            .starts_with("input.condition")
    );

    // Staff read and simulate, but do not manage; partners and customers do neither.
    let listed = app
        .ok_as(
            &app.staff(),
            "{ campaigns(status: [DRAFT]) { id status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["campaigns"],
        json!([{ "id": id, "status": "DRAFT" }])
    );
    // A status list of any length asks for at most the four statuses.
    let many = app
        .ok_as(
            &app.staff(),
            "query($s: [CampaignStatus!]) { campaigns(status: $s) { id } }",
            json!({ "s": vec!["DRAFT"; 40_000] }),
        )
        .await;
    assert_eq!(many["campaigns"], json!([{ "id": id }]));
    let simulate = "query($input: CampaignInput!, $from: DateTime!, $to: DateTime!) {
        simulateCampaign(input: $input, from: $from, to: $to) { timesFired } }";
    let window =
        json!({ "input": input, "from": ts(Utc::now() - Days::days(30)), "to": ts(Utc::now()) });
    assert_eq!(
        app.ok_as(&app.staff(), simulate, window.clone()).await["simulateCampaign"]["timesFired"],
        0
    );
    let staff_create = app
        .gql(Some(&app.staff()), mutation, json!({ "input": input }))
        .await;
    assert_error(&staff_create, "FORBIDDEN");
    let partner = app.partner("customers:read");
    assert_error(
        &app.gql(Some(&partner), "{ campaigns { id } }", json!({}))
            .await,
        "FORBIDDEN",
    );
    assert_error(
        &app.gql(Some(&partner), simulate, window.clone()).await,
        "FORBIDDEN",
    );
    // One simulation per request: aliases cannot queue a hundred behind the cost limit.
    let twice = "query($input: CampaignInput!, $from: DateTime!, $to: DateTime!) {
        a: simulateCampaign(input: $input, from: $from, to: $to) { timesFired }
        b: simulateCampaign(input: $input, from: $from, to: $to) { timesFired } }";
    let refused = app.gql(Some(&app.staff()), twice, window).await;
    assert!(error_message(&refused).contains("costs"), "{refused:#}");
    // History only: a period that reaches into the future is refused before any work.
    let future =
        json!({ "input": input, "from": ts(Utc::now()), "to": ts(Utc::now() + Days::days(30)) });
    assert_error(
        &app.gql(Some(&app.staff()), simulate, future).await,
        "BAD_USER_INPUT",
    );

    // DRAFT → ACTIVE → (no changes while running) → PAUSED → changed → ENDED, final.
    let update = "mutation($id: ID!, $input: CampaignInput!) { updateCampaign(id: $id, input: $input) { name status } }";
    let renamed = json!({ "name": "Double Fridays (VIP)", "trigger": input["trigger"], "actions": input["actions"] });
    assert_eq!(
        change_status(&app, "activateCampaign", &id).await["status"],
        "ACTIVE"
    );
    assert_error(
        &app.gql(
            Some(&app.admin()),
            update,
            json!({ "id": id, "input": renamed }),
        )
        .await,
        "CONFLICT",
    );
    assert_eq!(
        change_status(&app, "pauseCampaign", &id).await["status"],
        "PAUSED"
    );
    let updated = app.ok(update, json!({ "id": id, "input": renamed })).await;
    assert_eq!(
        updated["updateCampaign"],
        json!({ "name": "Double Fridays (VIP)", "status": "PAUSED" })
    );
    assert_eq!(
        change_status(&app, "endCampaign", &id).await["status"],
        "ENDED"
    );
    let restart = app
        .gql(
            Some(&app.admin()),
            "mutation($id: ID!) { activateCampaign(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_error(&restart, "CONFLICT");
    let unknown = app
        .gql(
            Some(&app.admin()),
            "mutation($id: ID!) { pauseCampaign(id: $id) { id } }",
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert_error(&unknown, "NOT_FOUND");
}

async fn member_day_doubles_points_on_the_programs_weekday(app: TestApp) {
    app.ok(
        "mutation { updateProgramSettings(input: { timeZone: \"Asia/Shanghai\" }) { timeZone } }",
        json!({}),
    )
    .await;
    let shanghai = app
        .create_customer(json!({ "name": "Wang Fang", "region": "Shanghai" }))
        .await;
    let beijing = app
        .create_customer(json!({ "name": "Li Lei", "region": "Beijing" }))
        .await;
    let id = launch(
        &app,
        json!({
            "name": "Member day",
            "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"], "daysOfWeek": [5] },
            "condition": { "field": "region", "op": "eq", "value": "Shanghai" },
            "actions": [{ "kind": "MULTIPLY_POINTS", "multiplier": 2 }],
            "limitPerCustomer": 115
        }),
    )
    .await;
    let friday = friday_in_shanghai();
    // Friday in Shanghai, for a Shanghai customer: 100 earned and 100 more.
    let mut order = purchase(&shanghai, "100", friday);
    order["orderRef"] = json!("F-1");
    let first = record(&app, order).await;
    assert_eq!(first["pointsEarned"], 200, "{first:#}");
    assert_eq!(
        ledger(&app, &shanghai).await,
        vec![
            ("EARN".to_owned(), 100, None),
            (
                "CAMPAIGN_BONUS".to_owned(),
                100,
                Some("Member day".to_owned())
            )
        ]
    );
    // A retried recording (the same idempotency key) fires nothing again.
    let mut keyed = purchase(&shanghai, "1", friday + Days::minutes(30));
    keyed["idempotencyKey"] = json!("till-7-receipt-1");
    let first_try = record(&app, keyed.clone()).await;
    let retry = record(&app, keyed).await;
    assert_eq!(first_try["pointsEarned"], 2);
    assert_eq!(retry["interaction"]["id"], first_try["interaction"]["id"]);
    // Thursday in Shanghai (Thursday 15:59 UTC): no bonus; nor for Beijing on Friday.
    let thursday = record(
        &app,
        purchase(&shanghai, "100", "2026-11-26T15:59:00Z".parse().unwrap()),
    )
    .await;
    assert_eq!(thursday["pointsEarned"], 100);
    assert_eq!(
        record(&app, purchase(&beijing, "100", friday)).await["pointsEarned"],
        100
    );
    // A refund of half the Friday order takes back half of its 200 points.
    let refund = record(
        &app,
        json!({ "customerId": shanghai, "kind": "REFUND", "amount": "50", "orderRef": "F-1",
                "occurredAt": ts(friday + Days::hours(1)) }),
    )
    .await;
    assert_eq!(refund["pointsEarned"], -100, "{refund:#}");
    // The limit: at most 115 points each. 100 and 1 given, then 10, the 4 left, nothing.
    let mut earned = Vec::new();
    for hour in 2..5 {
        let at = friday + Days::hours(hour);
        earned.push(record(&app, purchase(&shanghai, "10", at)).await["pointsEarned"].clone());
    }
    assert_eq!(earned, vec![json!(20), json!(14), json!(10)]);
    let stats = campaign(&app, &id).await;
    assert_eq!(stats["timesFired"], 4, "{stats:#}");
    assert_eq!(stats["customersReached"], 1);
    assert_eq!(stats["pointsAwarded"], 115);
    assert_eq!(bonuses(&ledger(&app, &shanghai).await), 115);
    // The customer sees which campaign paid it, not the campaign's rules.
    let own = app
        .ok_as(
            &app.customer_token(&shanghai),
            "query($id: ID!) { customer(id: $id) { pointsLedger(first: 10) { nodes { kind campaign { name } } } } }",
            json!({ "id": shanghai }),
        )
        .await;
    let named: Vec<&Value> = own["customer"]["pointsLedger"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "CAMPAIGN_BONUS")
        .collect();
    assert_eq!(named[0]["campaign"]["name"], "Member day");
    let peek = app
        .gql(
            Some(&app.customer_token(&shanghai)),
            "query($id: ID!) { customer(id: $id) { pointsLedger(first: 10) { nodes { campaign { description } } } } }",
            json!({ "id": shanghai }),
        )
        .await;
    assert_error(&peek, "FORBIDDEN");

    // A campaign whose dates have passed pays nothing, even for a purchase dated inside
    // them.
    launch(
        &app,
        json!({ "name": "2020 only", "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"] },
                "actions": [{ "kind": "AWARD_POINTS", "points": 500 }],
                "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-12-31T00:00:00Z" }),
    )
    .await;
    let backdated = record(
        &app,
        purchase(&beijing, "10", "2020-06-05T10:00:00Z".parse().unwrap()),
    )
    .await;
    assert_eq!(backdated["pointsEarned"], 10);
}

async fn budget_and_limit_hold_under_parallel_purchases(app: TestApp) {
    let id = launch(
        &app,
        json!({
            "name": "First purchases",
            "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"], "minAmount": "5" },
            "actions": [{ "kind": "AWARD_POINTS", "points": 10 }],
            "limitPerCustomer": 30,
            "budgetPoints": 255
        }),
    )
    .await;
    let mut customers = Vec::new();
    for i in 0..10 {
        customers.push(
            app.create_customer(json!({ "name": format!("Buyer {i}") }))
                .await,
        );
    }
    let at = Utc::now() - Days::minutes(5);
    let purchases = (0..100).map(|i| {
        let app = &app;
        let customer = customers[i % customers.len()].clone();
        async move { record(app, purchase(&customer, "20", at)).await }
    });
    futures_util::future::join_all(purchases).await;
    // A purchase under the minimum never fires.
    record(&app, purchase(&customers[0], "4.99", at)).await;
    let stats = campaign(&app, &id).await;
    // 10 customers × 30 points would be 300: the budget of 255 pays 25 firings of 10
    // and one of the 5 left, then stops.
    assert_eq!(stats["timesFired"], 26, "{stats:#}");
    assert_eq!(stats["pointsAwarded"], 255);
    assert!(stats["budgetExhaustedAt"].is_string(), "{stats:#}");
    let mut paid = 0;
    for customer in &customers {
        let bonus = bonuses(&ledger(&app, customer).await);
        assert!(bonus <= 30, "{customer}: {bonus}");
        paid += bonus;
    }
    assert_eq!(paid, 255);

    // A raised budget opens the campaign again: pause, change, start.
    change_status(&app, "pauseCampaign", &id).await;
    let raised = json!({
        "name": "First purchases",
        "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"], "minAmount": "5" },
        "actions": [{ "kind": "AWARD_POINTS", "points": 10 }],
        "limitPerCustomer": 30,
        "budgetPoints": 265
    });
    app.ok(
        "mutation($id: ID!, $input: CampaignInput!) { updateCampaign(id: $id, input: $input) { id } }",
        json!({ "id": id, "input": raised }),
    )
    .await;
    let reopened = change_status(&app, "activateCampaign", &id).await;
    assert!(reopened["budgetExhaustedAt"].is_null(), "{reopened:#}");
    let newcomer = app.create_customer(json!({ "name": "Newcomer" })).await;
    assert_eq!(
        record(&app, purchase(&newcomer, "20", at)).await["pointsEarned"],
        30
    );
    assert_eq!(campaign(&app, &id).await["pointsAwarded"], 265);
}

async fn a_full_batch_fires_many_campaigns(app: TestApp) {
    for n in 0..6 {
        launch(
            &app,
            json!({ "name": format!("Bonus {n}"), "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"] },
                    "actions": [{ "kind": "AWARD_POINTS", "points": 1 }, { "kind": "NOTIFY", "message": "thanks" }] }),
        )
        .await;
    }
    let customer = app.create_customer(json!({ "name": "Big batch" })).await;
    let at = Utc::now() - Days::minutes(1);
    let inputs: Vec<Value> = (0..1000).map(|_| purchase(&customer, "1", at)).collect();
    // 1,000 earnings, 6,000 bonuses and 6,000 notices: each statement stays within the
    // databases' parameter limits.
    let answers = app
        .ok(
            "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { pointsEarned } }",
            json!({ "inputs": inputs }),
        )
        .await;
    assert_eq!(answers["recordInteractions"][999]["pointsEarned"], 7);
    let balance = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsBalance } }",
            json!({ "id": customer }),
        )
        .await;
    assert_eq!(balance["customer"]["pointsBalance"], 7000);
}

async fn automations_fire_once_for_each_cause(app: TestApp) {
    let vip_tag = launch(
        &app,
        json!({
            "name": "Welcome to VIP",
            "trigger": { "kind": "TIER_CHANGED", "toTierKey": "vip" },
            "actions": [{ "kind": "AWARD_POINTS", "points": 300 }, { "kind": "ADD_TAG", "tag": "vip-welcome" }]
        }),
    )
    .await;
    let win_back = launch(
        &app,
        json!({
            "name": "Win back",
            "trigger": { "kind": "LIFECYCLE_CHANGED", "toStage": "AT_RISK" },
            "actions": [{ "kind": "AWARD_POINTS", "points": 50 }]
        }),
    )
    .await;
    let referral = launch(
        &app,
        json!({
            "name": "Thanks for the friend",
            "trigger": { "kind": "REFERRAL_REWARDED" },
            "actions": [{ "kind": "AWARD_POINTS", "points": 70 }]
        }),
    )
    .await;
    let today = Utc::now().date_naive();
    let birthday = launch(
        &app,
        json!({
            "name": "Birthday gift",
            "trigger": { "kind": "BIRTHDAY" },
            "actions": [{ "kind": "AWARD_POINTS", "points": 20 }]
        }),
    )
    .await;
    let expiring = launch(
        &app,
        json!({
            "name": "Use them or lose them",
            "trigger": { "kind": "POINTS_EXPIRING", "withinDays": 10 },
            "actions": [{ "kind": "ADD_TAG", "tag": "points-expiring" }]
        }),
    )
    .await;

    // TIER_CHANGED: moved to VIP by hand; to Gold (not VIP) fires nothing.
    let ana = app.create_customer(json!({ "name": "Ana" })).await;
    let set_tier = "mutation($c: ID!, $t: String!) { setCustomerTier(customerId: $c, tierKey: $t, note: \"test\") { id } }";
    app.ok(set_tier, json!({ "c": ana, "t": "vip" })).await;
    let read_ana = || async {
        app.ok(
            "query($id: ID!) { customer(id: $id) { tags pointsBalance } }",
            json!({ "id": ana }),
        )
        .await["customer"]
            .clone()
    };
    let ana_now = eventually("the VIP welcome", read_ana, |c| c["pointsBalance"] == 300).await;
    assert_eq!(ana_now["tags"], json!(["vip-welcome"]));

    // LIFECYCLE_CHANGED: a first purchase 200 days ago makes the customer AT_RISK.
    let ben = app.create_customer(json!({ "name": "Ben" })).await;
    record(&app, purchase(&ben, "1", Utc::now() - Days::days(200))).await;
    let read_ben = || async {
        app.ok(
            "query($id: ID!) { customer(id: $id) { lifecycleStage } }",
            json!({ "id": ben }),
        )
        .await;
        Value::from(bonuses(&ledger(&app, &ben).await))
    };
    eventually("the win-back bonus", read_ben, |b| b == 50).await;

    // REFERRAL_REWARDED: the referrer, once its friend first buys.
    let carl = app
        .ok(
            "mutation { createCustomer(input: { name: \"Carl\" }) { id referralCode } }",
            json!({}),
        )
        .await["createCustomer"]
        .clone();
    let friend = app
        .create_customer(json!({ "name": "Dee", "referralCode": carl["referralCode"] }))
        .await;
    record(&app, purchase(&friend, "10", Utc::now())).await;
    let carl_id = carl["id"].as_str().unwrap().to_owned();
    let read_carl = || async { Value::from(bonuses(&ledger(&app, &carl_id).await)) };
    eventually("the referral thanks", read_carl, |b| b == 70).await;

    // BIRTHDAY and POINTS_EXPIRING come from the reminders job; running it twice fires
    // each cause once.
    let eve = app
        .create_customer(
            json!({ "name": "Eve", "birthday": format!("1990-{}", today.format("%m-%d")) }),
        )
        .await;
    let fay = app.create_customer(json!({ "name": "Fay" })).await;
    // 365-day expiry: bought 360 days ago, the lot expires in 5 days; 300 days ago, in 65.
    record(&app, purchase(&fay, "30", Utc::now() - Days::days(360))).await;
    let gus = app.create_customer(json!({ "name": "Gus" })).await;
    record(&app, purchase(&gus, "30", Utc::now() - Days::days(300))).await;
    for _ in 0..2 {
        tierwise_api::jobs::reminders::send_reminders(&app.db, app.db.conn(), Utc::now())
            .await
            .expect("reminders");
    }
    assert_eq!(bonuses(&ledger(&app, &eve).await), 20);
    let tags = |id: String| {
        let app = &app;
        async move {
            app.ok(
                "query($id: ID!) { customer(id: $id) { tags } }",
                json!({ "id": id }),
            )
            .await["customer"]["tags"]
                .clone()
        }
    };
    assert_eq!(tags(fay.clone()).await, json!(["points-expiring"]));
    assert_eq!(tags(gus.clone()).await, json!([]));

    // Ben, Fay and Gus all bought long ago: each became AT_RISK once.
    let read_win_back = || async { campaign(&app, &win_back).await };
    eventually("three win-backs", read_win_back, |c| c["timesFired"] == 3).await;
    // Each campaign fired once per cause, whatever ran twice.
    for (id, fired) in [
        (&vip_tag, 1),
        (&referral, 1),
        (&birthday, 1),
        (&expiring, 1),
    ] {
        let stats = campaign(&app, id).await;
        assert_eq!(stats["timesFired"], fired, "{stats:#}");
    }
    // A paused campaign fires no more: another move to VIP pays nothing.
    change_status(&app, "pauseCampaign", &vip_tag).await;
    let ida = app.create_customer(json!({ "name": "Ida" })).await;
    app.ok(set_tier, json!({ "c": ida, "t": "vip" })).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(bonuses(&ledger(&app, &ida).await), 0);
    assert_eq!(campaign(&app, &vip_tag).await["timesFired"], 1);
}

/// Evaluation runs as of past dates move customers between stages too: what they find
/// is the past, which fires nothing, and a customer moved into a stage and back and into
/// it again on one day fires once.
async fn campaigns_across_evaluation_runs_as_of_past_dates(app: TestApp) {
    let every_time = launch(
        &app,
        json!({ "name": "Each slip", "trigger": { "kind": "LIFECYCLE_CHANGED", "toStage": "AT_RISK" },
                "actions": [{ "kind": "NOTIFY", "message": "we miss you" }] }),
    )
    .await;
    let once = launch(
        &app,
        json!({ "name": "One gift", "trigger": { "kind": "LIFECYCLE_CHANGED", "toStage": "AT_RISK" },
                "actions": [{ "kind": "AWARD_POINTS", "points": 50 }], "limitPerCustomer": 50 }),
    )
    .await;
    let customer = app.create_customer(json!({ "name": "Slipping" })).await;
    // Bought 200 days ago: AT_RISK as it is recorded.
    record(
        &app,
        purchase(&customer, "10", Utc::now() - Days::days(200)),
    )
    .await;
    let fired = |id: String| {
        let app = &app;
        move || {
            let id = id.clone();
            async move { campaign(app, &id).await }
        }
    };
    eventually("the first slip", fired(every_time.clone()), |c| {
        c["timesFired"] == 1
    })
    .await;
    // Bought 400 days ago: CHURNED, and no slip.
    let gone = app.create_customer(json!({ "name": "Long gone" })).await;
    record(&app, purchase(&gone, "10", Utc::now() - Days::days(400))).await;
    // As of 150 days ago, "Slipping" had bought recently and "Long gone" was AT_RISK: a
    // run as of then replays the past, which is not news and fires nothing. A run as of
    // now puts them back (AT_RISK and CHURNED): "Slipping" slips again on the same day,
    // which fires nothing either; nor does a rerun.
    let evaluate =
        "mutation($asOf: DateTime) { evaluateTiers(asOf: $asOf, wait: true) { status } }";
    let past = ts(Utc::now() - Days::days(150));
    assert_eq!(
        app.ok(evaluate, json!({ "asOf": past })).await["evaluateTiers"]["status"],
        "SUCCEEDED"
    );
    let stage = |id: String| {
        let app = &app;
        async move {
            app.ok(
                "query($id: ID!) { customer(id: $id) { lifecycleStage } }",
                json!({ "id": id }),
            )
            .await["customer"]["lifecycleStage"]
                .clone()
        }
    };
    assert_ne!(stage(customer.clone()).await, "AT_RISK");
    assert_eq!(stage(gone.clone()).await, "AT_RISK");
    for _ in 0..2 {
        assert_eq!(
            app.ok(evaluate, json!({ "asOf": null })).await["evaluateTiers"]["status"],
            "SUCCEEDED"
        );
    }
    assert_eq!(stage(customer.clone()).await, "AT_RISK");
    // The consumer has read the runs' events once a later event has been handled.
    let marker = app.create_customer(json!({ "name": "Marker" })).await;
    record(&app, purchase(&marker, "10", Utc::now() - Days::days(200))).await;
    eventually("the marker's slip", fired(every_time.clone()), |c| {
        c["timesFired"] == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let each = campaign(&app, &every_time).await;
    assert_eq!(each["customersReached"], 2, "{each:#}");
    let gift = campaign(&app, &once).await;
    assert_eq!(
        (gift["timesFired"].clone(), gift["pointsAwarded"].clone()),
        (json!(2), json!(100))
    );
    assert_eq!(bonuses(&ledger(&app, &customer).await), 50);
    assert_eq!(bonuses(&ledger(&app, &gone).await), 0);
}

async fn entering_a_segment_fires_live_or_after_an_evaluation_run(app: TestApp) {
    let early = app.create_customer(json!({ "name": "Already big" })).await;
    record(&app, purchase(&early, "900", Utc::now() - Days::days(1))).await;
    let segment = app
        .ok(
            "mutation($rule: JSON!) { createSegment(input: { name: \"Big spenders\", kind: DYNAMIC, rule: $rule }) { id } }",
            json!({ "rule": { "any": [
                { "field": "lifetimeSpend", "op": "gte", "value": 500 },
                { "field": "tags", "op": "contains", "value": "big" } ] } }),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = app
        .ok(
            "mutation { createSegment(input: { name: \"Welcomed\", kind: STATIC }) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = launch(
        &app,
        json!({
            "name": "Welcome big spenders",
            "trigger": { "kind": "ENTERED_SEGMENT", "segmentId": segment },
            "actions": [{ "kind": "AWARD_POINTS", "points": 40 }, { "kind": "ADD_TO_SEGMENT", "segmentId": list }]
        }),
    )
    .await;
    // A purchase that takes its customer into the segment fires in its own transaction.
    let late = app.create_customer(json!({ "name": "Newly big" })).await;
    let entered = record(&app, purchase(&late, "600", Utc::now() - Days::hours(1))).await;
    assert_eq!(bonuses(&ledger(&app, &late).await), 40);
    // The answer counts the entry's points with the purchase's own.
    assert_eq!(entered["pointsEarned"], 640, "{entered:#}");
    assert_eq!(entered["customer"]["pointsBalance"], 640);
    // While the campaign runs, its segment's rule and its list stay as they are.
    let widen = app
        .gql(
            Some(&app.staff()),
            "mutation($id: ID!) { updateSegment(id: $id, input: { name: \"Big spenders\", kind: DYNAMIC,
               rule: { field: \"score\", op: \"gte\", value: 0 } }) { id } }",
            json!({ "id": segment }),
        )
        .await;
    assert_error(&widen, "CONFLICT");
    for watched in [&segment, &list] {
        let deleted = app
            .gql(
                Some(&app.admin()),
                "mutation($id: ID!) { deleteSegment(id: $id) }",
                json!({ "id": watched }),
            )
            .await;
        assert_error(&deleted, "CONFLICT");
    }
    // A change no recording makes (a tag set by hand) is seen by the next evaluation run.
    let tagged = app.create_customer(json!({ "name": "Tagged big" })).await;
    app.ok(
        "mutation($id: ID!) { updateCustomer(id: $id, input: { tags: [\"big\"] }) { id } }",
        json!({ "id": tagged }),
    )
    .await;
    assert_eq!(bonuses(&ledger(&app, &tagged).await), 0);
    let run = "mutation { evaluateTiers(wait: true) { status } }";
    for _ in 0..2 {
        assert_eq!(
            app.ok(run, json!({})).await["evaluateTiers"]["status"],
            "SUCCEEDED"
        );
    }
    assert_eq!(bonuses(&ledger(&app, &tagged).await), 40);
    assert_eq!(
        bonuses(&ledger(&app, &late).await),
        40,
        "entered once, paid once"
    );
    assert_eq!(
        bonuses(&ledger(&app, &early).await),
        0,
        "it was in the segment before"
    );
    assert_eq!(campaign(&app, &id).await["timesFired"], 2);
    let members = app
        .ok(
            "query($id: ID!) { segment(id: $id) { members(first: 10) { nodes { id } } } }",
            json!({ "id": list }),
        )
        .await;
    let mut members: Vec<String> = members["segment"]["members"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    let mut expected = vec![late, tagged];
    expected.sort();
    assert_eq!(members, expected);
}

async fn notify_reaches_webhooks_and_subscribers(app: TestApp) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    create_endpoint(&app, &app.admin(), &url, json!(["automation.fired"])).await;
    let mut ws = Ws::open(&app, TRANSPORT, &app.staff()).await;
    ws.subscribe(
        "fired",
        "subscription { campaignFired { campaign { name } customer { name } message cause points } }",
        json!({}),
    )
    .await;
    let id = launch(
        &app,
        json!({
            "name": "Survey thanks",
            "trigger": { "kind": "INTERACTION", "interactionKinds": ["SURVEY"] },
            "actions": [{ "kind": "AWARD_POINTS", "points": 15 }, { "kind": "NOTIFY", "message": "Thanks for your answers" }]
        }),
    )
    .await;
    let customer = app.create_customer(json!({ "name": "Hana" })).await;
    let answered = record(&app, json!({ "customerId": customer, "kind": "SURVEY", "rating": 9, "occurredAt": ts(Utc::now()) })).await;
    assert_eq!(answered["pointsEarned"], 15);
    let interaction = answered["interaction"]["id"].as_str().unwrap().to_owned();
    let fired = ws.next_data("fired").await["campaignFired"].clone();
    assert_eq!(
        fired,
        json!({ "campaign": { "name": "Survey thanks" }, "customer": { "name": "Hana" },
                "message": "Thanks for your answers", "cause": format!("interaction:{interaction}"), "points": 15 })
    );
    let received = receiver
        .until(Duration::from_secs(20), |r| !r.is_empty())
        .await;
    let event = received[0].json();
    assert_eq!(event["type"], "automation.fired");
    assert_eq!(
        event["data"]["campaign"],
        json!({ "id": id, "name": "Survey thanks" })
    );
    assert_eq!(event["data"]["message"], "Thanks for your answers");
    assert_eq!(event["data"]["customer"]["id"], customer);
    // Partners may not watch campaigns.
    let mut partner = Ws::open(&app, TRANSPORT, &app.partner("events:subscribe")).await;
    partner
        .send_subscribe("p", "subscription { campaignFired { cause } }", json!({}))
        .await;
    let refused = partner.next_message().await;
    assert!(refused.to_string().contains("FORBIDDEN"), "{refused:#}");
}

/// History imported with `tierwise import` has no per-purchase `EARN` entries: a
/// simulated multiplier prices each purchase as the program now would.
async fn a_simulation_prices_imported_purchases_by_the_program(app: TestApp) {
    use crate::import::{CUSTOMERS, INTERACTIONS, files, run_import};
    run_import(&app, files(CUSTOMERS, INTERACTIONS, ""))
        .await
        .expect("the history imports");
    let simulated = app
        .ok(
            "query($input: CampaignInput!, $from: DateTime!, $to: DateTime!) {
               simulateCampaign(input: $input, from: $from, to: $to) {
                 timesFired customersReached pointsAwarded customers(first: 10) { externalRef } } }",
            json!({
                "input": { "name": "Double", "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"] },
                           "actions": [{ "kind": "MULTIPLY_POINTS", "multiplier": 2 }] },
                "from": "2025-02-01T00:00:00Z", "to": "2025-05-01T00:00:00Z"
            }),
        )
        .await["simulateCampaign"]
        .clone();
    // 100.50, 300 and 80 earn 100, 300 and 80 points at one a yuan: as much again.
    assert_eq!(
        simulated,
        json!({ "timesFired": 3, "customersReached": 2, "pointsAwarded": 480,
                "customers": [{ "externalRef": "A-1" }, { "externalRef": "A-2" }] })
    );
}

/// Two server processes on one database both read every committed tier change: the
/// campaign pays once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_a_cause_once() {
    use crate::helpers::{Backend, ServerProcess, TestDatabase, token};
    let Some(database) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let (first, second) = ServerProcess::pair(&database.url, &[]).await;
    let admin = token("admin");
    let created = first
        .ok(
            &admin,
            "mutation($input: CampaignInput!) { createCampaign(input: $input) { id } }",
            json!({ "input": { "name": "VIP welcome", "trigger": { "kind": "TIER_CHANGED", "toTierKey": "vip" },
                               "actions": [{ "kind": "AWARD_POINTS", "points": 300 }] } }),
        )
        .await;
    let id = created["createCampaign"]["id"].as_str().unwrap().to_owned();
    second
        .ok(
            &admin,
            "mutation($id: ID!) { activateCampaign(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    let mut customers = Vec::new();
    for n in 0..5 {
        let made = first
            .ok(
                &admin,
                "mutation($name: String!) { createCustomer(input: { name: $name }) { id } }",
                json!({ "name": format!("Twice {n}") }),
            )
            .await;
        let customer = made["createCustomer"]["id"].as_str().unwrap().to_owned();
        let server = if n % 2 == 0 { &first } else { &second };
        server
            .ok(
                &admin,
                "mutation($c: ID!) { setCustomerTier(customerId: $c, tierKey: \"vip\", note: \"t\") { id } }",
                json!({ "c": customer }),
            )
            .await;
        customers.push(customer);
    }
    let stats = "query($id: ID!) { campaign(id: $id) { timesFired pointsAwarded } }";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = first.ok(&admin, stats, json!({ "id": id })).await;
        if now["campaign"]["timesFired"] == 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both replicas have read the changes by now: still one firing each.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let settled = second.ok(&admin, stats, json!({ "id": id })).await;
    assert_eq!(
        settled["campaign"],
        json!({ "timesFired": 5, "pointsAwarded": 1500 })
    );
    for customer in &customers {
        let balance = first
            .ok(
                &admin,
                "query($id: ID!) { customer(id: $id) { pointsBalance } }",
                json!({ "id": customer }),
            )
            .await;
        assert_eq!(balance["customer"]["pointsBalance"], 300);
    }
}

/// The history both databases get: purchases on different weekdays, amounts and
/// customers, in time order.
fn history(start: DateTime<Utc>) -> Vec<(usize, &'static str, DateTime<Utc>)> {
    let mut purchases = Vec::new();
    let amounts = ["12.5", "80", "200", "7", "55.55", "130"];
    for i in 0..60usize {
        let at = start + Days::hours(9 * i as i64 + 3);
        purchases.push((i % 7, amounts[i % amounts.len()], at));
    }
    purchases
}

const REGIONS: [&str; 7] = [
    "Shanghai", "Beijing", "Shanghai", "Shenzhen", "Shanghai", "Beijing", "Shanghai",
];

async fn customers_of(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        ids.push(
            app.create_customer(json!({ "name": format!("Sim {i}"), "externalRef": format!("SIM-{i}"), "region": region }))
                .await,
        );
    }
    ids
}

async fn simulation_equals_reality(app: TestApp) {
    // Fixed dates: the same purchases fall on the same weekdays whenever this runs.
    let start: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    let end = start + Days::days(30);
    let campaign = json!({
        "name": "Fridays and Saturdays in Shanghai",
        "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"], "daysOfWeek": [5, 6], "minAmount": "10" },
        "condition": { "field": "region", "op": "eq", "value": "Shanghai" },
        "actions": [{ "kind": "MULTIPLY_POINTS", "multiplier": 2.5 }, { "kind": "AWARD_POINTS", "points": 3 }],
        "limitPerCustomer": 250,
        "budgetPoints": 600
    });
    // The past, recorded without the campaign.
    let ids = customers_of(&app).await;
    for (who, amount, at) in history(start) {
        record(&app, purchase(&ids[who], amount, at)).await;
    }
    let simulated = app
        .ok(
            "query($input: CampaignInput!, $from: DateTime!, $to: DateTime!) {
               simulateCampaign(input: $input, from: $from, to: $to) {
                 timesFired customersReached pointsAwarded budgetExhaustedAt
                 byDay { date timesFired pointsAwarded } customers(first: 100) { externalRef } } }",
            json!({ "input": campaign, "from": ts(start), "to": ts(end) }),
        )
        .await["simulateCampaign"]
        .clone();
    // Fridays and Saturdays of October 2026 spend the budget of 600 to its last point on
    // 16 October, the 12:00 purchase.
    assert!(
        simulated["timesFired"].as_i64().unwrap() > 3,
        "{simulated:#}"
    );
    assert_eq!(simulated["pointsAwarded"], 600, "{simulated:#}");
    assert_eq!(simulated["budgetExhaustedAt"], "2026-10-16T12:00:00Z");

    // The same history recorded into a fresh database with the campaign live.
    let fresh = spawn_app(app.backend()).await.expect("a second database");
    let id = launch(&fresh, campaign).await;
    let ids = customers_of(&fresh).await;
    for (who, amount, at) in history(start) {
        record(&fresh, purchase(&ids[who], amount, at)).await;
    }
    let live = self::campaign(&fresh, &id).await;
    assert_eq!(
        live["timesFired"], simulated["timesFired"],
        "{live:#} {simulated:#}"
    );
    assert_eq!(live["customersReached"], simulated["customersReached"]);
    assert_eq!(live["pointsAwarded"], simulated["pointsAwarded"]);
    assert_eq!(
        live["budgetExhaustedAt"].is_null(),
        simulated["budgetExhaustedAt"].is_null(),
        "{live:#} {simulated:#}"
    );
    let reached: BTreeSet<String> = simulated["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["externalRef"].as_str().unwrap().to_owned())
        .collect();
    let mut paid = BTreeSet::new();
    let mut points = 0;
    for (i, customer) in ids.iter().enumerate() {
        let bonus = bonuses(&ledger(&fresh, customer).await);
        if bonus > 0 {
            paid.insert(format!("SIM-{i}"));
        }
        points += bonus;
    }
    assert_eq!(paid, reached);
    assert_eq!(Value::from(points), simulated["pointsAwarded"]);
    let by_day: i64 = simulated["byDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointsAwarded"].as_i64().unwrap())
        .sum();
    assert_eq!(Value::from(by_day), simulated["pointsAwarded"]);
}

async fn campaigns_cost_a_fixed_number_of_statements(app: TestApp) {
    let list = app
        .ok(
            "mutation { createSegment(input: { name: \"Tagged\", kind: STATIC }) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let interaction = |name: &str, actions: Value| {
        json!({ "name": name, "trigger": { "kind": "INTERACTION", "interactionKinds": ["PURCHASE"] },
                "actions": actions })
    };
    let mut with_condition = interaction(
        "In Shanghai",
        json!([{ "kind": "AWARD_POINTS", "points": 5 }]),
    );
    with_condition["condition"] = json!({ "field": "region", "op": "eq", "value": "Shanghai" });
    let mut limited = interaction(
        "Capped",
        json!([{ "kind": "MULTIPLY_POINTS", "multiplier": 1.5 }]),
    );
    limited["limitPerCustomer"] = json!(1000);
    limited["budgetPoints"] = json!(100000);
    launch(&app, with_condition).await;
    launch(&app, limited).await;
    launch(
        &app,
        interaction(
            "Tag and list",
            json!([{ "kind": "ADD_TAG", "tag": "buyer" }, { "kind": "ADD_TO_SEGMENT", "segmentId": list },
                   { "kind": "NOTIFY", "message": "hi" }]),
        ),
    )
    .await;
    for n in 0..20 {
        create(
            &app,
            interaction(
                &format!("Draft {n}"),
                json!([{ "kind": "AWARD_POINTS", "points": 1 }]),
            ),
        )
        .await;
    }
    let mut ids = Vec::new();
    for n in 0..200 {
        let region = if n % 2 == 0 { "Shanghai" } else { "Beijing" };
        ids.push(
            app.create_customer(json!({ "name": format!("Batch {n}"), "region": region }))
                .await,
        );
    }
    let inputs: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "customerId": id, "kind": "PURCHASE", "amount": "100.00" }))
        .collect();
    let before = app.db.statement_count();
    app.ok(
        "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { pointsEarned } }",
        json!({ "inputs": inputs }),
    )
    .await;
    let batch = app.db.statement_count() - before;
    // 30 for the batch itself (tests/api/batches.rs), and a fixed number per campaign.
    assert!(
        batch <= 50,
        "{batch} statements for 200 purchases firing 3 campaigns"
    );
    let tagged = app
        .ok(
            "query($id: ID!) { customer(id: $id) { tags pointsBalance } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(
        tagged["customer"],
        json!({ "tags": ["buyer"], "pointsBalance": 155 })
    );

    let before = app.db.statement_count();
    let page = app
        .ok(&format!("{{ campaigns {{ {CAMPAIGN} }} }}"), json!({}))
        .await;
    let read = app.db.statement_count() - before;
    assert_eq!(page["campaigns"].as_array().unwrap().len(), 23);
    assert!(
        read <= 3,
        "{read} statements for a page of 23 campaigns with their totals"
    );
    let capped = page["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Capped")
        .unwrap()
        .clone();
    assert_eq!(capped["timesFired"], 200);
    assert_eq!(capped["pointsAwarded"], 10000);
}

on_both!(
    a_simulation_prices_imported_purchases_by_the_program,
    a_full_batch_fires_many_campaigns,
    campaigns_cost_a_fixed_number_of_statements,
    campaigns_are_managed_by_admins_and_read_by_staff,
    member_day_doubles_points_on_the_programs_weekday,
    budget_and_limit_hold_under_parallel_purchases,
    automations_fire_once_for_each_cause,
    campaigns_across_evaluation_runs_as_of_past_dates,
    entering_a_segment_fires_live_or_after_an_evaluation_run,
    notify_reaches_webhooks_and_subscribers,
    simulation_equals_reality,
);
