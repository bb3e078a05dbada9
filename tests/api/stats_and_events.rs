//! `programStats`, and the internal events every ledger entry and tier change leaves in
//! the outbox, in the same transaction, for the live-events relay.

use std::collections::HashSet;

use entity::event_outbox;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, on_both};

const STATS: &str = "{ programStats { customerCount pointsOutstanding
    tierDistribution { tier { key } count } lifecycleDistribution { stage count } } }";

const PURCHASE: &str = "mutation($id: ID!, $amount: Decimal!) {
    recordInteraction(input: { customerId: $id, kind: PURCHASE, amount: $amount }) {
        interaction { id } tierChange { id } } }";

fn count_of(list: &Value, field: &str, key: &str, name: &str) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| {
            let value = &item[field];
            value == name || value[key] == name
        })
        .map(|item| item["count"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("{name} is listed"))
}

async fn program_stats_count_customers_tiers_stages_and_points(app: TestApp) {
    let buyer = app.create_customer(json!({ "name": "Buyer" })).await;
    app.create_customer(json!({ "name": "Prospect 1" })).await;
    app.create_customer(json!({ "name": "Prospect 2" })).await;
    app.ok(PURCHASE, json!({ "id": buyer, "amount": "10000" }))
        .await;
    let stats = app.ok(STATS, json!({})).await["programStats"].clone();
    assert_eq!(stats["customerCount"], 3);
    assert_eq!(stats["pointsOutstanding"], 10_000);
    let tiers = &stats["tierDistribution"];
    assert_eq!(tiers.as_array().unwrap().len(), 3, "every tier, even empty");
    assert_eq!(count_of(tiers, "tier", "key", "potential"), 2);
    assert_eq!(count_of(tiers, "tier", "key", "regular"), 1);
    assert_eq!(count_of(tiers, "tier", "key", "vip"), 0);
    let stages = &stats["lifecycleDistribution"];
    assert_eq!(
        stages.as_array().unwrap().len(),
        5,
        "every stage, even empty"
    );
    assert_eq!(count_of(stages, "stage", "", "PROSPECT"), 2);
    assert_eq!(count_of(stages, "stage", "", "NEW"), 1);
    assert_eq!(count_of(stages, "stage", "", "CHURNED"), 0);

    let customer = app.customer_token(&buyer);
    assert_error(
        &app.gql(Some(&customer), STATS, json!({})).await,
        "FORBIDDEN",
    );
}

/// The outbox, oldest first, as (topic, subject id).
async fn outbox_rows(app: &TestApp) -> Vec<(String, String)> {
    event_outbox::Entity::find()
        .order_by_asc(event_outbox::Column::Id)
        .all(app.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.topic.as_str().to_owned(), e.subject_id.to_string()))
        .collect()
}

/// Every ledger entry, tier change and lifecycle move writes one outbox event in its
/// transaction.
async fn every_ledger_entry_and_tier_change_is_announced_once(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Announced" })).await;
    let created = outbox_rows(&app).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].0, "TIER_CHANGED", "the CREATED history entry");

    let data = app
        .ok(PURCHASE, json!({ "id": id, "amount": "10000" }))
        .await;
    let change = data["recordInteraction"]["tierChange"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ledger = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsLedger { nodes { id } } } }",
            json!({ "id": id }),
        )
        .await;
    let earn = ledger["customer"]["pointsLedger"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let after_purchase = outbox_rows(&app).await;
    assert_eq!(after_purchase.len(), 4);
    let new: HashSet<(String, String)> = after_purchase[1..].iter().cloned().collect();
    assert!(new.contains(&("POINTS_CHANGED".into(), earn)));
    assert!(new.contains(&("TIER_CHANGED".into(), change)));
    assert!(
        new.contains(&("LIFECYCLE_CHANGED".into(), id.clone())),
        "the first purchase makes a prospect a new customer"
    );

    // A refused redemption announces nothing; an adjustment announces its entry.
    let reward = app
        .ok(
            "mutation { createReward(input: { name: \"Too dear\", costPoints: 1000000 }) { id } }",
            json!({}),
        )
        .await["createReward"]["id"]
        .clone();
    let refused = app
        .gql(
            Some(&app.admin()),
            "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r }) { id } }",
            json!({ "c": id, "r": reward }),
        )
        .await;
    assert_error(&refused, "INSUFFICIENT_POINTS");
    assert_eq!(outbox_rows(&app).await.len(), 4);
    let entry = app
        .ok(
            "mutation($c: ID!) { adjustPoints(input: { customerId: $c, delta: -10, reason: \"fix\" }) { id } }",
            json!({ "c": id }),
        )
        .await["adjustPoints"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = outbox_rows(&app).await.pop().unwrap();
    assert_eq!(last, ("POINTS_CHANGED".into(), entry));

    // Tier changes an evaluation run makes are announced like any other.
    app.ok(
        "mutation($c: ID!) { setCustomerTier(customerId: $c, tierKey: \"potential\", note: \"test\") { id } }",
        json!({ "c": id }),
    )
    .await;
    let before_run = outbox_rows(&app).await.len();
    let run = app
        .ok("mutation { evaluateTiers { upgrades } }", json!({}))
        .await;
    assert_eq!(run["evaluateTiers"]["upgrades"], 1);
    let events = outbox_rows(&app).await;
    assert_eq!(events.len(), before_run + 1);
    assert_eq!(events.last().unwrap().0, "TIER_CHANGED");
}

/// Consumers read the outbox in commit order from where they are; events older than the
/// retention are pruned, newer ones stay, and so does the newest.
async fn the_outbox_is_read_in_commit_order_and_pruned(app: TestApp) {
    use tierwise_api::store::outbox;
    let db = app.db.conn();
    let start = outbox::head(db).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.create_customer(json!({ "name": format!("Outbox {i}") }))
                .await,
        );
    }
    let read = outbox::read_after(db, start, 100).await.unwrap();
    let customers: Vec<String> = read
        .iter()
        .map(|e| e.customer_id.unwrap().to_string())
        .collect();
    assert_eq!(customers, ids, "one CREATED event each, in commit order");
    let positions: Vec<_> = read.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(outbox::head(db).await.unwrap(), *positions.last().unwrap());
    // Reading on from the middle gives the rest; from the head, nothing.
    let rest = outbox::read_after(db, positions[0], 100).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        outbox::read_after(db, positions[2], 100)
            .await
            .unwrap()
            .is_empty()
    );

    let all = outbox_rows(&app).await.len() as u64;
    let pruned = outbox::prune(db, chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(pruned, 0, "nothing is an hour old");
    let pruned = outbox::prune(db, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(pruned, all - 1, "all but the newest");
    // The newest stays, so that a SQLite outbox never numbers its rows from 1 again
    // (behind every consumer's position): the next event is read after it.
    let newest = outbox::head(db).await.unwrap();
    assert_eq!(newest, positions[2]);
    let next = app
        .create_customer(json!({ "name": "After pruning" }))
        .await;
    let read = outbox::read_after(db, newest, 100).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].customer_id.unwrap().to_string(), next);
}

on_both!(
    program_stats_count_customers_tiers_stages_and_points,
    every_ledger_entry_and_tier_change_is_announced_once,
    the_outbox_is_read_in_commit_order_and_pruned,
);
