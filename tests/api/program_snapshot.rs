//! Each process keeps a snapshot of the program and checks it against the revision the
//! database keeps: screens read no tier rows, a change made here shows on the next
//! request, one made by another replica shows once that replica's change wakes this
//! one's relay, and a recording always earns at the rules that hold when it commits.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tierwise_api::store::Db;

use crate::helpers::{TestApp, on_both};

const SCREEN: &str = "query($id: ID!) { customer(id: $id) {
    tier { key name }
    tierHistory(first: 5) { nodes { from { name } to { name } } }
    pointsLedger(first: 5) { nodes { delta } } } }";
const RECORD: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }";

async fn screen(app: &TestApp, id: &str) -> Value {
    app.ok(SCREEN, json!({ "id": id })).await["customer"].clone()
}

/// "Another replica": a second pool on the same database, with a snapshot of its own.
async fn another_replica(app: &TestApp) -> Db {
    Db::connect(app.database_url())
        .await
        .expect("a second pool")
}

async fn a_customer_screen_reads_no_tier_rows(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wu Lei" })).await;
    app.ok(
        RECORD,
        json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "80" } }),
    )
    .await;
    let warm = screen(&app, &id).await;
    // The purchase moved it up from Potential: its history names two tiers.
    assert_eq!(
        warm["tierHistory"]["nodes"][0]["to"]["name"],
        warm["tier"]["name"]
    );
    assert_eq!(warm["tierHistory"]["nodes"][0]["from"]["name"], "Potential");
    let before = app.db.statement_count();
    let again = screen(&app, &id).await;
    let cost = app.db.statement_count() - before;
    assert_eq!(again, warm);
    assert_eq!(
        cost, 3,
        "the customer, its tier history and its ledger; tiers come from the snapshot"
    );
}

async fn a_tier_changed_here_shows_on_the_next_request(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wu Lei" })).await;
    assert_eq!(screen(&app, &id).await["tier"]["name"], "Potential");
    app.ok(
        "mutation($input: TierInput!) { upsertTier(input: $input) { name } }",
        json!({ "input": { "key": "potential", "name": "Starter", "rank": 0, "minScore": 0 } }),
    )
    .await;
    let after = screen(&app, &id).await;
    assert_eq!(after["tier"]["name"], "Starter");
    assert_eq!(after["tierHistory"]["nodes"][0]["to"]["name"], "Starter");
}

async fn a_tier_changed_by_another_replica_shows_once_the_relay_wakes(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wu Lei" })).await;
    assert_eq!(screen(&app, &id).await["tier"]["name"], "Potential");
    // A hand-written fix on the database counts too: the revision is kept by triggers.
    another_replica(&app)
        .await
        .conn()
        .execute_unprepared("UPDATE tier SET name = 'Starter' WHERE key = 'potential'")
        .await
        .expect("renamed");
    // The relay wakes on the trigger's NOTIFY (Postgres) or its poll (SQLite, 0.5 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let name = screen(&app, &id).await["tier"]["name"].clone();
        if name == "Starter" {
            break;
        }
        assert!(Instant::now() < deadline, "still {name} after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_purchase_earns_at_rules_another_replica_just_changed(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wu Lei" })).await;
    let purchase = json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "100" } });
    assert_eq!(
        app.ok(RECORD, purchase.clone()).await["recordInteraction"]["pointsEarned"],
        100
    );
    let other = another_replica(&app).await;
    for change in [
        "UPDATE tier SET points_multiplier_e4 = 30000",
        "UPDATE program_settings SET points_per_currency_unit_e4 = 20000",
    ] {
        other
            .conn()
            .execute_unprepared(change)
            .await
            .expect("changed");
    }
    // No wait for the relay: a recording reads the revision in its own transaction.
    assert_eq!(
        app.ok(RECORD, purchase).await["recordInteraction"]["pointsEarned"],
        600,
        "100 × 2 points per unit × every tier's 3.0"
    );
}

on_both!(
    a_customer_screen_reads_no_tier_rows,
    a_tier_changed_here_shows_on_the_next_request,
    a_tier_changed_by_another_replica_shows_once_the_relay_wakes,
    a_purchase_earns_at_rules_another_replica_just_changed,
);
