//! Abuse resistance: hostile or malformed requests are answered with a GraphQL error
//! carrying a contract code, before they cost the server anything, and never take it
//! down. Each finding of the attack on the release binary is a case here.

use std::time::Duration;

use serde_json::{Value, json};
use tierwise_api::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_error, on_both, test_limits};

/// Declares, for each `name(app: TestApp)`, its SQLite and Postgres tests on a server
/// with the limits `limits()` gives.
macro_rules! with_limits {
    ($limits:ident: $($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::helpers::{Backend, spawn_app_with_limits};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = spawn_app_with_limits(Backend::Sqlite, super::$limits()).await.expect("SQLite");
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = spawn_app_with_limits(Backend::Postgres, super::$limits()).await {
                    super::$name(app).await;
                }
            }
        }
    )*};
}
use crate::ws_client::{TRANSPORT, Ws, code};

/// A query whose argument nests `levels` lists deep.
fn nested_query(levels: usize) -> String {
    format!(
        "{{ viewer(x: {}1{}) {{ role }} }}",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

/// Asserts a non-success status whose body is GraphQL JSON with `code`.
async fn assert_json_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("a JSON body");
    assert_error(&body, code);
    body
}

async fn assert_alive(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    app.ok("{ viewer { role } }", json!({})).await;
}

async fn deeply_nested_documents_are_refused_before_parsing(app: TestApp) {
    let query = nested_query(2000);
    // Unauthenticated GET: this used to overflow the stack and abort the process. A
    // client that accepts application/graphql-response+json is told 400; a legacy
    // application/json one 200, with the error in the body (GraphQL over HTTP).
    let get = |accept: &'static str| {
        app.client
            .get(app.url("/graphql"))
            .header("accept", accept)
            .query(&[("query", query.as_str())])
            .send()
    };
    assert_json_error(
        get("application/json").await.unwrap(),
        200,
        "BAD_USER_INPUT",
    )
    .await;
    let response = get("application/graphql-response+json").await.unwrap();
    let body = assert_json_error(response, 400, "BAD_USER_INPUT").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nest"),
        "{body}"
    );
    // POST, with and without a token.
    for token in [None, Some(app.admin())] {
        let body = app.gql(token.as_deref(), &query, json!({})).await;
        assert_error(&body, "BAD_USER_INPUT");
    }
    // Nested input objects in the document itself.
    let objects = format!(
        "{{ customers(filter: {}) {{ totalCount }} }}",
        "{ search: ".repeat(500) + "\"x\"" + &"}".repeat(500)
    );
    assert_error(
        &app.gql(Some(&app.admin()), &objects, json!({})).await,
        "BAD_USER_INPUT",
    );
    // Over WebSocket: an error for that subscription, and the socket goes on.
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    ws.send_subscribe(
        "deep",
        &format!(
            "subscription {{ pointsChanged(customerId: {}\"x\"{}) {{ delta }} }}",
            "[".repeat(3000),
            "]".repeat(3000)
        ),
        json!({}),
    )
    .await;
    let errors = ws.expect_error("deep").await;
    assert_eq!(code(&errors), "BAD_USER_INPUT", "{errors}");
    ws.sync().await;
    // Just inside the limit, the document is parsed and judged as usual.
    let body = app
        .gql(Some(&app.admin()), &nested_query(60), json!({}))
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    assert!(
        !body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nest"),
        "{body}"
    );
    assert_alive(&app).await;
}

async fn malformed_bodies_get_graphql_errors(app: TestApp) {
    let post = |body: Vec<u8>| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(app.admin())
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(body)
    };
    // A batch.
    let batch = serde_json::to_vec(&json!([{ "query": "{ viewer { role } }" }])).unwrap();
    let body = assert_json_error(post(batch).send().await.unwrap(), 400, "BAD_USER_INPUT").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
    // Not JSON, and JSON nested past what the parser accepts.
    for text in [
        b"{ not json".to_vec(),
        format!(
            "{{\"query\": \"{{ viewer {{ role }} }}\", \"variables\": {{\"v\": {}1{}}}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        )
        .into_bytes(),
    ] {
        assert_json_error(post(text).send().await.unwrap(), 400, "BAD_USER_INPUT").await;
    }
    // Larger than the body limit: refused on its announced length before a byte of it is
    // read. A client still sending the body then finds the connection closed (a broken
    // pipe, depending on timing), so this one sends the headers alone.
    let response = headers_only(
        &app,
        &format!(
            "POST /graphql HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            app.admin(),
            3 * 1024 * 1024
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"BAD_USER_INPUT\""), "{response}");
    // Another method.
    let response = app.client.put(app.url("/graphql")).send().await.unwrap();
    assert_json_error(response, 405, "BAD_USER_INPUT").await;
    // A body that is not declared JSON.
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .header("content-type", "text/plain")
        .body("{ viewer { role } }")
        .send()
        .await
        .unwrap();
    assert_json_error(response, 415, "BAD_USER_INPUT").await;
    assert_alive(&app).await;
}

/// Sends `head` (a request's line and headers) on a connection of its own and returns
/// everything the server answers before it closes.
async fn headers_only(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers without waiting for the body")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn queries_cost_the_rows_they_may_read(app: TestApp) {
    let staff = app.staff();
    let nested = "customers(first: 100) { nodes { pointsLedger(first: 100) { nodes {
        customer { interactions(first: 100) { nodes { kind amount } } } } } } }";
    let aliases: String = (0..200).map(|i| format!("a{i}: {nested}\n")).collect();
    for query in [format!("{{ {nested} }}"), format!("{{ {aliases} }}")] {
        let body = app.gql(Some(&staff), &query, json!({})).await;
        let message = assert_error(&body, "BAD_USER_INPUT");
        assert!(message.contains("costs"), "{message}");
        let cost = body["errors"][0]["extensions"]["cost"].as_u64().unwrap();
        assert!(cost > 1_000_000, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["maxCost"], 10_000);
        assert!(
            body.get("data").is_none_or(Value::is_null),
            "nothing ran: {body}"
        );
    }
    // What a console asks for stays well inside.
    app.ok_as(
        &staff,
        "{ customers(first: 100, orderBy: { field: LIFETIME_SPEND, direction: DESC }) {
            totalCount nodes { id name email phone tags lifecycleStage score pointsBalance
              tier { key name } metrics { lifetimeSpend lastPurchaseAt rfm { segment } abcClass }
              pointsLedger(first: 5) { nodes { delta kind createdAt } } } } }",
        json!({}),
    )
    .await;
}

async fn a_socket_holds_a_bounded_number_of_operations(app: TestApp) {
    let mut ws = Ws::open(&app, TRANSPORT, &app.admin()).await;
    let padding = format!("# {}\n", "x".repeat(60_000));
    for i in 0..32 {
        ws.send_subscribe(
            &i.to_string(),
            &format!("{padding}subscription {{ pointsChanged {{ delta }} }}"),
            json!({}),
        )
        .await;
    }
    ws.send_subscribe(
        "one-too-many",
        "subscription { pointsChanged { delta } }",
        json!({}),
    )
    .await;
    let errors = ws.expect_error("one-too-many").await;
    assert_eq!(code(&errors), "BAD_USER_INPUT", "{errors}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32")
    );
    // Those it holds still work.
    ws.sync().await;
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 5, reason: \"x\" }) { id } }",
        json!({ "id": customer }),
    )
    .await;
    let first = ws.next_message().await;
    assert_eq!(first["type"], "next", "{first}");
    // A document over the size limit is refused as such.
    ws.complete("0").await;
    ws.send_subscribe(
        "long",
        &format!(
            "# {}\nsubscription {{ pointsChanged {{ delta }} }}",
            "x".repeat(70_000)
        ),
        json!({}),
    )
    .await;
    loop {
        let message = ws.next_message().await;
        if message["id"] == "long" {
            assert_eq!(message["type"], "error", "{message}");
            assert!(
                message["payload"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("bytes")
            );
            break;
        }
    }
}

async fn amounts_are_bounded_and_never_stop_the_program(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let record = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }";
    for amount in [
        json!("600000000000000"),
        json!("922337203685477.5807"),
        json!("79228162514264337593543950335"),
        json!("1e28"),
        json!(1e28),
        json!("100000000.01"),
    ] {
        let input = json!({ "customerId": customer, "kind": "PURCHASE", "amount": amount });
        let response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(app.partner("interactions:write"))
            .json(&json!({ "query": record, "variables": { "input": input } }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().as_u16() < 500,
            "{amount}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        assert_error(&body, "BAD_USER_INPUT");
    }
    let at_limit = json!({ "customerId": customer, "kind": "PURCHASE", "amount": "100000000" });
    let earned = app.ok(record, json!({ "input": at_limit })).await;
    assert_eq!(earned["recordInteraction"]["pointsEarned"], 100_000_000);
    // The limit is the program's to set.
    let settings = app
        .ok(
            "mutation { updateProgramSettings(input: { maxInteractionAmount: \"5000\" }) { maxInteractionAmount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        settings["updateProgramSettings"]["maxInteractionAmount"],
        "5000.00"
    );
    let over = json!({ "customerId": customer, "kind": "PURCHASE", "amount": "5000.01" });
    let body = app
        .gql(Some(&app.admin()), record, json!({ "input": over }))
        .await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.contains("5000"), "{message}");
    let body = app
        .gql(
            Some(&app.admin()),
            "mutation { updateProgramSettings(input: { maxInteractionAmount: \"0\" }) { maxInteractionAmount } }",
            json!({}),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    // The program is still evaluated.
    let run = app
        .ok(
            "mutation { evaluateTiers { status customersEvaluated } }",
            json!({}),
        )
        .await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED", "{run}");
}

async fn a_token_valid_for_a_century_is_refused(app: TestApp) {
    let now = chrono::Utc::now().timestamp();
    let century = app.sign(&tierwise_api::auth::Claims {
        exp: now + 100 * 365 * 86_400,
        ..crate::helpers::claims("admin")
    });
    let body = app
        .gql(Some(&century), "{ viewer { role } }", json!({}))
        .await;
    let message = assert_error(&body, "UNAUTHENTICATED");
    assert!(message.contains("JWT_MAX_TTL"), "{message}");
    let month = app.sign(&tierwise_api::auth::Claims {
        exp: now + 29 * 86_400,
        ..crate::helpers::claims("admin")
    });
    app.ok_as(&month, "{ viewer { role } }", json!({})).await;
}

async fn a_large_segment_rule_runs_and_none_breaks_the_others(app: TestApp) {
    let customer = app
        .create_customer(json!({ "name": "Wang Fang", "attributes": { "x": "v7" } }))
        .await;
    let create =
        "mutation($input: SegmentInput!) { createSegment(input: $input) { id memberCount } }";
    // The finding: a list of 1,000 values made every segment read fail on SQLite.
    let values: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
    let big = json!({ "field": "attributes.x", "op": "in", "value": values });
    let saved = app
        .ok(
            create,
            json!({ "input": { "name": "Big", "kind": "DYNAMIC", "rule": big } }),
        )
        .await;
    assert_eq!(saved["createSegment"]["memberCount"], 1);
    // Five of them in one rule (5,000 values, the most a rule holds) still run.
    let five = json!({ "any": vec![big.clone(); 5] });
    let preview = app
        .ok(
            "query($rule: JSON!) { segmentPreview(rule: $rule) { totalCount } }",
            json!({ "rule": five }),
        )
        .await;
    assert_eq!(preview["segmentPreview"]["totalCount"], 1);
    // Forty: refused when given, not failing later.
    let forty = json!({ "any": vec![big.clone(); 40] });
    let body = app
        .gql(
            Some(&app.admin()),
            "query($rule: JSON!) { segmentPreview(rule: $rule) { totalCount } }",
            json!({ "rule": forty.clone() }),
        )
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("5000 values"));
    let body = app
        .gql(
            Some(&app.admin()),
            create,
            json!({ "input": { "name": "Forty", "kind": "DYNAMIC", "rule": forty.clone() } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    // One stored before these checks (written straight into the table) fails only its
    // own count; every other read goes on.
    use sea_orm::{ActiveModelTrait, Set};
    let now = chrono::Utc::now();
    entity::segment::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        name: Set("Poison".into()),
        description: Set(None),
        kind: Set(entity::enums::SegmentKind::Dynamic),
        rule: Set(Some(forty)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(app.db.conn())
    .await
    .expect("a segment written by hand");
    let data = app
        .ok_as(
            &app.staff(),
            "query($id: ID!) { customer(id: $id) { segments { name } } }",
            json!({ "id": customer }),
        )
        .await;
    assert_eq!(data["customer"]["segments"], json!([{ "name": "Big" }]));
    let body = app
        .gql(
            Some(&app.staff()),
            "{ segments { nodes { name memberCount } } }",
            json!({}),
        )
        .await;
    let nodes = body["data"]["segments"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let big_count = nodes
        .iter()
        .find(|n| n["name"] == "Big")
        .map(|n| n["memberCount"].clone());
    assert_eq!(big_count, Some(json!(1)), "{body:#}");
    assert_eq!(
        body["errors"].as_array().map(Vec::len),
        Some(1),
        "only Poison's count fails: {body:#}"
    );
}

async fn erasure_scrubs_free_text_and_refunds_stay_within_what_was_paid(app: TestApp) {
    let id = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let record = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }";
    let refund = |amount: &str, order: Option<&str>| json!({ "input": { "customerId": id, "kind": "REFUND", "amount": amount, "orderRef": order } });
    app.ok(
        record,
        json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "100", "orderRef": "ORD-1" } }),
    )
    .await;
    app.ok(record, refund("60", Some("ORD-1"))).await;
    // More than the order paid, all refunds of it together.
    let body = app
        .gql(Some(&app.admin()), record, refund("40.01", Some("ORD-1")))
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").starts_with("input.amount"));
    // An order with no purchase yet: refused, so that its points are never left behind.
    let body = app
        .gql(Some(&app.admin()), record, refund("1", Some("ORD-2")))
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").starts_with("input.orderRef"));
    app.ok(record, refund("40", Some("ORD-1"))).await;
    let spend = app
        .ok(
            "query($id: ID!) { customer(id: $id) { metrics { lifetimeSpend } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(spend["customer"]["metrics"]["lifetimeSpend"], "0.00");

    // Erasure takes every free text tied to the customer with the profile.
    app.ok(
        record,
        json!({ "input": { "customerId": id, "kind": "PURCHASE", "amount": "10",
                 "orderRef": "to 12 Main Street", "note": "ring twice" } }),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 5, reason: \"sorry for the call to +8613800138000\" }) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"wife of the owner\") { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { eraseCustomer(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    let after = app
        .ok(
            "query($id: ID!) { customer(id: $id) { name
               interactions { nodes { amount note orderRef } }
               pointsLedger { nodes { delta reason } }
               tierHistory { nodes { note } } } }",
            json!({ "id": id }),
        )
        .await;
    let text = after.to_string();
    for secret in [
        "Wang Fang",
        "Main Street",
        "ring twice",
        "+8613800138000",
        "wife of the owner",
        "ORD-1",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} survived erasure: {after:#}"
        );
    }
    assert_eq!(
        after["customer"]["interactions"]["nodes"][0]["amount"], "10.00",
        "amounts stay"
    );
}

async fn a_run_skips_a_customer_it_cannot_process_and_evaluates_the_rest(app: TestApp) {
    let record = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { pointsEarned } }";
    let poisoned = app.create_customer(json!({ "name": "Old data" })).await;
    let healthy = app.create_customer(json!({ "name": "Wang Fang" })).await;
    for _ in 0..12 {
        app.ok(
            record,
            json!({ "input": { "customerId": healthy, "kind": "PURCHASE", "amount": "2000" } }),
        )
        .await;
    }
    // Amounts stored before they were bounded (written straight into the table): two of
    // 600,000,000,000,000, whose sum no BIGINT holds.
    use sea_orm::{ActiveModelTrait, Set};
    for _ in 0..2 {
        let now = chrono::Utc::now();
        entity::interaction::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            customer_id: Set(poisoned.parse().unwrap()),
            kind: Set(entity::enums::InteractionKind::Purchase),
            occurred_at: Set(now),
            amount_e4: Set(Some(6_000_000_000_000_000_000)),
            currency: Set(None),
            channel: Set(None),
            rating: Set(None),
            note: Set(None),
            order_ref: Set(None),
            recorded_by: Set("old-version".into()),
            recorded_at: Set(now),
        }
        .insert(app.db.conn())
        .await
        .expect("an interaction written by hand");
    }
    let run = app
        .ok(
            "mutation { evaluateTiers { status customersEvaluated skippedCustomers skippedCustomerIds error } }",
            json!({}),
        )
        .await;
    let run = &run["evaluateTiers"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["skippedCustomers"], 1, "{run}");
    assert_eq!(run["skippedCustomerIds"], json!([poisoned]));
    assert_eq!(run["customersEvaluated"], 1);
    let data = app
        .ok(
            "query($id: ID!) { customer(id: $id) { tier { key } metrics { purchaseCount rfm { segment } } } }",
            json!({ "id": healthy }),
        )
        .await;
    assert_eq!(data["customer"]["metrics"]["purchaseCount"], 12, "{data}");
    assert!(
        !data["customer"]["metrics"]["rfm"].is_null(),
        "the rest was evaluated: {data}"
    );
}

/// The second attack on the release binary: each finding as a regression.
async fn the_second_attacks_findings_are_refused_at_the_edge(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let own = app.customer_token(&customer);
    // A fragment bomb: a few hundred bytes standing for 2^30 selections.
    let mut bomb = String::from("query { ...F0 }\n");
    for level in 0..30 {
        bomb.push_str(&format!(
            "fragment F{level} on Query {{ ...F{n} ...F{n} }}\n",
            n = level + 1
        ));
    }
    bomb.push_str("fragment F30 on Query { __typename }\n");
    let started = std::time::Instant::now();
    for token in [None, Some(own.as_str())] {
        let body = app.gql(token, &bomb, json!({})).await;
        assert!(
            assert_error(&body, "BAD_USER_INPUT").contains("fragments"),
            "{body}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused before any walk"
    );

    // NUL characters, which Postgres cannot store: refused wherever they come.
    let body = app
        .gql(
            Some(&app.staff()),
            "query($s: String) { customers(filter: { search: $s }) { totalCount } }",
            json!({ "s": "a\u{0}b" }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&app.staff()),
            "mutation { createCustomer(input: { name: \"a\\u0000b\" }) { id } }",
            json!({}),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&app.staff()),
            "mutation($a: JSON) { createCustomer(input: { name: \"x\", attributes: $a }) { id } }",
            json!({ "a": { "k": "\u{0}" } }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");

    // Texts too long to match anything: a rule that would fail only when it runs, and a
    // search that would only cost a scan.
    let long = "y".repeat(50_001);
    let body = app
        .gql(
            Some(&app.staff()),
            "mutation($r: JSON) { createSegment(input: { name: \"p\", kind: DYNAMIC, rule: $r }) { id } }",
            json!({ "r": { "field": "region", "op": "contains", "value": long } }),
        )
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("at most 1000 characters"));
    let body = app
        .gql(
            Some(&app.staff()),
            "query($s: String) { customers(filter: { search: $s }) { totalCount } }",
            json!({ "s": "x".repeat(201) }),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");

    // Attributes of 32,000 values, and aliases of attributes past the cost limit.
    let zeros = json!({ "k": vec![0; 32_000] });
    let body = app
        .gql(
            Some(&app.staff()),
            "mutation($id: ID!, $a: JSON) { updateCustomer(id: $id, input: { attributes: $a }) { id } }",
            json!({ "id": customer, "a": zeros }),
        )
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("1000 values"));
    let aliases: String = (0..250)
        .map(|i| format!("a{i}: viewer {{ customer {{ attributes }} }} "))
        .collect();
    let body = app
        .gql(Some(&own), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("costs"));

    // A purchase dated in year 0.
    let body = app
        .gql(
            Some(&app.staff()),
            "mutation($id: ID!) { recordInteraction(input: { customerId: $id, kind: VISIT, occurredAt: \"0000-01-01T00:00:00Z\" }) { pointsEarned } }",
            json!({ "id": customer }),
        )
        .await;
    assert!(assert_error(&body, "BAD_USER_INPUT").contains("1970"));

    // Odd HTTP methods share one metrics label instead of each growing /metrics.
    for i in 0..20 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        let method = format!("X{}{i}", "Y".repeat(1000));
        stream
            .write_all(
                format!("{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let _ = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    }
    let metrics = app.metrics_text().await;
    assert!(!metrics.contains("YYYYYYYY"), "a method became a label");
    assert_alive(&app).await;
}

on_both!(
    the_second_attacks_findings_are_refused_at_the_edge,
    a_run_skips_a_customer_it_cannot_process_and_evaluates_the_rest,
    erasure_scrubs_free_text_and_refunds_stay_within_what_was_paid,
    a_large_segment_rule_runs_and_none_breaks_the_others,
    a_token_valid_for_a_century_is_refused,
    deeply_nested_documents_are_refused_before_parsing,
    malformed_bodies_get_graphql_errors,
    queries_cost_the_rows_they_may_read,
    a_socket_holds_a_bounded_number_of_operations,
    amounts_are_bounded_and_never_stop_the_program,
);

// ---------------------------------------------------------------------------------------
// Connections, at the edges of small limits

fn tight() -> Limits {
    Limits {
        max_connections: 3,
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..test_limits()
    }
}

/// Reads until the server closes the connection (or `wait` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(wait, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

async fn idle_and_half_sent_requests_are_cut_off(app: TestApp) {
    // Nothing at all, and half a header: closed after the header deadline.
    let mut silent = TcpStream::connect(app.address).await.unwrap();
    let mut half = TcpStream::connect(app.address).await.unwrap();
    half.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for stream in [&mut silent, &mut half] {
        let closed = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "still open after 5 s");
    }
    // Half a body: answered as GraphQL JSON after the body deadline.
    let mut slow = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"query\"",
        app.admin()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("BODY_READ_TIMEOUT") && answer.contains("BAD_USER_INPUT"),
        "{answer}"
    );
    assert_alive(&app).await;
}

async fn connections_past_the_limit_wait_their_turn(app: TestApp) {
    // Three connections held open (the limit), each after a request.
    let body = r#"{"query":"{ viewer { role } }"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        app.admin(),
        body.len()
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = [0u8; 512];
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // A fourth waits: no answer while the three are open...
    let mut waiting = TcpStream::connect(app.address).await.unwrap();
    waiting.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(200), waiting.read(&mut buffer)).await;
    assert!(early.is_err(), "answered past the connection limit");
    // ...and is served once one of them has gone.
    drop(held.pop());
    let read = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buffer))
        .await
        .expect("served once a place was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
}

async fn websockets_keep_their_connection_place(app: TestApp) {
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(Ws::open(&app, TRANSPORT, &app.admin()).await);
    }
    let request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send();
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut request)
            .await
            .is_err(),
        "served while three sockets hold every place"
    );
    drop(sockets.pop());
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("served once a socket closed")
        .unwrap();
    assert!(response.status().is_success());
}

fn few_subscriptions() -> Limits {
    Limits {
        sockets_per_caller: 3,
        subscriptions_per_caller: 3,
        max_ws_message_bytes: 4096,
        ..test_limits()
    }
}

async fn a_caller_holds_a_bounded_number_of_operations_over_all_its_sockets(app: TestApp) {
    let token = app.admin();
    let mut first = Ws::open(&app, TRANSPORT, &token).await;
    let mut second = Ws::open(&app, TRANSPORT, &token).await;
    let subscription = "subscription { pointsChanged { delta } }";
    first.subscribe("a", subscription, json!({})).await;
    first.subscribe("b", subscription, json!({})).await;
    second.subscribe("c", subscription, json!({})).await;
    second.send_subscribe("d", subscription, json!({})).await;
    let errors = second.expect_error("d").await;
    assert!(
        errors[0]["message"].as_str().unwrap().contains("at most 3"),
        "{errors}"
    );
    // A caller holds at most MAX_SOCKETS_PER_CALLER sockets: a third is fine, a fourth
    // is closed with 4429 when it initialises.
    let _third = Ws::open(&app, TRANSPORT, &token).await;
    let mut fourth = Ws::connect(&app, TRANSPORT).await;
    fourth.send(Ws::init_message(&token)).await;
    let reason = fourth.expect_close_with(4429).await;
    assert!(reason.contains("connections"), "{reason}");
    // Another caller is not counted against this one.
    let mut other = Ws::open(&app, TRANSPORT, &app.staff()).await;
    other.subscribe("e", subscription, json!({})).await;
    // A place comes back when a subscription ends.
    first.complete("a").await;
    first.sync().await;
    second.subscribe("d", subscription, json!({})).await;
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    app.ok(
        "mutation($id: ID!) { adjustPoints(input: { customerId: $id, delta: 5, reason: \"x\" }) { id } }",
        json!({ "id": customer }),
    )
    .await;
    let got = second.collect(&[("c", 1), ("d", 1)]).await;
    assert_eq!(got["d"][0]["pointsChanged"]["delta"], 5);
    // A message over MAX_WS_MESSAGE_BYTES ends the connection.
    let padding = "x".repeat(5000);
    other
        .send_subscribe("big", &format!("# {padding}\n{subscription}"), json!({}))
        .await;
    let closed = loop {
        match other.receive().await {
            crate::ws_client::Received::Message(_) => continue,
            ended => break ended,
        }
    };
    assert!(!matches!(closed, crate::ws_client::Received::Message(_)));
}

fn instant_timeout() -> Limits {
    Limits {
        request_timeout: Duration::from_nanos(1),
        ..test_limits()
    }
}

async fn a_request_past_its_time_is_answered_timeout(app: TestApp) {
    // Fifty counts, one statement each: well past the timer's millisecond, however fast
    // the machine (a single count could finish before the deadline is first checked).
    let counts: String = (0..50)
        .map(|i| format!("c{i}: customers(filter: {{ search: \"n{i}\" }}) {{ totalCount }} "))
        .collect();
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(app.admin())
        .json(&json!({ "query": format!("{{ {counts} }}") }))
        .send()
        .await
        .unwrap();
    let body = assert_json_error(response, 503, "TIMEOUT").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("REQUEST_TIMEOUT")
    );
}

fn small_responses() -> Limits {
    Limits {
        max_response_bytes: 1024 * 1024,
        ..test_limits()
    }
}

async fn responses_past_the_size_limit_are_refused(app: TestApp) {
    let notes = "x".repeat(16 * 1024);
    let id = app
        .create_customer(json!({ "name": "Big", "attributes": { "notes": notes } }))
        .await;
    // 64 copies of 16 KiB: over 1 MiB, though the query costs little.
    let copies: String = (0..64).map(|i| format!("a{i}: attributes ")).collect();
    let query = format!("query($id: ID!) {{ customer(id: $id) {{ {copies} }} }}");
    let body = app
        .gql(Some(&app.admin()), &query, json!({ "id": id }))
        .await;
    let message = assert_error(&body, "BAD_USER_INPUT");
    assert!(message.contains("MAX_RESPONSE_BYTES"), "{message}");
    // Just under it, the answer comes.
    let copies: String = (0..60).map(|i| format!("a{i}: attributes ")).collect();
    let query = format!("query($id: ID!) {{ customer(id: $id) {{ {copies} }} }}");
    app.ok(&query, json!({ "id": id })).await;
}

with_limits!(
    tight: idle_and_half_sent_requests_are_cut_off,
    connections_past_the_limit_wait_their_turn,
    websockets_keep_their_connection_place,
);
with_limits!(instant_timeout: a_request_past_its_time_is_answered_timeout);
with_limits!(few_subscriptions: a_caller_holds_a_bounded_number_of_operations_over_all_its_sockets);
with_limits!(small_responses: responses_past_the_size_limit_are_refused);

fn production_rates() -> Limits {
    use tierwise_api::http::rate_limit::{Budget, Budgets};
    Limits {
        rates: Budgets {
            customer: Budget {
                per_second: 1.0,
                burst: 3.0,
            },
            ..Budgets::default()
        },
        ..Limits::default()
    }
}

async fn a_caller_over_its_rate_is_told_to_wait(app: TestApp) {
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let token = app.customer_token(&customer);
    let ask = || {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": "{ viewer { role } }" }))
            .send()
    };
    for _ in 0..3 {
        assert!(
            ask().await.unwrap().status().is_success(),
            "within the burst"
        );
    }
    // The bucket refills at one a second: on a slow machine a fourth may still pass.
    let mut refused = ask().await.unwrap();
    for _ in 0..5 {
        if refused.status().as_u16() == 429 {
            break;
        }
        refused = ask().await.unwrap();
    }
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1);
    assert_json_error(refused, 429, "RATE_LIMITED").await;
    // Another caller, and the staff, are not held back by this one.
    let other = app.create_customer(json!({ "name": "Li Lei" })).await;
    app.ok_as(
        &app.customer_token(&other),
        "{ viewer { role } }",
        json!({}),
    )
    .await;
    // A second later, a token is back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ask().await.unwrap().status().is_success());
    // Over WebSocket, a flood of operations closes the socket with 4429.
    let mut ws = Ws::open(&app, TRANSPORT, &app.customer_token(&other)).await;
    for i in 0..10 {
        ws.send_subscribe(
            &i.to_string(),
            "subscription { pointsChanged { delta } }",
            json!({}),
        )
        .await;
    }
    let (code, _) = loop {
        match ws.receive().await {
            crate::ws_client::Received::Closed(Some(frame)) => break frame,
            crate::ws_client::Received::Message(_) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 4429);
}

with_limits!(production_rates: a_caller_over_its_rate_is_told_to_wait);
