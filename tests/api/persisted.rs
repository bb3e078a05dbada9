//! Persisted operations: Apollo's automatic persisted queries (hash only, then hash and
//! document on `PersistedQueryNotFound`), kept in the database and bounded; and trusted
//! documents, where customers' apps may run only what `tierwise persist` registered.

use serde_json::{Value, json};
use tierwise_api::config::Limits;
use tierwise_api::service::persisted::{TrustedDocuments, hash_of};

use crate::helpers::{
    Backend, TestApp, assert_error, on_both_backends, spawn_app_with_limits, test_limits,
};
use crate::ws_client::{TRANSPORT, Ws};

fn extension(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn send(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn hash_only(app: &TestApp, token: &str, document: &str) -> (u16, Value) {
    send(
        app,
        token,
        json!({ "extensions": extension(&hash_of(document)) }),
    )
    .await
}

#[track_caller]
fn assert_not_found(answer: &(u16, Value)) {
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(
        answer.1["errors"][0]["message"], "PersistedQueryNotFound",
        "{}",
        answer.1
    );
    assert_eq!(
        answer.1["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
}

async fn app_with(backend: Backend, limits: Limits) -> Option<TestApp> {
    spawn_app_with_limits(backend, limits).await
}

async fn automatic_persisted_queries(backend: Backend) {
    let Some(app) = app_with(backend, test_limits()).await else {
        return;
    };
    let staff = app.staff();
    let document = "query Role { viewer { role } }";
    // The protocol: hash only, not found; hash and document, run and kept; hash only.
    assert_not_found(&hash_only(&app, &staff, document).await);
    let (status, body) = send(
        &app,
        &staff,
        json!({ "query": document, "extensions": extension(&hash_of(document)) }),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["viewer"]["role"]),
        (200, &json!("STAFF")),
        "{body}"
    );
    let (_, body) = hash_only(&app, &staff, document).await;
    assert_eq!(body["data"]["viewer"]["role"], "STAFF", "{body}");
    // Known to anyone (a replica on the same database, another caller), over GET too.
    let (_, body) = hash_only(&app, &app.admin(), document).await;
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN", "{body}");
    let extensions = extension(&hash_of(document)).to_string();
    let got: Value = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(&staff)
        .query(&[("extensions", extensions.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["data"]["viewer"]["role"], "STAFF", "{got}");

    // `persistedQuery: null` is no persisted query.
    let (_, body) = send(
        &app,
        &staff,
        json!({ "query": "{ viewer { role } }", "extensions": { "persistedQuery": null } }),
    )
    .await;
    assert_eq!(body["data"]["viewer"]["role"], "STAFF", "{body}");
    // A hash that is not the document's, or an unknown version, is refused.
    let (_, body) = send(
        &app,
        &staff,
        json!({ "query": "{ tiers { key } }", "extensions": extension(&hash_of(document)) }),
    )
    .await;
    assert_error(&body, "BAD_USER_INPUT");
    let (_, body) = send(
        &app,
        &staff,
        json!({ "query": document,
                "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash_of(document) } } }),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("PersistedQueryNotSupported"),
        "{body}"
    );

    // A document that does not validate is not kept.
    let invalid = "query Nope { noSuchField }";
    let (_, body) = send(
        &app,
        &staff,
        json!({ "query": invalid, "extensions": extension(&hash_of(invalid)) }),
    )
    .await;
    assert_error(&body, "BAD_USER_INPUT");
    assert_not_found(&hash_only(&app, &staff, invalid).await);
    // A hash-only request is looked up only for an authenticated caller.
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "extensions": extension(&hash_of(document)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // A mutation kept by hash still cannot run over GET.
    let mutation = "mutation { createCustomer(input: { name: \"By hash\" }) { id } }";
    let (_, body) = send(
        &app,
        &app.admin(),
        json!({ "query": mutation, "extensions": extension(&hash_of(mutation)) }),
    )
    .await;
    assert!(body["data"]["createCustomer"]["id"].is_string(), "{body}");
    let extensions = extension(&hash_of(mutation)).to_string();
    let response = app
        .client
        .get(app.url("/graphql"))
        .bearer_auth(app.admin())
        .query(&[("extensions", extensions.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(app.count_customers(json!({})).await, 1);
}

/// Only `PERSISTED_QUERIES_MAX` documents are kept from clients: the oldest go.
async fn kept_documents_are_bounded(backend: Backend) {
    let limits = Limits {
        persisted_queries_max: 2,
        ..test_limits()
    };
    let Some(app) = app_with(backend, limits).await else {
        return;
    };
    let staff = app.staff();
    let documents = [
        "query A { viewer { role } }",
        "query B { viewer { role } }",
        "query C { viewer { role } }",
    ];
    for document in documents {
        let (status, _) = send(
            &app,
            &staff,
            json!({ "query": document, "extensions": extension(&hash_of(document)) }),
        )
        .await;
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_not_found(&hash_only(&app, &staff, documents[0]).await);
    for document in &documents[1..] {
        let (_, body) = hash_only(&app, &staff, document).await;
        assert_eq!(body["data"]["viewer"]["role"], "STAFF", "{body}");
    }
}

/// With `TRUSTED_DOCUMENTS=customer`, a customer's app runs only the operations of its
/// registered manifest (by hash or in full); staff and partners are not limited.
async fn customers_run_only_registered_operations(backend: Backend) {
    let limits = Limits {
        trusted_documents: TrustedDocuments::Customer,
        ..test_limits()
    };
    let Some(app) = app_with(backend, limits).await else {
        return;
    };
    let me = "query Me { viewer { customer { name pointsBalance } } }";
    let points = "subscription Points { pointsChanged { delta } }";
    // graphql-codegen's client preset writes { hash: document }.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("persisted-documents.json");
    std::fs::write(
        &manifest,
        json!({ hash_of(me): me, hash_of(points): points }).to_string(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tierwise"))
        .arg("persist")
        .arg(&manifest)
        .env("DATABASE_URL", app.database_url())
        .env("JWT_SECRET", crate::helpers::SECRET)
        .env("DEMO_DATA", "false")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 operations registered"));

    let ana = app.create_customer(json!({ "name": "Ana" })).await;
    let token = app.customer_token(&ana);
    let (_, body) = hash_only(&app, &token, me).await;
    assert_eq!(body["data"]["viewer"]["customer"]["name"], "Ana", "{body}");
    let (_, body) = send(&app, &token, json!({ "query": me })).await;
    assert_eq!(body["data"]["viewer"]["customer"]["name"], "Ana", "{body}");
    // Anything else is refused, also when it is sent for automatic persistence.
    let other = "query Other { viewer { customer { name email phone } } }";
    for body in [
        json!({ "query": other }),
        json!({ "query": other, "extensions": extension(&hash_of(other)) }),
    ] {
        let (status, body) = send(&app, &token, body).await;
        assert_eq!(status, 403, "{body}");
        assert_error(&body, "FORBIDDEN");
    }
    // Staff are not limited.
    let (_, body) = send(&app, &app.staff(), json!({ "query": other })).await;
    assert!(body.get("errors").is_none(), "{body}");
    // Over WebSocket: the registered subscription runs, another is refused.
    let mut ws = Ws::open(&app, TRANSPORT, &token).await;
    ws.subscribe("points", points, json!({})).await;
    let errors = {
        ws.send_subscribe(
            "other",
            "subscription { tierChanged { customer { id } } }",
            json!({}),
        )
        .await;
        ws.expect_error("other").await
    };
    assert_eq!(crate::ws_client::code(&errors), "FORBIDDEN", "{errors}");
}

on_both_backends!(
    automatic_persisted_queries,
    kept_documents_are_bounded,
    customers_run_only_registered_operations,
);
