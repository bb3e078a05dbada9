//! Keys published by an identity provider (Keycloak, Auth0, Cognito, Authing, a WeChat
//! login service…) as a JSON Web Key Set at `JWT_JWKS_URL`.
//!
//! - Keys are fetched on first use and kept until the response's `Cache-Control:
//!   max-age` runs out (5 minutes without one; at least `MIN_REFETCH`, at most a day).
//! - A token naming a `kid` the set does not hold makes the set be fetched again — a
//!   provider rotating its keys publishes the new one before signing with it — at most
//!   once per `MIN_REFETCH`, so that tokens with made-up `kid`s cannot make Tierwise
//!   hammer the provider. Every key of the set is accepted at once, old and new.
//! - Each key verifies only the algorithm its type implies (RSA: RS256, EC P-256:
//!   ES256, Ed25519: EdDSA), whatever a token's header claims: a token cannot pick the
//!   algorithm its key is checked with.
//! - A failed fetch keeps the keys already held (the provider being down does not lock
//!   everyone out) and is logged.
//!
//! The set is held per process: it is a cache of what the provider publishes, so every
//! replica fetching its own copy is correct.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::domain::DomainError;

/// The least time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const LONGEST_MAX_AGE: Duration = Duration::from_secs(86_400);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS larger than this is refused (providers publish a few keys, a few KiB).
const MAX_BYTES: usize = 256 * 1024;

/// A verifying key and the one algorithm it verifies.
#[derive(Clone)]
pub struct PublishedKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// What a call to `fetch` did.
enum Fetched {
    Replaced,
    Failed,
    /// Too soon after the last fetch, or another one is under way.
    Skipped,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, PublishedKey>,
    /// When the set must be fetched again; `None` before the first fetch.
    fresh_until: Option<Instant>,
}

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    set: RwLock<KeySet>,
    /// When the last fetch started: one fetch at a time, and unknown `kid`s fetch at
    /// most once per `MIN_REFETCH`.
    last_fetch: Mutex<Option<Instant>>,
    min_refetch: Duration,
}

impl Jwks {
    pub fn new(url: String) -> Self {
        Self::with_min_refetch(url, MIN_REFETCH)
    }

    pub fn with_min_refetch(url: String, min_refetch: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Self {
            url,
            client,
            set: RwLock::new(KeySet::default()),
            last_fetch: Mutex::new(None),
            min_refetch,
        }
    }

    /// The key a token's header names (`kid`; a set of one key also verifies tokens
    /// without one).
    pub async fn key(&self, kid: Option<&str>) -> Result<PublishedKey, DomainError> {
        let (found, stale) = self.look_up(kid).await;
        match (found, stale) {
            (Some(key), false) => return Ok(key),
            // Stale: fetched again. The held key serves while another request is
            // fetching (nobody waits behind the provider) and when the provider cannot
            // be reached; a set fetched without it means the key was withdrawn.
            (Some(key), true) => match self.fetch(false, false).await {
                Fetched::Replaced => {}
                Fetched::Failed | Fetched::Skipped => return Ok(key),
            },
            (None, stale) => {
                self.fetch(!stale, true).await;
            }
        }
        self.look_up(kid).await.0.ok_or_else(|| {
            DomainError::Unauthenticated(match kid {
                Some(kid) => {
                    format!("the token's key ({kid}) is not in the identity provider's key set")
                }
                None => "the token names no key (kid) and the identity provider publishes several"
                    .into(),
            })
        })
    }

    async fn look_up(&self, kid: Option<&str>) -> (Option<PublishedKey>, bool) {
        let set = self.set.read().await;
        let stale = set.fresh_until.is_none_or(|until| Instant::now() >= until);
        let found = match kid {
            Some(kid) => set.keys.get(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.values().next().cloned(),
            None => None,
        };
        (found, stale)
    }

    /// Fetches the set again, unless another fetch started less than `min_refetch` ago
    /// (`rate_limited`: for unknown `kid`s) or since the set went stale. Without `wait`,
    /// a fetch already under way is not waited for.
    async fn fetch(&self, rate_limited: bool, wait: bool) -> Fetched {
        let mut last = if wait {
            self.last_fetch.lock().await
        } else {
            match self.last_fetch.try_lock() {
                Ok(last) => last,
                Err(_) => return Fetched::Skipped,
            }
        };
        if let Some(at) = *last {
            let recent = at.elapsed() < self.min_refetch;
            let fresh = self
                .set
                .read()
                .await
                .fresh_until
                .is_some_and(|until| Instant::now() < until);
            if recent && (rate_limited || fresh) {
                return Fetched::Skipped;
            }
        }
        *last = Some(Instant::now());
        match self.download().await {
            Ok((keys, max_age)) => {
                let mut set = self.set.write().await;
                set.keys = keys;
                set.fresh_until = Some(Instant::now() + max_age);
                Fetched::Replaced
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "fetching the identity provider's keys failed");
                // Try again after `min_refetch`, not on every request.
                let mut set = self.set.write().await;
                let retry = Instant::now() + self.min_refetch;
                set.fresh_until = Some(set.fresh_until.map_or(retry, |until| until.max(retry)));
                Fetched::Failed
            }
        }
    }

    async fn download(&self) -> anyhow::Result<(HashMap<String, PublishedKey>, Duration)> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(LONGEST_MAX_AGE)
            .max(self.min_refetch);
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BYTES as u64)
        {
            anyhow::bail!("the key set is larger than {MAX_BYTES} bytes");
        }
        let bytes = response.bytes().await?;
        if bytes.len() > MAX_BYTES {
            anyhow::bail!("the key set is larger than {MAX_BYTES} bytes");
        }
        Ok((parse_key_set(&bytes)?, max_age))
    }
}

/// The signing keys of a JWKS document by `kid` (a key without one is kept under "").
/// Keys for encryption, of unknown types or malformed are skipped, not fatal: a
/// provider may publish keys Tierwise has no use for.
pub fn parse_key_set(bytes: &[u8]) -> anyhow::Result<HashMap<String, PublishedKey>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(bytes)?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(algorithm) = algorithm_of(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        keys.insert(kid, PublishedKey { algorithm, key });
    }
    Ok(keys)
}

/// The algorithm a key's type implies; a key whose `alg` says otherwise is not used.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        // Both enums name the algorithms alike ("RS256", "ES256", "EdDSA").
        Some(stated) => (format!("{stated:?}") == format!("{implied:?}")).then_some(implied),
    }
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        directive
            .strip_prefix("max-age=")
            .and_then(|seconds| seconds.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_gives_the_keys_lifetime() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let set = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"RSA","use":"enc","kid":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"liar","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"unknown"}
        ]}"#;
        let keys = parse_key_set(set).unwrap();
        assert_eq!(keys.len(), 1, "only the Ed25519 signing key");
        assert_eq!(keys["ed"].algorithm, Algorithm::EdDSA);
    }
}
