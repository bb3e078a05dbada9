//! The points lifecycle, end to end: pending points inside a return window
//! (`pendingDays`), transfers between members, member merge, and the expiry policies.
//!
//! Every scenario ends by checking the ledger's promise for each customer involved
//! (`assert_points_add_up`): the balance is the sum of the entries whose points are
//! spendable, and the pending points the sum of those that are not yet.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use serde_json::{Value, json};

use entity::enums::EventTopic;
use entity::event_outbox;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::helpers::{TestApp, assert_error, error_code, instant, on_both, ts};
use crate::ledger::ledger;
use crate::ws_client::{TRANSPORT, Ws};

const ENTRY: &str =
    "id customer { id } kind delta balanceAfter reason expiresAt availableAt createdAt";

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { pointsEarned customer { id pointsBalance pointsPending } }
}";

const POINTS: &str = "query($id: ID!) { customer(id: $id) { id pointsBalance pointsPending } }";

const TRANSFER: &str = "mutation($input: TransferPointsInput!) {
  transferPoints(input: $input) { id points from { id } to { id name } createdAt }
}";

const MERGE: &str = "mutation($s: ID!, $m: ID!, $key: String) {
  mergeCustomers(survivorId: $s, mergedId: $m, idempotencyKey: $key) {
    id pointsBalance pointsPending mergedIds tags tier { key }
    metrics { purchaseCount lifetimeSpend }
    tierHistory(first: 1) { nodes { reason from { key } to { key } } }
  }
}";

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

async fn settings(app: &TestApp, input: Value) {
    let query = "mutation($input: ProgramSettingsInput!) { updateProgramSettings(input: $input) {
        pendingDays pointsExpiryPolicy pointsExpiryYears transfersEnabled maxTransferPerMonth } }";
    app.ok(query, json!({ "input": input })).await;
}

async fn customer(app: &TestApp, name: &str, external_ref: &str) -> String {
    app.create_customer(json!({ "name": name, "externalRef": external_ref }))
        .await
}

/// Records a purchase as admin; returns the payload.
async fn buy(app: &TestApp, id: &str, amount: i64, at: DateTime<Utc>, order: &str) -> Value {
    let input = json!({
        "customerId": id, "kind": "PURCHASE", "amount": amount.to_string(),
        "occurredAt": ts(at), "orderRef": order,
    });
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone()
}

async fn refund(app: &TestApp, id: &str, amount: i64, order: &str) -> Value {
    let input = json!({
        "customerId": id, "kind": "REFUND", "amount": amount.to_string(), "orderRef": order,
    });
    app.ok(RECORD, json!({ "input": input })).await["recordInteraction"].clone()
}

async fn adjust(app: &TestApp, id: &str, delta: i64) {
    let query = "mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) { id } }";
    let input = json!({ "customerId": id, "delta": delta, "reason": "opening balance" });
    app.ok(query, json!({ "input": input })).await;
}

/// `(pointsBalance, pointsPending)`.
async fn points(app: &TestApp, id: &str) -> (i64, i64) {
    let customer = app.ok(POINTS, json!({ "id": id })).await["customer"].clone();
    (
        customer["pointsBalance"].as_i64().expect("a balance"),
        customer["pointsPending"].as_i64().expect("pending points"),
    )
}

async fn entries(app: &TestApp, id: &str) -> Vec<Value> {
    let query = format!(
        "query($id: ID!) {{ customer(id: $id) {{ pointsLedger(first: 100) {{ nodes {{ {ENTRY} }} }} }} }}"
    );
    app.ok(&query, json!({ "id": id })).await["customer"]["pointsLedger"]["nodes"]
        .as_array()
        .expect("entries")
        .clone()
}

/// The ledger's promise for `id`: its balance is the sum of the entries whose points are
/// spendable (no `availableAt`, or one that has passed), its pending points the sum of
/// the rest; the whole ledger walks page by page. Returns `(balance, pending)`.
async fn assert_points_add_up(app: &TestApp, id: &str) -> (i64, i64) {
    // Activation runs every few seconds: a lot due a moment ago may still be pending.
    let mut last = None;
    for _ in 0..60 {
        let (walked, _) = ledger(app, id).await;
        let all = entries(app, id).await;
        assert_eq!(walked.len(), all.len(), "the paged walk sees every entry");
        let (balance, pending) = points(app, id).await;
        let at = now();
        let (mut available, mut waiting) = (0, 0);
        for entry in &all {
            let delta = entry["delta"].as_i64().expect("a delta");
            match entry["availableAt"].as_str() {
                Some(_) if instant(&entry["availableAt"]) > at => waiting += delta,
                _ => available += delta,
            }
        }
        if (balance, pending) == (available, waiting) {
            assert!(pending >= 0, "pending points are never negative");
            return (balance, pending);
        }
        last = Some(((balance, pending), (available, waiting), all));
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("the points of {id} do not add up (shown, from entries): {last:#?}");
}

async fn reward(app: &TestApp, cost: i64) -> String {
    let query = "mutation($input: RewardInput!) { createReward(input: $input) { id } }";
    app.ok(
        query,
        json!({ "input": { "name": "Mug", "costPoints": cost } }),
    )
    .await["createReward"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

async fn try_redeem(app: &TestApp, id: &str, reward: &str) -> Value {
    let query =
        "mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { pointsSpent } }";
    app.gql(
        Some(&app.admin()),
        query,
        json!({ "input": { "customerId": id, "rewardId": reward } }),
    )
    .await
}

/// The whole body of a request as admin, errors included.
async fn as_admin(app: &TestApp, query: &str, variables: Value) -> Value {
    app.gql(Some(&app.admin()), query, variables).await
}

// ---------------------------------------------------------------------------------------
// Pending points

async fn pending_points_activate_on_time(app: TestApp) {
    settings(&app, json!({ "pendingDays": 14 })).await;
    let ana = customer(&app, "Ana", "ana").await;
    // Bought 14 days ago less four seconds: its window closes in four seconds.
    let bought = now() - days(14) + Duration::seconds(4);
    let payload = buy(&app, &ana, 100, bought, "o-1").await;
    assert_eq!(payload["pointsEarned"], 100, "{payload:#}");
    assert_eq!(payload["customer"]["pointsBalance"], 0, "{payload:#}");
    assert_eq!(payload["customer"]["pointsPending"], 100, "{payload:#}");
    let earn = &entries(&app, &ana).await[0];
    assert_eq!(earn["kind"], "EARN");
    assert_eq!(instant(&earn["availableAt"]), bought + days(14), "{earn:#}");
    assert_eq!(
        earn["balanceAfter"], 0,
        "a pending entry leaves the balance: {earn:#}"
    );
    // Pending points cannot be spent.
    let mug = reward(&app, 60).await;
    assert_error(&try_redeem(&app, &ana, &mug).await, "INSUFFICIENT_POINTS");
    // Ana's app listens for her points moving.
    let mut ws = Ws::open(&app, TRANSPORT, &app.customer_token(&ana)).await;
    ws.subscribe(
        "points",
        "subscription { pointsChanged { id kind delta availableAt customer { id pointsBalance pointsPending } } }",
        json!({}),
    )
    .await;
    // Nobody runs anything: they activate by themselves.
    let mut waited = 0;
    while points(&app, &ana).await != (100, 0) {
        assert!(waited < 80, "activated within 20 s of availableAt");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        waited += 1;
    }
    // The activation is announced, naming the entry whose points became spendable.
    let announced = loop {
        let message = ws.next_message().await;
        let changed = message["payload"]["data"]["pointsChanged"].clone();
        if changed["customer"]["pointsBalance"] == 100 {
            break changed;
        }
    };
    assert_eq!(announced["id"], earn["id"], "{announced:#}");
    assert_eq!(announced["kind"], "EARN");
    assert_eq!(announced["customer"]["pointsPending"], 0);
    drop(ws);
    assert_eq!(
        try_redeem(&app, &ana, &mug).await["data"]["redeemReward"]["pointsSpent"],
        60
    );
    // A purchase whose window closed before it was recorded is spendable at once.
    let old = buy(&app, &ana, 30, now() - days(20), "o-2").await;
    assert_eq!(old["customer"]["pointsBalance"], 70, "{old:#}");
    assert_eq!(old["customer"]["pointsPending"], 0, "{old:#}");
    assert!(entries(&app, &ana).await[0]["availableAt"].is_null());
    assert_eq!(assert_points_add_up(&app, &ana).await, (70, 0));
}

async fn refunds_inside_the_window_cancel_pending_points(app: TestApp) {
    settings(&app, json!({ "pendingDays": 14 })).await;
    let bo = customer(&app, "Bo", "bo").await;
    adjust(&app, &bo, 30).await;
    buy(&app, &bo, 100, now() - days(1), "o-1").await;
    assert_eq!(points(&app, &bo).await, (30, 100));
    // A refund of 40 inside the window takes 40 pending points, not the balance.
    let first = refund(&app, &bo, 40, "o-1").await;
    assert_eq!(first["pointsEarned"], -40, "{first:#}");
    assert_eq!(points(&app, &bo).await, (30, 60));
    let reversal = &entries(&app, &bo).await[0];
    assert_eq!(reversal["kind"], "REVERSAL");
    assert_eq!(reversal["delta"], -40);
    assert!(reversal["availableAt"].is_string(), "{reversal:#}");
    // The rest of the order: nothing pending is left, the balance is untouched.
    refund(&app, &bo, 60, "o-1").await;
    assert_eq!(points(&app, &bo).await, (30, 0));
    // After the window a refund takes spendable points.
    buy(&app, &bo, 50, now() - days(30), "o-2").await;
    assert_eq!(points(&app, &bo).await, (80, 0));
    refund(&app, &bo, 50, "o-2").await;
    assert_eq!(points(&app, &bo).await, (30, 0));
    assert_eq!(assert_points_add_up(&app, &bo).await, (30, 0));
    // Tiers and scores ignore pending status: the purchases count as any would.
    let metrics = app
        .ok(
            "query($id: ID!) { customer(id: $id) { metrics { purchaseCount } } }",
            json!({ "id": bo }),
        )
        .await;
    assert_eq!(metrics["customer"]["metrics"]["purchaseCount"], 2);
}

// ---------------------------------------------------------------------------------------
// Transfers

async fn referral_code(app: &TestApp, id: &str) -> String {
    app.ok(
        "query($id: ID!) { customer(id: $id) { referralCode } }",
        json!({ "id": id }),
    )
    .await["customer"]["referralCode"]
        .as_str()
        .expect("a code")
        .to_owned()
}

async fn transfers_carry_expiry_and_keep_to_their_limits(app: TestApp) {
    let cara = customer(&app, "Cara", "cara").await;
    let dan = customer(&app, "Dan", "dan").await;
    let dan_code = referral_code(&app, &dan).await;
    let older = now() - days(300);
    let newer = now() - days(100);
    buy(&app, &cara, 200, older, "c-1").await;
    buy(&app, &cara, 100, newer, "c-2").await;
    let as_cara = app.customer_token(&cara);
    let give = |points: i64, key: &str| {
        json!({ "input": {
            "fromCustomerId": cara, "toReferralCode": dan_code, "points": points,
            "note": "for the family", "idempotencyKey": key,
        } })
    };
    // Off by default.
    assert_error(
        &app.gql(Some(&as_cara), TRANSFER, give(10, "k0")).await,
        "FORBIDDEN",
    );
    settings(
        &app,
        json!({ "transfersEnabled": true, "maxTransferPerMonth": 400 }),
    )
    .await;
    let sent = app.ok_as(&as_cara, TRANSFER, give(250, "k1")).await["transferPoints"].clone();
    assert_eq!(sent["points"], 250);
    assert_eq!(sent["from"]["id"], cara.as_str());
    assert_eq!(sent["to"]["id"], dan.as_str());
    // The sender sees the recipient's public view only.
    assert!(
        sent["to"]["name"].as_str().is_some_and(|n| n != "Dan"),
        "{sent:#}"
    );
    // A retry with the same key is the same transfer.
    let again = app.ok_as(&as_cara, TRANSFER, give(250, "k1")).await["transferPoints"].clone();
    assert_eq!(again["id"], sent["id"]);
    assert_eq!(points(&app, &cara).await, (50, 0));
    assert_eq!(points(&app, &dan).await, (250, 0));
    // The soonest-expiring lot went first, each keeping its date.
    let received: Vec<(i64, DateTime<Utc>)> = entries(&app, &dan)
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "TRANSFER_IN", "{e:#}");
            (e["delta"].as_i64().unwrap(), instant(&e["expiresAt"]))
        })
        .collect();
    let mut received = received;
    received.sort();
    assert_eq!(
        received,
        vec![(50, newer + days(365)), (200, older + days(365))]
    );
    let out = &entries(&app, &cara).await[0];
    assert_eq!(
        (out["kind"].as_str(), out["delta"].as_i64()),
        (Some("TRANSFER_OUT"), Some(-250))
    );
    // Dan's 200 points from the older lot expire within 70 days, as they would have.
    let expiring = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsExpiring(withinDays: 70) } }",
            json!({ "id": dan }),
        )
        .await;
    assert_eq!(expiring["customer"]["pointsExpiring"], 200);

    // Limits and restrictions.
    buy(&app, &cara, 500, now() - days(1), "c-3").await;
    let over = app.gql(Some(&as_cara), TRANSFER, give(151, "k2")).await;
    assert_error(&over, "BAD_USER_INPUT");
    assert!(
        crate::helpers::error_message(&over).contains("150 left"),
        "{over:#}"
    );
    let by_id = json!({ "input": { "fromCustomerId": cara, "toCustomerId": dan, "points": 1 } });
    assert_error(
        &app.gql(Some(&as_cara), TRANSFER, by_id.clone()).await,
        "BAD_USER_INPUT",
    );
    let as_dan = app.customer_token(&dan);
    assert_error(
        &app.gql(Some(&as_dan), TRANSFER, give(1, "k3")).await,
        "FORBIDDEN",
    );
    let to_self = json!({ "input": { "fromCustomerId": cara, "toCustomerId": cara, "points": 1 } });
    assert_error(&as_admin(&app, TRANSFER, to_self).await, "BAD_USER_INPUT");
    let too_much =
        json!({ "input": { "fromCustomerId": dan, "toCustomerId": cara, "points": 251 } });
    assert_error(
        &as_admin(&app, TRANSFER, too_much).await,
        "INSUFFICIENT_POINTS",
    );
    for bad in [0, -5, 1_000_000_001] {
        let input =
            json!({ "input": { "fromCustomerId": dan, "toCustomerId": cara, "points": bad } });
        assert_error(&as_admin(&app, TRANSFER, input).await, "BAD_USER_INPUT");
    }
    // Staff may transfer for anyone, by id; the monthly limit is the sender's.
    let staff = app.ok_as(&app.staff(), TRANSFER, by_id).await["transferPoints"].clone();
    assert_eq!(staff["points"], 1);
    for id in [&cara, &dan] {
        assert_points_add_up(&app, id).await;
    }
}

async fn parallel_transfers_in_both_directions_stay_exact(app: TestApp) {
    settings(&app, json!({ "transfersEnabled": true })).await;
    let eve = customer(&app, "Eve", "eve").await;
    let fay = customer(&app, "Fay", "fay").await;
    adjust(&app, &eve, 200).await;
    adjust(&app, &fay, 50).await;
    let mut calls = Vec::new();
    for n in 0..50 {
        let (from, to) = if n % 2 == 0 {
            (&eve, &fay)
        } else {
            (&fay, &eve)
        };
        let variables =
            json!({ "input": { "fromCustomerId": from, "toCustomerId": to, "points": 20 } });
        let app = &app;
        calls.push(async move {
            let body = app.gql(Some(&app.admin()), TRANSFER, variables).await;
            (n % 2 == 0, body)
        });
    }
    let results = futures_util::future::join_all(calls).await;
    let (mut eve_to_fay, mut fay_to_eve) = (0, 0);
    for (from_eve, body) in &results {
        match error_code(body) {
            None => {
                if *from_eve {
                    eve_to_fay += 1;
                } else {
                    fay_to_eve += 1;
                }
            }
            Some("INSUFFICIENT_POINTS") => {}
            Some(other) => {
                panic!("only INSUFFICIENT_POINTS may refuse a transfer, not {other}: {body:#}")
            }
        }
    }
    let eve_points = assert_points_add_up(&app, &eve).await.0;
    let fay_points = assert_points_add_up(&app, &fay).await.0;
    assert_eq!(eve_points + fay_points, 250, "no point is made or lost");
    assert_eq!(eve_points, 200 - 20 * eve_to_fay + 20 * fay_to_eve);
    assert!(eve_points >= 0 && fay_points >= 0);
    assert!(eve_to_fay + fay_to_eve >= 25, "most transfers go through");
}

// ---------------------------------------------------------------------------------------
// Merge

async fn merging_moves_everything_and_leaves_a_tombstone(app: TestApp) {
    settings(&app, json!({ "pendingDays": 14 })).await;
    let sam = customer(&app, "Sam", "sam").await;
    let max = customer(&app, "Max", "max-dup").await;
    let max_code = referral_code(&app, &max).await;
    // Max referred Ria; Max is in a static segment and tagged; Max holds a lot expiring
    // in 65 days, pending points, and the higher tier.
    let ria = app
        .create_customer(json!({ "name": "Ria", "referralCode": max_code }))
        .await;
    app.ok(
        "mutation($id: ID!) { updateCustomer(id: $id, input: { tags: [\"vip-desk\"] }) { id } }",
        json!({ "id": max }),
    )
    .await;
    let segment = app
        .ok(
            "mutation { createSegment(input: { name: \"Hand-picked\", kind: STATIC }) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .clone();
    app.ok(
        "mutation($s: ID!, $c: [ID!]!) { addSegmentMembers(segmentId: $s, customerIds: $c) { id } }",
        json!({ "s": segment, "c": [max] }),
    )
    .await;
    let old = now() - days(300);
    buy(&app, &max, 120, old, "m-1").await;
    buy(&app, &max, 80, now() - days(2), "m-2").await;
    buy(&app, &sam, 10, now() - days(40), "s-1").await;
    app.ok(
        "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"test\") { id } }",
        json!({ "id": max }),
    )
    .await;
    assert_eq!(points(&app, &max).await, (120, 80));

    // Staff may not merge.
    let vars = json!({ "s": sam, "m": max, "key": "merge-1" });
    assert_error(
        &app.gql(Some(&app.staff()), MERGE, vars.clone()).await,
        "FORBIDDEN",
    );
    let merged = app.ok(MERGE, vars.clone()).await["mergeCustomers"].clone();
    assert_eq!(merged["id"], sam.as_str());
    assert_eq!(merged["mergedIds"], json!([max]));
    assert_eq!(merged["pointsBalance"], 130, "{merged:#}");
    assert_eq!(merged["pointsPending"], 80, "{merged:#}");
    assert_eq!(merged["tags"], json!(["vip-desk"]));
    assert_eq!(
        merged["tier"]["key"], "vip",
        "the survivor keeps the higher tier"
    );
    assert_eq!(merged["metrics"]["purchaseCount"], 3);
    let change = &merged["tierHistory"]["nodes"][0];
    assert_eq!(change["reason"], "MERGE", "{change:#}");
    assert_eq!(change["to"]["key"], "vip");
    // The lot moved with its date: 120 points still expire 65 days from now.
    let expiring = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsExpiring(withinDays: 66) } }",
            json!({ "id": sam }),
        )
        .await;
    assert_eq!(expiring["customer"]["pointsExpiring"], 120);
    // Referrals and segment memberships moved.
    let sam_view = app
        .ok(
            "query($id: ID!, $ria: ID!) {
               customer(id: $id) { referrals { referee { id } } segments { id } }
               ria: customer(id: $ria) { referredBy { id } } }",
            json!({ "id": sam, "ria": ria }),
        )
        .await;
    assert_eq!(
        sam_view["customer"]["referrals"][0]["referee"]["id"],
        ria.as_str()
    );
    assert_eq!(sam_view["customer"]["segments"], json!([{ "id": segment }]));
    assert_eq!(sam_view["ria"]["referredBy"]["id"], sam.as_str());

    // The tombstone: its id and external reference find the survivor, writes go there.
    let found = app
        .ok(
            "query($id: ID!) { customer(id: $id) { id } customerByExternalRef(externalRef: \"max-dup\") { id } }",
            json!({ "id": max }),
        )
        .await;
    assert_eq!(found["customer"]["id"], sam.as_str());
    assert_eq!(found["customerByExternalRef"]["id"], sam.as_str());
    let by_ref = app
        .ok(
            RECORD,
            json!({ "input": { "customerExternalRef": "max-dup", "kind": "VISIT" } }),
        )
        .await;
    assert_eq!(by_ref["recordInteraction"]["customer"]["id"], sam.as_str());
    let by_id = buy(&app, &max, 5, now() - days(30), "m-3").await;
    assert_eq!(by_id["customer"]["id"], sam.as_str());
    // Earned at the survivor's (VIP) multiplier.
    let earned = by_id["pointsEarned"].as_i64().expect("points");
    assert!(earned > 5, "{by_id:#}");
    adjust(&app, &max, 1).await;
    let balance = 130 + earned + 1;
    assert_eq!(points(&app, &sam).await.0, balance);
    // Lists show the survivor only.
    let listed = app
        .ok(
            "{ customers(first: 50) { totalCount nodes { id } } }",
            json!({}),
        )
        .await["customers"]
        .clone();
    let ids: HashSet<&str> = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(
        !ids.contains(max.as_str()) && ids.contains(sam.as_str()),
        "{listed:#}"
    );
    assert_eq!(listed["totalCount"], 2);

    // Replays and refusals: nothing moves twice.
    let replay = app.ok(MERGE, vars).await["mergeCustomers"].clone();
    assert_eq!(replay["pointsBalance"], balance);
    let again = app.ok(MERGE, json!({ "s": sam, "m": max })).await["mergeCustomers"].clone();
    assert_eq!(again["pointsBalance"], balance);
    assert_error(
        &as_admin(&app, MERGE, json!({ "s": max, "m": sam })).await,
        "CONFLICT",
    );
    assert_error(
        &as_admin(&app, MERGE, json!({ "s": sam, "m": sam })).await,
        "BAD_USER_INPUT",
    );
    assert_error(
        &as_admin(&app, MERGE, json!({ "s": ria, "m": max })).await,
        "CONFLICT",
    );
    for id in [&sam, &max, &ria] {
        assert_points_add_up(&app, id).await;
    }
    let (tombstone_balance, tombstone_pending) = points_of_row(&app, &max).await;
    assert_eq!((tombstone_balance, tombstone_pending), (0, 0));

    // One `CUSTOMER_MERGED` event for each of the two customers, however often the
    // merge was asked for: webhooks and consumers following either id learn of it.
    let merged_events: Vec<String> = event_outbox::Entity::find()
        .filter(event_outbox::Column::Topic.eq(EventTopic::CustomerMerged))
        .order_by_asc(event_outbox::Column::Id)
        .all(app.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.customer_id.expect("names a customer").to_string())
        .collect();
    assert_eq!(merged_events, [sam.clone(), max.clone()]);
}

/// A customer row's balance and pending points, read from the database (the API shows
/// the survivor for a merged id).
async fn points_of_row(app: &TestApp, id: &str) -> (i64, i64) {
    use sea_orm::EntityTrait;
    let row = entity::customer::Entity::find_by_id(uuid::Uuid::parse_str(id).unwrap())
        .one(app.db.conn())
        .await
        .expect("read")
        .expect("the row");
    (row.points_balance, row.points_pending)
}

// ---------------------------------------------------------------------------------------
// Expiry policies

async fn expiry_policies_follow_the_program_time_zone(app: TestApp) {
    let gus = customer(&app, "Gus", "gus").await;
    settings(
        &app,
        json!({ "pointsExpiryPolicy": "END_OF_YEAR", "pointsExpiryYears": 0 }),
    )
    .await;
    // 17:00 UTC on 31 December 2025 is already 2026 in Shanghai; 15:00 is not.
    let in_2026 = Utc.with_ymd_and_hms(2025, 12, 31, 17, 0, 0).unwrap();
    let in_2025 = Utc.with_ymd_and_hms(2025, 12, 31, 15, 0, 0).unwrap();
    buy(&app, &gus, 70, in_2026, "g-1").await;
    buy(&app, &gus, 30, in_2025, "g-2").await;
    let dates: Vec<Option<DateTime<Utc>>> = entries(&app, &gus)
        .await
        .iter()
        .map(|e| e["expiresAt"].as_str().map(|_| instant(&e["expiresAt"])))
        .collect();
    let end_2025 = Utc.with_ymd_and_hms(2025, 12, 31, 16, 0, 0).unwrap();
    let end_2026 = Utc.with_ymd_and_hms(2026, 12, 31, 16, 0, 0).unwrap();
    assert_eq!(dates, vec![Some(end_2025), Some(end_2026)]);
    // A run just after midnight in Shanghai expires the 2025 points only.
    let run = app
        .ok(
            "mutation($asOf: DateTime) { evaluateTiers(asOf: $asOf) { pointsExpired } }",
            json!({ "asOf": ts(end_2025 + Duration::minutes(1)) }),
        )
        .await;
    assert_eq!(run["evaluateTiers"]["pointsExpired"], 30);
    // A changed policy applies to points earned afterwards; earlier lots keep theirs.
    settings(&app, json!({ "pointsExpiryPolicy": "NEVER" })).await;
    buy(&app, &gus, 5, now() - days(1), "g-3").await;
    settings(
        &app,
        json!({ "pointsExpiryPolicy": "ROLLING", "pointsExpiryDays": 30 }),
    )
    .await;
    let bought = now() - days(1);
    buy(&app, &gus, 6, bought, "g-4").await;
    let latest = entries(&app, &gus).await;
    assert_eq!(instant(&latest[0]["expiresAt"]), bought + days(30));
    assert!(latest[1]["expiresAt"].is_null(), "{:#}", latest[1]);
    assert!(
        latest.iter().any(|e| e["expiresAt"]
            .as_str()
            .is_some_and(|_| instant(&e["expiresAt"]) == end_2026)),
        "the 2026 lot keeps its date"
    );
    // Years count on from the year earned: with 1, points earned in 2026 last to the
    // end of 2027.
    settings(
        &app,
        json!({ "pointsExpiryPolicy": "END_OF_YEAR", "pointsExpiryYears": 1 }),
    )
    .await;
    let mid_2026 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    buy(&app, &gus, 9, mid_2026, "g-5").await;
    let end_2027 = Utc.with_ymd_and_hms(2027, 12, 31, 16, 0, 0).unwrap();
    assert_eq!(
        instant(&entries(&app, &gus).await[0]["expiresAt"]),
        end_2027
    );
    for bad in [
        json!({ "pointsExpiryYears": 11 }),
        json!({ "pendingDays": -1 }),
        json!({ "maxTransferPerMonth": 0 }),
    ] {
        let body = as_admin(
            &app,
            "mutation($input: ProgramSettingsInput!) { updateProgramSettings(input: $input) { pendingDays } }",
            json!({ "input": bad }),
        )
        .await;
        assert_error(&body, "BAD_USER_INPUT");
    }
    assert_points_add_up(&app, &gus).await;
}

on_both!(
    pending_points_activate_on_time,
    refunds_inside_the_window_cancel_pending_points,
    transfers_carry_expiry_and_keep_to_their_limits,
    parallel_transfers_in_both_directions_stay_exact,
    merging_moves_everything_and_leaves_a_tombstone,
    expiry_policies_follow_the_program_time_zone,
);
