//! The HTTP surface: health, readiness, metrics, GET and POST GraphQL, GraphiQL, limits,
//! and the WebSocket endpoint's authentication.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, assert_error, on_both};
use crate::ws_client::Ws;

async fn health_readiness_and_metrics_answer(app: TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.ok("{ viewer { role } }", json!({})).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("tierwise_http_requests_total"), "{text}");
    assert!(text.contains("path=\"/graphql\""), "{text}");
    assert!(
        text.contains("tierwise_http_request_duration_seconds"),
        "{text}"
    );
}

async fn readiness_fails_without_the_database(app: TestApp) {
    app.db.conn().clone().close().await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process itself is up");
    // A database failure reaches the client as INTERNAL, with no SQL or driver text.
    let body = app
        .gql(
            Some(&app.admin()),
            "{ customers { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(assert_error(&body, "INTERNAL"), "internal error");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("select") && !text.contains("pool") && !text.contains("sql"),
        "{body}"
    );
}

/// `query` sent with GET, as an admin.
async fn get_graphql(app: &TestApp, query: &str) -> reqwest::Response {
    app.client
        .get(app.url("/graphql"))
        .query(&[("query", query)])
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap()
}

async fn queries_may_be_sent_with_get_but_mutations_may_not(app: TestApp) {
    let response = get_graphql(&app, "{ viewer { role } }").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN");

    let response = get_graphql(
        &app,
        "mutation { createCustomer(input: { name: \"Via GET\" }) { id } }",
    )
    .await;
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_error(&body, "BAD_USER_INPUT");
    assert_eq!(
        app.ok("{ customers { totalCount } }", json!({})).await["customers"]["totalCount"],
        0
    );

    let unauthenticated = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ viewer { role } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

async fn browsers_get_graphiql(app: TestApp) {
    let response = app
        .client
        .get(app.url("/graphql"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("graphiql"), "a GraphiQL page");
    assert!(
        page.contains("subscriptionUrl"),
        "subscriptions over /graphql/ws"
    );
    // Its scripts and styles come from the server, none from a CDN.
    assert!(
        !page.contains("https://") && !page.contains("unpkg"),
        "{page}"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/graphiql/3.8.3/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
    }
    let missing = app
        .client
        .get(app.url("/graphiql/3.8.3/../../etc/passwd"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn the_graphql_response_media_type_is_served(app: TestApp) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("Accept", "application/graphql-response+json")
        .bearer_auth(app.admin())
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN");
}

/// Every response names its request: the client's `x-request-id` is kept, and a
/// request without one gets a new id (the same id is in the server's log lines).
async fn every_response_carries_its_request_id(app: TestApp) {
    let send = |id: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(app.admin())
            .json(&json!({ "query": "{ viewer { role } }" }));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let given = send(Some("pos-42-checkout-7")).await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "pos-42-checkout-7");
    let first = send(None).await.unwrap();
    let second = send(None).await.unwrap();
    let id = |response: &reqwest::Response| {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        uuid::Uuid::parse_str(&id).expect("a new UUID");
        id
    };
    assert_ne!(id(&first), id(&second), "a new id per request");
    // A client's id goes into the server's log lines: a long one, or one with other
    // characters, is replaced.
    let long: &'static str = "x".repeat(129).leak();
    for unusable in [long, "two words", "quote\"d", "a;b"] {
        let response = send(Some(unusable)).await.unwrap();
        id(&response);
    }
    let longest: &'static str = "y".repeat(128).leak();
    assert_eq!(
        send(Some(longest)).await.unwrap().headers()["x-request-id"],
        longest
    );
}

async fn oversized_bodies_deep_and_broken_queries_are_refused(app: TestApp) {
    // The limit is enforced on the announced length, before the body is read.
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.address,
        app.admin(),
        3 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0; 64];
    let read = stream.read(&mut response).await.unwrap();
    let status_line = String::from_utf8_lossy(&response[..read]).to_string();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("customer {{ tier {{ id }} tierHistory {{ nodes {{ {deep} }} }} }}");
    }
    let query = format!("{{ customers {{ nodes {{ tierHistory {{ nodes {{ {deep} }} }} }} }} }}");
    let body = app.gql(Some(&app.admin()), &query, json!({})).await;
    assert!(
        assert_error(&body, "BAD_USER_INPUT")
            .to_lowercase()
            .contains("nested too deep"),
        "{body}"
    );

    let body = app
        .gql(Some(&app.admin()), "{ viewer { role ", json!({}))
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    let body = app
        .gql(Some(&app.admin()), "{ noSuchField }", json!({}))
        .await;
    assert_error(&body, "BAD_USER_INPUT");
}

async fn websocket_connections_need_a_valid_token(app: TestApp) {
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        // `open` checks the server chose the protocol and acknowledged the token.
        Ws::open(&app, protocol, &app.staff()).await;
    }
    let mut ws = Ws::connect(&app, "graphql-transport-ws").await;
    ws.send(Ws::init_message("forged.token.here")).await;
    let (_, reason) = ws.expect_close().await;
    assert!(reason.contains("token"), "{reason:?}");
}

on_both!(
    every_response_carries_its_request_id,
    health_readiness_and_metrics_answer,
    readiness_fails_without_the_database,
    queries_may_be_sent_with_get_but_mutations_may_not,
    browsers_get_graphiql,
    the_graphql_response_media_type_is_served,
    oversized_bodies_deep_and_broken_queries_are_refused,
    websocket_connections_need_a_valid_token,
);
