//! Tokens from an identity provider (`JWT_JWKS_URL`): a provider served on loopback
//! publishes RS256, ES256 and EdDSA keys and rotates them; its tokens carry Keycloak's
//! `realm_access.roles`, scopes in `scp`, and the user's id in `sub`, which is the
//! customer's `externalRef`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tierwise_api::auth::Role;
use tierwise_api::auth::jwks::Jwks;
use tierwise_api::auth::mapping::{ClaimMapping, ClaimPath, CustomerMatch};

use crate::helpers::{
    AUDIENCE, Backend, ISSUER, TestApp, assert_error, on_both_backends, spawn_app_with_keys,
    test_keys,
};

/// How long the server waits between two fetches for unknown keys, in these tests.
const MIN_REFETCH: Duration = Duration::from_secs(1);

/// The provider: its published keys, the `max-age` it sends, and how often it was asked.
#[derive(Clone)]
struct Provider {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    max_age: Arc<Mutex<u64>>,
    fetches: Arc<AtomicUsize>,
}

impl Provider {
    async fn start() -> Self {
        let provider = Self {
            url: String::new(),
            keys: Arc::new(Mutex::new(Vec::new())),
            max_age: Arc::new(Mutex::new(300)),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let serving = provider.clone();
        let router = axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                let serving = serving.clone();
                async move {
                    serving.fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = serving.keys.lock().unwrap().clone();
                    let max_age = *serving.max_age.lock().unwrap();
                    (
                        [("cache-control", format!("public, max-age={max_age}"))],
                        axum::Json(json!({ "keys": keys })),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url: format!("http://{address}/certs"),
            ..provider
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A key the provider signs with, and its public half as a JWK.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn signing_key(file: &str, kid: &str) -> SigningKey {
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/jwks/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (algorithm, key) = match file {
        "ec.pem" => (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap()),
        "ed.pem" => (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap()),
        _ => (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap()),
    };
    let mut jwk = Jwk::from_encoding_key(&key, algorithm).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    SigningKey {
        kid: kid.to_owned(),
        algorithm,
        key,
        jwk: serde_json::to_value(jwk).unwrap(),
    }
}

impl SigningKey {
    /// A token as the provider issues it, with `claims` added to its standard ones.
    fn token(&self, claims: Value) -> String {
        self.token_as(&self.kid, claims)
    }

    fn token_as(&self, kid: &str, claims: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut all = json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now });
        all.as_object_mut()
            .unwrap()
            .extend(claims.as_object().unwrap().clone());
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &all, &self.key).unwrap()
    }
}

/// A server that takes Keycloak-shaped tokens from `provider` (and its own tokens too).
async fn app_with(provider: &Provider, backend: Backend) -> Option<TestApp> {
    let mapping = ClaimMapping {
        role: ClaimPath::new("realm_access.roles"),
        default_role: Some(Role::Customer),
        scope: ClaimPath::new("scp"),
        customer: ClaimPath::new("sub"),
        customer_match: CustomerMatch::ExternalRef,
    };
    let jwks = Arc::new(Jwks::with_min_refetch(provider.url.clone(), MIN_REFETCH));
    spawn_app_with_keys(backend, test_keys().with_identity_provider(jwks, mapping)).await
}

async fn status_of(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

const ME: &str = "{ viewer { role customer { id name } } }";

async fn provider_tokens_work_with_their_own_claims(backend: Backend) {
    let provider = Provider::start().await;
    let (rsa, ec, ed) = (
        signing_key("rsa-1.pem", "rsa-1"),
        signing_key("ec.pem", "ec-1"),
        signing_key("ed.pem", "ed-1"),
    );
    provider.publish(&[&rsa, &ec, &ed]);
    let Some(app) = app_with(&provider, backend).await else {
        return;
    };
    let mei = app
        .create_customer(json!({ "name": "Mei", "externalRef": "idp-user-7" }))
        .await;

    // A customer signed in through the provider (RS256): its sub is the externalRef.
    let customer = rsa.token(json!({
        "sub": "idp-user-7",
        "realm_access": { "roles": ["offline_access", "uma_authorization", "customer"] }
    }));
    let (status, body) = status_of(&app, &customer, ME).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["viewer"]["customer"]["id"],
        mei.as_str(),
        "{body}"
    );
    // Without any role claim: the default role (customer).
    let plain = ed.token(json!({ "sub": "idp-user-7" }));
    let (_, body) = status_of(&app, &plain, ME).await;
    assert_eq!(body["data"]["viewer"]["role"], "CUSTOMER", "{body}");
    // Staff (ES256) list customers.
    let staff = ec.token(json!({ "sub": "agent-1", "realm_access": { "roles": ["STAFF"] } }));
    let (status, body) = status_of(&app, &staff, "{ customers(first: 5) { totalCount } }").await;
    assert_eq!(
        (status, &body["data"]["customers"]["totalCount"]),
        (200, &json!(1)),
        "{body}"
    );
    // A partner (EdDSA) with scopes as a list.
    let partner = ed.token(json!({
        "sub": "pos-9", "realm_access": { "roles": ["partner"] }, "scp": ["customers:read"]
    }));
    let read = format!("{{ customer(id: \"{mei}\") {{ name }} }}");
    let (_, body) = status_of(&app, &partner, &read).await;
    assert_eq!(body["data"]["customer"]["name"], "Mei", "{body}");
    let unscoped = ed.token(json!({ "sub": "pos-9", "realm_access": { "roles": ["partner"] } }));
    let (_, body) = status_of(&app, &unscoped, &read).await;
    assert_error(&body, "FORBIDDEN");
    // A customer the provider knows and Tierwise does not.
    let stranger = rsa.token(json!({ "sub": "idp-user-404" }));
    let (status, body) = status_of(&app, &stranger, ME).await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "UNAUTHENTICATED");
    // Tierwise's own tokens still work beside the provider's.
    assert_eq!(
        app.ok("{ viewer { role } }", json!({})).await["viewer"]["role"],
        "ADMIN"
    );
    // Over WebSocket too.
    let mut ws = crate::ws_client::Ws::open(&app, crate::ws_client::TRANSPORT, &customer).await;
    ws.sync().await;
}

async fn keys_rotate_without_hammering_the_provider(backend: Backend) {
    let provider = Provider::start().await;
    let (old, new) = (
        signing_key("rsa-1.pem", "2026-11"),
        signing_key("rsa-2.pem", "2026-12"),
    );
    provider.publish(&[&old]);
    let Some(app) = app_with(&provider, backend).await else {
        return;
    };
    let staff = |key: &SigningKey| {
        key.token(json!({ "sub": "agent", "realm_access": { "roles": ["staff"] } }))
    };
    let ok = |status: u16| status == 200;
    assert!(ok(status_of(&app, &staff(&old), ME).await.0));
    assert_eq!(provider.fetches(), 1, "fetched once, then kept");
    assert!(ok(status_of(&app, &staff(&old), ME).await.0));
    assert_eq!(provider.fetches(), 1);

    // Tokens naming keys the provider does not publish: one fetch, however many.
    let made_up = old.token_as(
        "made-up",
        json!({ "sub": "x", "realm_access": { "roles": ["admin"] } }),
    );
    for _ in 0..20 {
        let (status, body) = status_of(&app, &made_up, ME).await;
        assert_eq!(status, 401, "{body}");
    }
    assert!(provider.fetches() <= 2, "fetches: {}", provider.fetches());

    // The provider rotates: it publishes the new key beside the old one, then signs with
    // it. The unknown kid makes the server fetch again (once MIN_REFETCH has passed).
    provider.publish(&[&old, &new]);
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(100)).await;
    let (status, body) = status_of(&app, &staff(&new), ME).await;
    assert_eq!(status, 200, "the new key is fetched: {body}");
    assert!(
        ok(status_of(&app, &staff(&old), ME).await.0),
        "both keys at once"
    );

    // The old key is withdrawn; once the set's max-age runs out, its tokens are refused.
    *provider.max_age.lock().unwrap() = 1;
    provider.publish(&[&new]);
    tokio::time::sleep(MIN_REFETCH + Duration::from_millis(100)).await;
    // A fetch for an unknown kid brings the short max-age…
    status_of(&app, &made_up, ME).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // …and the stale set is fetched again when next used.
    let mut refused = false;
    for _ in 0..20 {
        if status_of(&app, &staff(&old), ME).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(refused, "a withdrawn key stops working");
    assert!(ok(status_of(&app, &staff(&new), ME).await.0));
}

/// A token cannot choose how it is checked: an HS256 token "signed" with the provider's
/// public RSA key, or an RS256 token signed with another key under a published kid.
async fn forged_provider_tokens_are_refused(backend: Backend) {
    let provider = Provider::start().await;
    let (published, other) = (
        signing_key("rsa-1.pem", "k1"),
        signing_key("rsa-2.pem", "k2"),
    );
    provider.publish(&[&published]);
    let Some(app) = app_with(&provider, backend).await else {
        return;
    };
    let claims = json!({ "sub": "x", "realm_access": { "roles": ["admin"] } });
    let modulus = published.jwk["n"].as_str().unwrap().to_owned();
    let hmac = SigningKey {
        kid: "k1".into(),
        algorithm: Algorithm::HS256,
        key: EncodingKey::from_secret(modulus.as_bytes()),
        jwk: Value::Null,
    };
    for token in [
        hmac.token(claims.clone()),
        other.token_as("k1", claims.clone()),
    ] {
        let (status, body) = status_of(&app, &token, ME).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(status_of(&app, &published.token(claims), ME).await.0, 200);
}

on_both_backends!(
    provider_tokens_work_with_their_own_claims,
    keys_rotate_without_hammering_the_provider,
    forged_provider_tokens_are_refused,
);
