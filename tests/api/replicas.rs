//! Live events across replicas, on Postgres: two `tierwise serve` processes on one
//! database deliver each other's changes; a server whose LISTEN connection is killed
//! catches up without losing an event; an evaluation run that changes hundreds of tiers
//! sends one notification per transaction, not one per row.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, POSTGRES_ADMIN_URL, ServerProcess, TestDatabase, spawn_app, token};
use crate::ws_client::{TRANSPORT, Ws};

fn staff_token() -> String {
    token("staff")
}

async fn post(server: &ServerProcess, query: &str, variables: Value) -> Value {
    server.ok(&staff_token(), query, variables).await
}

/// A graphql-transport-ws socket at `websocket`, acknowledged, with one subscription
/// `1` to `query`.
async fn subscribe(websocket: &str, query: &str) -> Ws {
    let mut ws = Ws::connect_to(websocket, TRANSPORT).await;
    ws.init(&staff_token()).await;
    ws.subscribe("1", query, json!({})).await;
    ws
}

/// The data of the next event of subscription `1`.
async fn next_event(ws: &mut Ws) -> Value {
    ws.next_data("1").await
}

const POINTS: &str =
    "subscription { pointsChanged { kind delta balanceAfter reason customer { id name } } }";
const ADJUST: &str = "mutation($id: ID!, $delta: Int!, $reason: String!) { adjustPoints(input: { customerId: $id, delta: $delta, reason: $reason }) { id } }";
const CREATE: &str = "mutation($name: String!) { createCustomer(input: { name: $name }) { id } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_replica_reaches_subscribers_on_both() {
    let Some(database) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let (first, second) = ServerProcess::pair(&database.url, &[]).await;

    let mut on_first = subscribe(&first.websocket(), POINTS).await;
    let mut on_second = subscribe(&second.websocket(), POINTS).await;
    let mut tiers_on_second = subscribe(
        &second.websocket(),
        "subscription { tierChanged { reason to { key } customer { id } } }",
    )
    .await;

    let id =
        post(&first, CREATE, json!({ "name": "Made on the first" })).await["createCustomer"]["id"]
            .clone();
    let created = next_event(&mut tiers_on_second).await;
    assert_eq!(created["tierChanged"]["reason"], "CREATED");
    assert_eq!(created["tierChanged"]["customer"]["id"], id);

    post(
        &first,
        ADJUST,
        json!({ "id": id, "delta": 70, "reason": "via first" }),
    )
    .await;
    post(
        &second,
        ADJUST,
        json!({ "id": id, "delta": 30, "reason": "via second" }),
    )
    .await;
    for socket in [&mut on_first, &mut on_second] {
        let a = next_event(socket).await;
        let b = next_event(socket).await;
        assert_eq!(
            (
                &a["pointsChanged"]["reason"],
                &a["pointsChanged"]["balanceAfter"]
            ),
            (&json!("via first"), &json!(70))
        );
        assert_eq!(
            (
                &b["pointsChanged"]["reason"],
                &b["pointsChanged"]["balanceAfter"]
            ),
            (&json!("via second"), &json!(100))
        );
        assert_eq!(a["pointsChanged"]["customer"]["name"], "Made on the first");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_postgres_listener_dies_catches_up_without_losing_events() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let websocket = format!("ws://{}/graphql/ws", app.address);
    let mut socket = subscribe(&websocket, POINTS).await;
    let id = app.create_customer(json!({ "name": "Reconnected" })).await;
    app.ok(ADJUST, json!({ "id": id, "delta": 1, "reason": "before" }))
        .await;
    assert_eq!(
        next_event(&mut socket).await["pointsChanged"]["reason"],
        "before"
    );

    // Kill the server's LISTEN connections (the live relay's, the webhook fan-out's, the
    // automations' and the program follower's), and change things before they are back.
    let admin = sea_orm::Database::connect(POSTGRES_ADMIN_URL)
        .await
        .unwrap();
    let database = current_database(&app).await;
    let killed = terminate_listeners(&admin, &database).await;
    assert_eq!(killed, 4, "the server listens on four connections");
    for i in 0..5 {
        app.ok(
            ADJUST,
            json!({ "id": id, "delta": 1, "reason": format!("during {i}") }),
        )
        .await;
    }
    for i in 0..5 {
        let event = next_event(&mut socket).await;
        assert_eq!(event["pointsChanged"]["reason"], format!("during {i}"));
        assert_eq!(event["pointsChanged"]["balanceAfter"], 2 + i);
    }
    // And it listens again: a later change arrives too.
    app.ok(ADJUST, json!({ "id": id, "delta": 1, "reason": "after" }))
        .await;
    assert_eq!(
        next_event(&mut socket).await["pointsChanged"]["reason"],
        "after"
    );
}

async fn current_database(app: &crate::helpers::TestApp) -> String {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT current_database()",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

/// Terminates the LISTEN connections to `database`; returns how many there were.
async fn terminate_listeners(admin: &sea_orm::DatabaseConnection, database: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let sql = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{database}' AND query ILIKE 'LISTEN%'"
    );
    let row = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_run_notifies_once_per_transaction_not_once_per_change() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    const CUSTOMERS: usize = 150;
    let mut ids = Vec::new();
    for i in 0..CUSTOMERS {
        let id = app
            .create_customer(json!({ "name": format!("Held {i:03}") }))
            .await;
        app.ok(
            "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"trial\") { id } }",
            json!({ "id": id }),
        )
        .await;
        ids.push(id);
    }
    // A run as of 40 days ago marks every held VIP (score 0); a run now, past the
    // 30-day grace period, moves each of them down one tier.
    let evaluate = "mutation($asOf: DateTime) { evaluateTiers(asOf: $asOf) { status } }";
    let earlier = chrono::Utc::now() - chrono::Duration::days(40);
    app.ok(evaluate, json!({ "asOf": earlier })).await;

    let pool = app.db.conn().get_postgres_connection_pool().clone();
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener
        .listen(tierwise_api::store::outbox::CHANNEL)
        .await
        .unwrap();
    let websocket = format!("ws://{}/graphql/ws", app.address);
    let mut socket = subscribe(
        &websocket,
        "subscription { tierChanged { reason from { key } to { key } } }",
    )
    .await;
    let run = app
        .ok(evaluate, json!({ "asOf": chrono::Utc::now() }))
        .await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED");
    for _ in 0..CUSTOMERS {
        let change = next_event(&mut socket).await;
        assert_eq!(
            change["tierChanged"],
            json!({ "reason": "EVALUATION", "from": { "key": "vip" }, "to": { "key": "regular" } })
        );
    }
    let mut notifications = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        notifications += 1;
    }
    assert!(
        (1..=3).contains(&notifications),
        "{CUSTOMERS} changes written in one batch: {notifications} notifications"
    );
}
