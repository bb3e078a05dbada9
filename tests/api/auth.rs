//! Authentication: every way a token can be wrong is refused with UNAUTHENTICATED.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tierwise_api::auth::{Claims, JwtKeys};

use crate::helpers::{
    AUDIENCE, Backend, ISSUER, SECRET, TestApp, assert_error, claims, on_both, sign_raw,
    spawn_app_with_keys,
};

const VIEWER: &str = "{ viewer { subject role } }";

async fn refused(app: &TestApp, token: Option<&str>) -> String {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": VIEWER }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    assert_error(&body, "UNAUTHENTICATED")
}

fn raw_claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({ "sub": "someone", "role": "admin", "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE });
    for (key, value) in overrides.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

async fn valid_token_is_accepted(app: TestApp) {
    let data = app.ok_as(&app.staff(), VIEWER, json!({})).await;
    assert_eq!(
        data["viewer"],
        json!({ "subject": "staff-tester", "role": "STAFF" })
    );
}

async fn missing_or_malformed_header_is_refused(app: TestApp) {
    assert!(refused(&app, None).await.contains("Authorization"));
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", format!("Basic {}", app.admin()))
        .json(&json!({ "query": VIEWER }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    refused(&app, Some("not-a-jwt")).await;
}

async fn expired_and_not_yet_valid_tokens_are_refused(app: TestApp) {
    let now = chrono::Utc::now().timestamp();
    let expired = app.sign(&Claims {
        exp: now - 120,
        ..claims("admin")
    });
    assert!(refused(&app, Some(&expired)).await.contains("expired"));
    let early = app.sign(&Claims {
        nbf: Some(now + 3600),
        ..claims("admin")
    });
    assert!(refused(&app, Some(&early)).await.contains("not valid yet"));
    let started = app.sign(&Claims {
        nbf: Some(now - 10),
        ..claims("admin")
    });
    app.ok_as(&started, VIEWER, json!({})).await;
}

async fn exp_and_sub_are_required(app: TestApp) {
    let no_exp = sign_raw(
        &raw_claims(json!({ "exp": null })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    refused(&app, Some(&no_exp)).await;
    let no_sub = sign_raw(
        &raw_claims(json!({ "sub": null })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    refused(&app, Some(&no_sub)).await;
}

async fn wrong_key_issuer_and_audience_are_refused(app: TestApp) {
    let other_key = sign_raw(
        &raw_claims(json!({})),
        Algorithm::HS256,
        b"some-other-secret-some-other-secret-0123",
    );
    assert!(refused(&app, Some(&other_key)).await.contains("signature"));
    let wrong_issuer = sign_raw(
        &raw_claims(json!({ "iss": "https://evil.test" })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    assert!(refused(&app, Some(&wrong_issuer)).await.contains("issuer"));
    let no_issuer = sign_raw(
        &raw_claims(json!({ "iss": null })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    refused(&app, Some(&no_issuer)).await;
    let wrong_audience = sign_raw(
        &raw_claims(json!({ "aud": "another-api" })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    assert!(
        refused(&app, Some(&wrong_audience))
            .await
            .contains("audience")
    );
    let right = sign_raw(&raw_claims(json!({})), Algorithm::HS256, SECRET.as_bytes());
    app.ok_as(&right, VIEWER, json!({})).await;
}

async fn other_algorithms_are_refused(app: TestApp) {
    let hs512 = sign_raw(&raw_claims(json!({})), Algorithm::HS512, SECRET.as_bytes());
    refused(&app, Some(&hs512)).await;
    // `alg: none`, unsigned.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(raw_claims(json!({})).to_string());
    refused(&app, Some(&format!("{header}.{payload}."))).await;
    refused(&app, Some(&format!("{header}.{payload}"))).await;
}

async fn tampered_tokens_are_refused(app: TestApp) {
    let token = app.staff();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert!(refused(&app, Some(&forged)).await.contains("signature"));
}

async fn unknown_roles_and_customer_tokens_without_customer_are_refused(app: TestApp) {
    let root = app.sign(&claims("root"));
    assert!(refused(&app, Some(&root)).await.contains("role"));
    let customer = app.sign(&claims("customer"));
    assert!(refused(&app, Some(&customer)).await.contains("customer_id"));
}

on_both!(
    valid_token_is_accepted,
    missing_or_malformed_header_is_refused,
    expired_and_not_yet_valid_tokens_are_refused,
    exp_and_sub_are_required,
    wrong_key_issuer_and_audience_are_refused,
    other_algorithms_are_refused,
    tampered_tokens_are_refused,
    unknown_roles_and_customer_tokens_without_customer_are_refused,
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A server configured with a public key accepts tokens of that key's algorithm only —
/// in particular not an HS256 token "signed" with the public key as its secret.
async fn public_key_server(public: &str, private: &str, expected: Algorithm) {
    let keys = JwtKeys::public_key(&fixture(public), Some(&fixture(private)), None, None).unwrap();
    assert_eq!(keys.algorithm(), expected);
    let app = spawn_app_with_keys(Backend::Sqlite, keys).await.unwrap();
    let token = app.sign(&Claims {
        iss: None,
        aud: None,
        ..claims("admin")
    });
    assert_eq!(
        app.ok_as(&token, VIEWER, json!({})).await["viewer"]["role"],
        "ADMIN"
    );
    let confused = sign_raw(
        &raw_claims(json!({ "iss": null, "aud": null })),
        Algorithm::HS256,
        &fixture(public),
    );
    refused(&app, Some(&confused)).await;
    let hs256 = sign_raw(
        &raw_claims(json!({ "iss": null, "aud": null })),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    assert!(refused(&app, Some(&hs256)).await.contains("algorithm"));
}

#[tokio::test]
async fn eddsa_public_key_verification() {
    public_key_server(
        "ed25519-public.pem",
        "ed25519-private.pem",
        Algorithm::EdDSA,
    )
    .await;
}

#[tokio::test]
async fn rs256_public_key_verification() {
    public_key_server("rsa-public.pem", "rsa-private.pem", Algorithm::RS256).await;
}
