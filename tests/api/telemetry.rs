//! Traces reach an OpenTelemetry collector: a `tierwise serve` process with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` sends OTLP/HTTP (JSON here) to a collector on loopback;
//! a request's span continues the client's `traceparent`, is named by its GraphQL
//! operation, and has a child span per SQL statement, with its text and never its values.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, ServerProcess, TestDatabase, on_both_backends, token};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// A collector on loopback: every span it was sent, with its service's name.
async fn collector() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let spans: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let received = spans.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let export: Value = serde_json::from_slice(&body).unwrap_or_default();
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    let service = attribute(&resource["resource"], "service.name");
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            received
                                .lock()
                                .unwrap()
                                .push((service.clone(), span.clone()));
                        }
                    }
                }
                ([("content-type", "application/json")], "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}"), spans)
}

/// A string attribute of a span or resource.
fn attribute(holder: &Value, key: &str) -> String {
    holder["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn post(server: &ServerProcess, body: Value) -> Value {
    reqwest::Client::new()
        .post(&server.graphql)
        .bearer_auth(token("admin"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn traces_reach_a_collector(backend: Backend) {
    let Some(database) = TestDatabase::new(backend).await else {
        return;
    };
    let (endpoint, spans) = collector().await;
    let server = ServerProcess::start(
        &database.url,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "tierwise-under-test"),
        ],
    );
    server.wait_until_ready().await;
    let created = post(
        &server,
        json!({
            "operationName": "Enrol",
            "query": "mutation Enrol($name: String!) { createCustomer(input: { name: $name }) { id } }",
            "variables": { "name": "Zhou Confidential" }
        }),
    )
    .await;
    assert!(
        created["data"]["createCustomer"]["id"].is_string(),
        "{created}"
    );

    // Wait for the batch to arrive.
    let mut waited = 0;
    let request = loop {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|(_, span)| span["name"] == "mutation Enrol")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            waited < 100,
            "no request span within 10 s: {:?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    };
    let (service, request) = request;
    assert_eq!(service, "tierwise-under-test");
    // The client's trace continues.
    assert_eq!(request["traceId"], TRACE_ID, "{request}");
    assert_eq!(request["parentSpanId"], CLIENT_SPAN, "{request}");
    assert_eq!(attribute(&request, "graphql.operation.name"), "Enrol");
    assert_eq!(attribute(&request, "graphql.operation.type"), "mutation");

    // Its statements are spans in its trace, below it, with their text.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let trace: Vec<Value> = spans
        .lock()
        .unwrap()
        .iter()
        .map(|(_, span)| span.clone())
        .filter(|span| span["traceId"] == TRACE_ID)
        .collect();
    let below_request = |span: &Value| {
        let mut parent = span["parentSpanId"].clone();
        for _ in 0..10 {
            if parent == request["spanId"] {
                return true;
            }
            match trace.iter().find(|s| s["spanId"] == parent) {
                Some(next) => parent = next["parentSpanId"].clone(),
                None => return false,
            }
        }
        false
    };
    let statements: Vec<&Value> = trace
        .iter()
        .filter(|span| !attribute(span, "db.statement").is_empty())
        .collect();
    let texts: Vec<String> = statements
        .iter()
        .map(|span| attribute(span, "db.statement"))
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("INSERT INTO \"customer\"")),
        "the customer's INSERT is traced: {texts:?}"
    );
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    for span in &statements {
        assert!(below_request(span), "{span}");
        assert_eq!(attribute(span, "db.system"), system);
    }
    // Probes are not traced.
    assert!(
        !spans
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| s["name"] == "GET /readyz"),
        "readiness probes stay out of traces"
    );
    let everything = serde_json::to_string(&*spans.lock().unwrap()).unwrap();
    assert!(
        !everything.contains("Zhou Confidential"),
        "no value leaves in a trace"
    );
}

on_both_backends!(traces_reach_a_collector);
