//! Partner webhooks, end to end, against a real HTTP receiver in the test: every event
//! type delivered and signed as Standard Webhooks verifies it; retries on failures and
//! timeouts, `Retry-After`, FAILED after the last attempt and the endpoint disabled;
//! redelivery; secret rotation; partners' own endpoints and what their payloads show;
//! internal destinations refused; two server processes and a killed one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tierwise_api::config::Config;
use tierwise_api::webhooks::Settings;

use crate::helpers::{
    Backend, ServerProcess, TestApp, TestDatabase, assert_error, claims, on_both, spawn_app_with,
    test_webhooks, token,
};

// ---------------------------------------------------------------------------------------
// A receiver

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    Status(u16),
    /// A status and `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// 200, after this long (longer than the server's timeout: a timeout).
    Slow(Duration),
}

#[derive(Clone, Debug)]
pub(crate) struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Replies to give, in order; 200 once they run out (or `always` when set).
    script: Arc<Mutex<VecDeque<Reply>>>,
    always: Arc<Mutex<Option<Reply>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1; returns the URL of its hook.
    pub(crate) async fn start(&self) -> String {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = self.clone();
        let hook = move |headers: HeaderMap, body: Bytes| {
            let receiver = receiver.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                receiver.received.lock().unwrap().push(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: body.to_vec(),
                    at: Instant::now(),
                });
                let reply = receiver
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .or(*receiver.always.lock().unwrap())
                    .unwrap_or(Reply::Status(200));
                match reply {
                    Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
                    Reply::RetryAfter(code, seconds) => (
                        StatusCode::from_u16(code).unwrap(),
                        [("retry-after", seconds.to_string())],
                        "come back later",
                    )
                        .into_response(),
                    Reply::Slow(wait) => {
                        tokio::time::sleep(wait).await;
                        StatusCode::OK.into_response()
                    }
                }
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(hook));
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}/hook")
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `done` holds for what was received.
    pub(crate) async fn until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests: {:#?}",
                received.len(),
                received.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Verifies a delivery's signature as a Standard Webhooks library does, with `secret`:
/// HMAC-SHA256 over `{id}.{timestamp}.{body}`, any of the space-separated `v1,…`.
fn signed_with(received: &Received, secret: &str) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", received.id, received.timestamp).as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    received
        .signature
        .split(' ')
        .any(|signature| signature == expected)
}

// ---------------------------------------------------------------------------------------
// The API

const ENDPOINT: &str = "id url description events enabled disabledReason owner createdAt";
const DELIVERY: &str = "id eventId eventType status attempts lastStatusCode lastError \
    nextAttemptAt createdAt deliveredAt payload endpoint { id }";

pub(crate) async fn create_endpoint(
    app: &TestApp,
    token: &str,
    url: &str,
    events: Value,
) -> (Value, String) {
    let created = app
        .ok_as(
            token,
            &format!(
                "mutation($input: WebhookEndpointInput!) {{
                   createWebhookEndpoint(input: $input) {{ secret endpoint {{ {ENDPOINT} }} }} }}"
            ),
            json!({ "input": { "url": url, "events": events, "description": "the shop" } }),
        )
        .await["createWebhookEndpoint"]
        .clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    (created["endpoint"].clone(), secret)
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    app.ok(
        &format!(
            "query($id: ID!) {{ webhookEndpoint(id: $id) {{
               deliveries(first: 100) {{ nodes {{ {DELIVERY} }} }} }} }}"
        ),
        json!({ "id": endpoint }),
    )
    .await["webhookEndpoint"]["deliveries"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every delivery of `endpoint` has left PENDING.
async fn settled_deliveries(app: &TestApp, endpoint: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = deliveries(app, endpoint).await;
        if all.len() >= count && all.iter().all(|d| d["status"] != "PENDING") {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server with these webhook settings.
async fn spawn_with_webhooks(backend: Backend, webhooks: Settings) -> Option<TestApp> {
    spawn_app_with(backend, |config| Config { webhooks, ..config }).await
}

async fn endpoint_state(app: &TestApp, endpoint: &str) -> Value {
    app.ok(
        "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }",
        json!({ "id": endpoint }),
    )
    .await["webhookEndpoint"]
        .clone()
}

async fn send_test(app: &TestApp, endpoint: &str) -> Value {
    app.ok(
        &format!("mutation($id: ID!) {{ sendTestWebhook(endpointId: $id) {{ {DELIVERY} }} }}"),
        json!({ "id": endpoint }),
    )
    .await["sendTestWebhook"]
        .clone()
}

async fn create_customer(app: &TestApp, input: Value) -> Value {
    app.ok(
        "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id referralCode } }",
        json!({ "input": input }),
    )
    .await["createCustomer"]
        .clone()
}

const PURCHASE: &str =
    "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { duplicate } }";
const ADJUST: &str = "mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) { id } }";

fn types_of(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests

async fn every_event_type_is_delivered_signed(app: TestApp) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (endpoint, secret) = create_endpoint(&app, &app.admin(), &url, json!(["*"])).await;
    assert_eq!(endpoint["events"], json!(["*"]));
    assert_eq!(endpoint["owner"], "admin-tester");
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();

    // A tier change (CREATED), ledger entries, a referral rewarded, an erasure, a test.
    let referrer = create_customer(
        &app,
        json!({ "name": "Wang Fang", "email": "fang@example.com" }),
    )
    .await;
    let referee = create_customer(
        &app,
        json!({ "name": "Li Lei", "referralCode": referrer["referralCode"] }),
    )
    .await;
    app.ok(
        ADJUST,
        json!({ "input": { "customerId": referrer["id"], "delta": 25, "reason": "welcome" } }),
    )
    .await;
    app.ok(
        PURCHASE,
        json!({ "input": { "customerId": referee["id"], "kind": "PURCHASE", "amount": "100" } }),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { eraseCustomer(id: $id) }",
        json!({ "id": referee["id"] }),
    )
    .await;
    send_test(&app, &endpoint_id).await;

    // The calendar's events: a birthday today, and a lot expiring within the reminder
    // window (points expire 10 days after a purchase here, reminders come 30 days ahead).
    app.ok(
        "mutation { updateProgramSettings(input: { pointsExpiryDays: 10, pointsExpiryReminderDays: 30 }) { pointsExpiryReminderDays } }",
        json!({}),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    let born = create_customer(
        &app,
        json!({ "name": "Zhao Yan", "birthday": format!("1990-{}", today.format("%m-%d")) }),
    )
    .await;
    app.ok(
        PURCHASE,
        json!({ "input": { "customerId": born["id"], "kind": "PURCHASE", "amount": "40" } }),
    )
    .await;
    let reminded =
        tierwise_api::jobs::reminders::send_reminders(&app.db, app.db.conn(), chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(
        reminded,
        (1, 1),
        "one birthday; one lot expiring within 30 days"
    );
    let again =
        tierwise_api::jobs::reminders::send_reminders(&app.db, app.db.conn(), chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(again, (0, 0), "each is announced once");

    let wanted = [
        "customer.tier_changed",
        "points.changed",
        "points.expiring",
        "referral.rewarded",
        "customer.lifecycle_changed",
        "customer.birthday",
        "customer.erased",
        "webhook.test",
    ];
    let received = receiver
        .until(Duration::from_secs(20), |got| {
            let types = types_of(got);
            wanted.iter().all(|t| types.iter().any(|got| got == t))
        })
        .await;
    for delivery in &received {
        assert!(
            signed_with(delivery, &secret),
            "signature of {:?}",
            delivery.json()
        );
        assert!(!signed_with(
            delivery,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ));
        let age = chrono::Utc::now().timestamp() - delivery.timestamp.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "webhook-timestamp is now");
        let body = delivery.json();
        assert!(
            body["timestamp"].is_string() && body["data"].is_object(),
            "{body}"
        );
    }
    let by_type = |t: &str| -> Vec<Value> {
        received
            .iter()
            .map(Received::json)
            .filter(|b| b["type"] == t)
            .collect()
    };
    let created = &by_type("customer.tier_changed")[0]["data"];
    assert_eq!(created["reason"], "CREATED");
    assert!(
        created["to"].is_string() && created["from"].is_null(),
        "{created}"
    );
    let points = by_type("points.changed");
    let welcome = points
        .iter()
        .find(|b| b["data"]["delta"] == 25)
        .expect("the adjustment");
    assert_eq!(welcome["data"]["customer"]["id"], referrer["id"]);
    assert_eq!(
        welcome["data"]["customer"]["email"], "fang@example.com",
        "an admin reads customers"
    );
    assert_eq!(welcome["data"]["reason"], "welcome");
    assert_eq!(welcome["data"]["balanceAfter"], 25);
    let rewarded = &by_type("referral.rewarded")[0]["data"];
    assert_eq!(rewarded["referrer"]["id"], referrer["id"]);
    assert_eq!(rewarded["referee"]["id"], referee["id"]);
    assert!(rewarded["referrerPoints"].as_i64().unwrap() > 0);
    assert_eq!(
        by_type("customer.erased")[0]["data"]["customer"]["id"],
        referee["id"]
    );
    assert_eq!(
        by_type("webhook.test")[0]["data"]["endpointId"],
        endpoint_id.as_str()
    );
    // The referee's first purchase made it a new customer.
    let moved = by_type("customer.lifecycle_changed");
    let first_purchase = moved
        .iter()
        .find(|b| b["data"]["customer"]["id"] == referee["id"])
        .expect("the referee's move");
    assert_eq!(first_purchase["data"]["from"], "PROSPECT");
    assert_eq!(first_purchase["data"]["to"], "NEW");
    let birthday = &by_type("customer.birthday")[0]["data"];
    assert_eq!(birthday["customer"]["id"], born["id"]);
    assert_eq!(birthday["date"], today.to_string());
    let lot = &by_type("points.expiring")[0]["data"];
    assert_eq!(lot["customer"]["id"], born["id"]);
    assert_eq!(lot["points"], 40);
    assert!(lot["expiresAt"].is_string());

    // Each event once, and every delivery recorded as SUCCEEDED on the first attempt.
    let ids: Vec<&str> = received.iter().map(|r| r.id.as_str()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no event twice");
    let recorded = settled_deliveries(&app, &endpoint_id, received.len()).await;
    assert_eq!(recorded.len(), received.len());
    for delivery in &recorded {
        assert_eq!(delivery["status"], "SUCCEEDED", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["lastStatusCode"], 200);
        assert!(delivery["deliveredAt"].is_string() && delivery["nextAttemptAt"].is_null());
        assert_eq!(delivery["endpoint"]["id"], endpoint_id.as_str());
        assert!(ids.contains(&delivery["eventId"].as_str().unwrap()));
    }
}

async fn failures_and_timeouts_are_retried_and_retry_after_is_honoured(app: TestApp) {
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().extend([
        Reply::Slow(Duration::from_secs(3)),
        Reply::RetryAfter(503, 3),
    ]);
    let url = receiver.start().await;
    let (endpoint, secret) =
        create_endpoint(&app, &app.admin(), &url, json!(["webhook.test"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    send_test(&app, endpoint_id).await;
    // A timeout (2 s in tests), 1 s, a 503 asking for 3 s, then 200.
    let received = receiver
        .until(Duration::from_secs(30), |got| got.len() >= 3)
        .await;
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "the same webhook-id each time"
    );
    assert!(received.iter().all(|r| signed_with(r, &secret)));
    let waited = received[2].at - received[1].at;
    assert!(
        waited >= Duration::from_millis(2900),
        "Retry-After: 3 is honoured over the schedule's 1 s: waited {waited:?}"
    );
    let recorded = settled_deliveries(&app, endpoint_id, 1).await;
    assert_eq!(recorded[0]["status"], "SUCCEEDED");
    assert_eq!(recorded[0]["attempts"], 3);
    // The failures are not held against it.
    assert_eq!(endpoint_state(&app, endpoint_id).await["enabled"], true);
}

async fn a_delivery_fails_after_its_last_attempt_and_a_failing_endpoint_is_disabled() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let settings = Settings {
            retry_schedule: vec![Duration::from_millis(200), Duration::from_millis(200)],
            disable_after: Duration::from_secs(3),
            ..test_webhooks()
        };
        let Some(app) = spawn_with_webhooks(backend, settings).await else {
            continue;
        };
        let receiver = Receiver::default();
        *receiver.always.lock().unwrap() = Some(Reply::Status(500));
        let url = receiver.start().await;
        let (endpoint, _) = create_endpoint(&app, &app.admin(), &url, json!(["*"])).await;
        let endpoint_id = endpoint["id"].as_str().unwrap();
        let started = Instant::now();
        send_test(&app, endpoint_id).await;
        // Three attempts (this schedule has two retries), then FAILED.
        let recorded = settled_deliveries(&app, endpoint_id, 1).await;
        let delivery = &recorded[0];
        assert_eq!(delivery["status"], "FAILED", "{delivery}");
        assert_eq!(delivery["attempts"], 3);
        assert_eq!(delivery["lastStatusCode"], 500);
        assert!(delivery["lastError"].as_str().unwrap().contains("500"));
        assert!(delivery["nextAttemptAt"].is_null());
        assert_eq!(receiver.received().len(), 3);
        let state = || endpoint_state(&app, endpoint_id);
        assert_eq!(state().await["enabled"], true, "not failing for long yet");
        // Still failing after WEBHOOK_DISABLE_AFTER: disabled, and told why.
        tokio::time::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed())).await;
        send_test(&app, endpoint_id).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let disabled = loop {
            let now = state().await;
            if now["enabled"] == false {
                break now;
            }
            assert!(Instant::now() < deadline, "never disabled: {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            disabled["disabledReason"].as_str().unwrap().contains("500"),
            "{disabled}"
        );
        // Nothing new is made for it while disabled.
        app.create_customer(json!({ "name": "Unseen" })).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(deliveries(&app, endpoint_id).await.len(), 2);

        // Fixed and enabled again: a redelivery succeeds.
        *receiver.always.lock().unwrap() = None;
        let enabled = app
            .ok(
                "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { enabled: true }) { enabled disabledReason } }",
                json!({ "id": endpoint_id }),
            )
            .await;
        assert_eq!(
            enabled["updateWebhookEndpoint"]["disabledReason"],
            Value::Null
        );
        let again = app
            .ok(
                &format!(
                    "mutation($id: ID!) {{ redeliverWebhook(deliveryId: $id) {{ {DELIVERY} }} }}"
                ),
                json!({ "id": delivery["id"] }),
            )
            .await["redeliverWebhook"]
            .clone();
        assert_eq!(again["status"], "PENDING");
        let received = receiver
            .until(Duration::from_secs(10), |got| {
                got.iter().filter(|r| r.id == got[0].id).count() == 4
            })
            .await;
        assert_eq!(
            received.len(),
            5,
            "three attempts, the one that disabled it, and this"
        );
        let recorded = settled_deliveries(&app, endpoint_id, 2).await;
        let first = recorded.iter().find(|d| d["id"] == delivery["id"]).unwrap();
        assert_eq!(first["status"], "SUCCEEDED");
        assert_eq!(first["attempts"], 4);
    }
}

async fn a_rotated_secret_signs_beside_the_new_one(app: TestApp) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (endpoint, old) = create_endpoint(&app, &app.admin(), &url, json!(["webhook.test"])).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let rotated = app
        .ok(
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }",
            json!({ "id": endpoint_id }),
        )
        .await["rotateWebhookSecret"]
        .clone();
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(new, old);
    send_test(&app, endpoint_id).await;
    let received = receiver
        .until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    assert_eq!(
        received[0].signature.split(' ').count(),
        2,
        "{}",
        received[0].signature
    );
    assert!(signed_with(&received[0], new), "the new secret verifies");
    assert!(
        signed_with(&received[0], &old),
        "and the old one, for a day"
    );
    // /metrics counts the attempt and measures it.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("tierwise_webhook_attempts_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tierwise_webhook_attempt_seconds"));
    // Deliveries older than the retention are pruned.
    settled_deliveries(&app, endpoint_id, 1).await;
    let db = app.db.conn();
    use tierwise_api::store::webhooks::prune_deliveries;
    let kept = prune_deliveries(db, chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(kept, 0, "nothing is a day old");
    let pruned = prune_deliveries(db, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(deliveries(&app, endpoint_id).await.is_empty());
    // The secret is shown only when made.
    let listed = app.ok("{ webhookEndpoints { id url } }", json!({})).await;
    assert!(!listed.to_string().contains(new));
    // Deleting the endpoint deletes its deliveries with it.
    send_test(&app, endpoint_id).await;
    settled_deliveries(&app, endpoint_id, 1).await;
    let deleted = app
        .ok(
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": endpoint_id }),
        )
        .await;
    assert_eq!(deleted["deleteWebhookEndpoint"], true);
    use sea_orm::{EntityTrait, PaginatorTrait};
    let left = entity::webhook_delivery::Entity::find()
        .count(app.db.conn())
        .await
        .unwrap();
    assert_eq!(left, 0, "no delivery outlives its endpoint");
}

async fn partners_manage_their_own_endpoints_and_see_only_what_they_may_read(app: TestApp) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let integrator = app.sign(&tierwise_api::auth::Claims {
        sub: "shop-42".into(),
        scope: Some("webhooks:manage".into()),
        ..claims("partner")
    });
    let other = app.sign(&tierwise_api::auth::Claims {
        sub: "crm-7".into(),
        scope: Some("webhooks:manage customers:read".into()),
        ..claims("partner")
    });
    let (mine, _) = create_endpoint(&app, &integrator, &url, json!(["points.changed"])).await;
    assert_eq!(mine["owner"], "shop-42");
    let mine_id = mine["id"].as_str().unwrap();
    let (admins, _) = create_endpoint(&app, &app.admin(), &url, json!(["points.changed"])).await;

    // Each partner sees its own; the admin sees all; nobody else may ask.
    let list = |token: String| {
        let app = &app;
        async move {
            app.ok_as(&token, "{ webhookEndpoints { id } }", json!({}))
                .await["webhookEndpoints"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(list(integrator.clone()).await, 1);
    assert_eq!(list(other.clone()).await, 0);
    assert_eq!(list(app.admin()).await, 2);
    let theirs = app
        .ok_as(
            &other,
            "query($id: ID!) { webhookEndpoint(id: $id) { id } }",
            json!({ "id": mine_id }),
        )
        .await;
    assert_eq!(
        theirs["webhookEndpoint"],
        Value::Null,
        "another partner's is not there"
    );
    for (query, variables) in [
        (
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": mine_id }),
        ),
        (
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": mine_id }),
        ),
        (
            "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { id } }",
            json!({ "id": mine_id }),
        ),
    ] {
        assert_error(&app.gql(Some(&other), query, variables).await, "NOT_FOUND");
    }
    let customer = app.create_customer(json!({ "name": "Zhou Min" })).await;
    for token in [
        app.staff(),
        app.partner("customers:read events:subscribe"),
        app.customer_token(&customer),
    ] {
        assert_error(
            &app.gql(Some(&token), "{ webhookEndpoints { id } }", json!({}))
                .await,
            "FORBIDDEN",
        );
    }
    assert!(
        app.gql(None, "{ webhookEndpoints { id } }", json!({}))
            .await["errors"]
            .is_array()
    );
    // A partner whose `sub` is an admin's owns none of the admin's endpoints.
    let impostor = app.sign(&tierwise_api::auth::Claims {
        sub: "admin-tester".into(),
        scope: Some("webhooks:manage".into()),
        ..claims("partner")
    });
    assert_eq!(list(impostor.clone()).await, 0);
    assert_error(
        &app.gql(
            Some(&impostor),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": admins["id"] }),
        )
        .await,
        "NOT_FOUND",
    );

    // A partner without `customers:read` gets ids and externalRef, not the profile.
    let person = create_customer(
        &app,
        json!({ "name": "Sun Li", "email": "li@example.com", "phone": "+8613800138000", "externalRef": "POS-9" }),
    )
    .await;
    app.ok(
        ADJUST,
        json!({ "input": { "customerId": person["id"], "delta": 7, "reason": "called about her order" } }),
    )
    .await;
    let received = receiver
        .until(Duration::from_secs(15), |got| got.len() >= 2)
        .await;
    assert_eq!(received.len(), 2, "one delivery per endpoint");
    let shop = deliveries_payload(&app, mine_id).await;
    assert_eq!(
        shop["customer"],
        json!({ "id": person["id"], "externalRef": "POS-9" })
    );
    assert!(
        shop.get("reason").is_none(),
        "free text is personal: {shop}"
    );
    assert_eq!(shop["delta"], 7);
    let full = deliveries_payload(&app, admins["id"].as_str().unwrap()).await;
    assert_eq!(full["customer"]["email"], "li@example.com");
    assert_eq!(full["reason"], "called about her order");
    let bodies: Vec<String> = received
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("li@example.com"))
            .count(),
        1,
        "only the admin's endpoint got the e-mail address"
    );

    // crm-7's endpoint carries personal data (it may read customers). The same partner
    // with a token without customers:read reads its payloads cut down, and a change it
    // makes (pointing the endpoint elsewhere) takes the personal data away for good.
    let (crm, _) = create_endpoint(&app, &other, &url, json!(["points.changed"])).await;
    let crm_id = crm["id"].as_str().unwrap();
    app.ok(
        ADJUST,
        json!({ "input": { "customerId": person["id"], "delta": 3, "reason": "second call" } }),
    )
    .await;
    let weaker = app.sign(&tierwise_api::auth::Claims {
        sub: "crm-7".into(),
        scope: Some("webhooks:manage".into()),
        ..claims("partner")
    });
    settled_deliveries(&app, crm_id, 1).await;
    let seen = app
        .ok_as(
            &weaker,
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { payload } } } }",
            json!({ "id": crm_id }),
        )
        .await;
    let payload = &seen["webhookEndpoint"]["deliveries"]["nodes"][0]["payload"];
    assert_eq!(
        payload["customer"],
        json!({ "id": person["id"], "externalRef": "POS-9" }),
        "{payload}"
    );
    assert!(payload.get("reason").is_none());
    app.ok_as(
        &weaker,
        "mutation($id: ID!, $url: String!) { updateWebhookEndpoint(id: $id, input: { url: $url }) { id } }",
        json!({ "id": crm_id, "url": format!("{url}?moved") }),
    )
    .await;
    app.ok(
        ADJUST,
        json!({ "input": { "customerId": person["id"], "delta": 4, "reason": "third call" } }),
    )
    .await;
    let fourth = |got: &[Received]| -> Vec<String> {
        got.iter()
            .filter(|r| r.json()["data"]["delta"] == 4)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect()
    };
    let got = receiver
        .until(Duration::from_secs(15), |got| fourth(got).len() >= 3)
        .await;
    let bodies = fourth(&got);
    assert_eq!(
        bodies.len(),
        3,
        "the shop's, the admin's and crm-7's endpoints"
    );
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("li@example.com"))
            .count(),
        1,
        "only the admin's endpoint still gets the e-mail address"
    );
}

async fn deliveries_payload(app: &TestApp, endpoint: &str) -> Value {
    let all = settled_deliveries(app, endpoint, 1).await;
    all[0]["payload"].clone()
}

async fn bad_endpoints_and_internal_destinations_are_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let settings = Settings {
            allow_http: true,
            allow_private: false,
            ..test_webhooks()
        };
        let Some(app) = spawn_with_webhooks(backend, settings).await else {
            continue;
        };
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let port = url
            .split(':')
            .nth(2)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let create = |url: String, events: Value| {
            let app = &app;
            async move {
                app.gql(
                    Some(&app.admin()),
                    "mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }",
                    json!({ "input": { "url": url, "events": events } }),
                )
                .await
            }
        };
        for (bad, field) in [
            (format!("http://127.0.0.1:{port}/hook"), "loopback"),
            (
                "http://169.254.169.254/latest/meta-data".to_owned(),
                "metadata",
            ),
            (format!("http://[::1]:{port}/hook"), "loopback v6"),
            ("http://10.0.0.8/hook".to_owned(), "private"),
            ("ftp://example.com/hook".to_owned(), "scheme"),
            ("https://user:pw@example.com/hook".to_owned(), "credentials"),
        ] {
            let body = create(bad.clone(), json!(["*"])).await;
            assert_error(&body, "BAD_USER_INPUT");
            assert!(body.to_string().contains("input.url"), "{field}: {body}");
        }
        assert_error(
            &create("https://example.com/hook".into(), json!([])).await,
            "BAD_USER_INPUT",
        );
        assert_error(
            &create("https://example.com/hook".into(), json!(["points.changd"])).await,
            "BAD_USER_INPUT",
        );
        // A host name is checked where it is resolved: `localhost` is 127.0.0.1.
        let (endpoint, _) = create_endpoint(
            &app,
            &app.admin(),
            &format!("http://localhost:{port}/hook"),
            json!(["webhook.test"]),
        )
        .await;
        let endpoint_id = endpoint["id"].as_str().unwrap();
        send_test(&app, endpoint_id).await;
        let recorded = settled_deliveries(&app, endpoint_id, 1).await;
        assert_eq!(recorded[0]["status"], "FAILED");
        let error = recorded[0]["lastError"].as_str().unwrap();
        assert!(error.contains("may not reach"), "{error}");
        assert!(
            !error.contains("127.0.0.1"),
            "the address it resolved to is not told: {error}"
        );
        assert!(
            receiver.received().is_empty(),
            "nothing reached the receiver"
        );
    }
    // And plain http is refused by default.
    let Some(app) = spawn_with_webhooks(Backend::Sqlite, Settings::default()).await else {
        return;
    };
    let body = app
        .gql(
            Some(&app.admin()),
            "mutation { createWebhookEndpoint(input: { url: \"http://example.com/hook\", events: [\"*\"] }) { secret } }",
            json!({}),
        )
        .await;
    assert_error(&body, "BAD_USER_INPUT");
    assert!(body.to_string().contains("https"), "{body}");
}

/// The churn early warning: an evaluation run that finds a customer drifting away sends
/// `customer.lifecycle_changed` to `AT_RISK`.
async fn a_run_announces_customers_moving_to_at_risk(app: TestApp) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (endpoint, _) = create_endpoint(
        &app,
        &app.admin(),
        &url,
        json!(["customer.lifecycle_changed"]),
    )
    .await;
    let drifting = create_customer(&app, json!({ "name": "Qian Hui" })).await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(100);
    app.ok(
        PURCHASE,
        json!({ "input": { "customerId": drifting["id"], "kind": "PURCHASE", "amount": "80", "occurredAt": long_ago } }),
    )
    .await;
    let first = receiver
        .until(Duration::from_secs(10), |got| got.len() == 1)
        .await;
    let stage_then = first[0].json()["data"]["to"].as_str().unwrap().to_owned();
    assert_ne!(stage_then, "AT_RISK");
    app.ok(
        "mutation { updateProgramSettings(input: { atRiskDays: 50 }) { atRiskDays } }",
        json!({}),
    )
    .await;
    let run = app
        .ok("mutation { evaluateTiers { status } }", json!({}))
        .await;
    assert_eq!(run["evaluateTiers"]["status"], "SUCCEEDED");
    let received = receiver
        .until(Duration::from_secs(10), |got| got.len() == 2)
        .await;
    let warning = received[1].json();
    assert_eq!(warning["data"]["customer"]["id"], drifting["id"]);
    assert_eq!(warning["data"]["from"], stage_then.as_str());
    assert_eq!(warning["data"]["to"], "AT_RISK");
    settled_deliveries(&app, endpoint["id"].as_str().unwrap(), 2).await;
}

/// A partner whose endpoint never answers, flooding it with test events, holds at most
/// its share of the attempt slots: another owner's delivery goes out at once.
async fn one_owners_dead_endpoint_does_not_hold_up_the_others(app: TestApp) {
    let dead = Receiver::default();
    *dead.always.lock().unwrap() = Some(Reply::Slow(Duration::from_secs(30)));
    let dead_url = dead.start().await;
    let alive = Receiver::default();
    let alive_url = alive.start().await;
    let flooder = app.sign(&tierwise_api::auth::Claims {
        sub: "flooder".into(),
        scope: Some("webhooks:manage".into()),
        ..claims("partner")
    });
    let (stuck, _) = create_endpoint(&app, &flooder, &dead_url, json!(["webhook.test"])).await;
    for _ in 0..40 {
        app.ok_as(
            &flooder,
            "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { id } }",
            json!({ "id": stuck["id"] }),
        )
        .await;
    }
    // The flood is being attempted (each attempt waits the 2 s timeout).
    dead.until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    let (healthy, _) =
        create_endpoint(&app, &app.admin(), &alive_url, json!(["webhook.test"])).await;
    let sent = Instant::now();
    send_test(&app, healthy["id"].as_str().unwrap()).await;
    alive
        .until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "delivered in {:?}, not behind the flood",
        sent.elapsed()
    );
    let attempted_at_once = dead.received().len();
    assert!(
        attempted_at_once <= 8,
        "the flooder held at most its share of slots: {attempted_at_once} attempts in flight"
    );
}

/// An owner holds at most 100 endpoints, and a query cannot fan out over all of them
/// and their deliveries at once.
async fn an_owners_endpoints_are_bounded(app: TestApp) {
    let owner = app.sign(&tierwise_api::auth::Claims {
        sub: "busy-shop".into(),
        scope: Some("webhooks:manage".into()),
        ..claims("partner")
    });
    for i in 0..100 {
        let (endpoint, _) = create_endpoint(
            &app,
            &owner,
            &format!("https://shop.example.com/hook/{i}"),
            json!(["*"]),
        )
        .await;
        assert!(endpoint["id"].is_string());
    }
    let refused = app
        .gql(
            Some(&owner),
            "mutation { createWebhookEndpoint(input: { url: \"https://shop.example.com/one-more\", events: [\"*\"] }) { secret } }",
            json!({}),
        )
        .await;
    assert_error(&refused, "CONFLICT");
    let aliases: Vec<String> = (0..20)
        .map(|i| format!("a{i}: webhookEndpoints {{ id deliveries(first: 20) {{ totalCount nodes {{ id payload }} }} }}"))
        .collect();
    let expensive = app
        .gql(
            Some(&owner),
            &format!("{{ {} }}", aliases.join(" ")),
            json!({}),
        )
        .await;
    assert!(
        expensive.to_string().contains("cost"),
        "refused before it runs: {expensive}"
    );
}

on_both!(
    an_owners_endpoints_are_bounded,
    one_owners_dead_endpoint_does_not_hold_up_the_others,
    a_run_announces_customers_moving_to_at_risk,
    every_event_type_is_delivered_signed,
    failures_and_timeouts_are_retried_and_retry_after_is_honoured,
    a_rotated_secret_signs_beside_the_new_one,
    partners_manage_their_own_endpoints_and_see_only_what_they_may_read,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoints() {
    a_delivery_fails_after_its_last_attempt_and_a_failing_endpoint_is_disabled().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_destinations() {
    bad_endpoints_and_internal_destinations_are_refused().await;
}

// ---------------------------------------------------------------------------------------
// Server processes

const PROCESS_WEBHOOKS: [(&str, &str); 4] = [
    ("WEBHOOK_ALLOW_HTTP", "true"),
    ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ("WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
    ("WEBHOOK_TIMEOUT", "2s"),
];

/// Two `tierwise serve` processes on one Postgres database: each event reaches the
/// endpoint once, though both fan out and dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_deliver_each_event_once() {
    let Some(database) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let (first, second) = ServerProcess::pair(&database.url, &PROCESS_WEBHOOKS).await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let admin = token("admin");
    first
        .ok(
            &admin,
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url, events: [\"points.changed\"] }) { secret } }",
            json!({ "url": url }),
        )
        .await;
    let customer = first
        .ok(
            &admin,
            "mutation { createCustomer(input: { name: \"Busy\" }) { id } }",
            json!({}),
        )
        .await["createCustomer"]["id"]
        .clone();
    let changes = 40;
    let mut writes = Vec::new();
    for i in 0..changes {
        let server = if i % 2 == 0 { &first } else { &second };
        writes.push(server.ok(
            &admin,
            ADJUST,
            json!({ "input": { "customerId": customer, "delta": 1, "reason": format!("change {i}") } }),
        ));
    }
    futures_util::future::join_all(writes).await;
    receiver
        .until(Duration::from_secs(30), |got| got.len() >= changes)
        .await;
    // A moment more: a second copy of any event would arrive now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *counts.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), changes, "every change");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    drop((first, second));
}

/// A server killed while a receiver is still answering leaves the attempt claimed; the
/// server started again (or any replica) makes the attempt once the claim lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_delivery_delivers_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tierwise.db", dir.path().display());
    let receiver = Receiver::default();
    receiver
        .script
        .lock()
        .unwrap()
        .push_back(Reply::Slow(Duration::from_secs(30)));
    let hook = receiver.start().await;
    let mut server = ServerProcess::start(&url, &PROCESS_WEBHOOKS);
    server.wait_until_ready().await;
    let admin = token("admin");
    let endpoint = server
        .ok(
            &admin,
            "mutation($url: String!) { createWebhookEndpoint(input: { url: $url, events: [\"*\"] }) { endpoint { id } } }",
            json!({ "url": hook }),
        )
        .await["createWebhookEndpoint"]["endpoint"]["id"]
        .clone();
    server
        .ok(
            &admin,
            "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { id } }",
            json!({ "id": endpoint }),
        )
        .await;
    // The attempt is in flight (the receiver holds it); the server dies.
    let first = receiver
        .until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    server.kill();
    let restarted = ServerProcess::start(&url, &PROCESS_WEBHOOKS);
    restarted.wait_until_ready().await;
    // The claim lasts two timeouts and ten seconds (14 s here), then the attempt is made
    // again, with the same webhook-id.
    let received = receiver
        .until(Duration::from_secs(40), |got| got.len() >= 2)
        .await;
    assert_eq!(received[1].id, first[0].id);
    let deliveries = restarted
        .ok(
            &admin,
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { status attempts } } } }",
            json!({ "id": endpoint }),
        )
        .await;
    let delivery = &deliveries["webhookEndpoint"]["deliveries"]["nodes"][0];
    assert_eq!(delivery["status"], "SUCCEEDED", "{delivery}");
    drop(restarted);
}
