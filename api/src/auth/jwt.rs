//! JWT verification and signing with the one configured algorithm.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Role, Scope};
use crate::domain::DomainError;

/// The claims Tierwise reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The keys of the configured algorithm. Verification accepts only that algorithm, so a
/// token signed otherwise — `none` included — is refused.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// Absent when only a public key is configured: the server verifies, others sign.
    encoding: Option<EncodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    /// The longest a token may still be valid for: one that expires later is refused,
    /// so that a leaked long-lived token cannot outlive a rotation plan.
    max_ttl_seconds: i64,
}

/// `JWT_MAX_TTL`'s default: 30 days.
pub const DEFAULT_MAX_TTL_SECONDS: i64 = 30 * 86_400;

impl JwtKeys {
    pub fn hs256(secret: &[u8], issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            issuer,
            audience,
            max_ttl_seconds: DEFAULT_MAX_TTL_SECONDS,
        }
    }

    /// Refuses tokens that are still valid for longer than `seconds`.
    pub fn with_max_ttl(mut self, seconds: i64) -> Self {
        self.max_ttl_seconds = seconds;
        self
    }

    pub fn max_ttl_seconds(&self) -> i64 {
        self.max_ttl_seconds
    }

    /// RS256 or EdDSA, told apart by the key itself. `private_pem`, when given, lets
    /// `tierwise token` sign.
    pub fn public_key(
        public_pem: &[u8],
        private_pem: Option<&[u8]>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> anyhow::Result<Self> {
        let (algorithm, decoding) = if let Ok(key) = DecodingKey::from_ed_pem(public_pem) {
            (Algorithm::EdDSA, key)
        } else if let Ok(key) = DecodingKey::from_rsa_pem(public_pem) {
            (Algorithm::RS256, key)
        } else {
            anyhow::bail!(
                "JWT_PUBLIC_KEY_FILE holds neither an RSA nor an Ed25519 public key in PEM form"
            );
        };
        let encoding = match private_pem {
            None => None,
            Some(pem) => Some(match algorithm {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem)?,
                _ => EncodingKey::from_rsa_pem(pem)?,
            }),
        };
        Ok(Self {
            algorithm,
            decoding,
            encoding,
            issuer,
            audience,
            max_ttl_seconds: DEFAULT_MAX_TTL_SECONDS,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(self.algorithm);
        // A configured issuer or audience must be present, not merely right when present.
        let mut required = vec!["exp", "sub"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// The caller a bearer token speaks for, or `UNAUTHENTICATED` saying why not.
    pub fn verify(&self, token: &str) -> Result<Principal, DomainError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation()).map_err(|error| {
                DomainError::Unauthenticated(
                    match error.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::ImmatureSignature => "the token is not valid yet",
                        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                        ErrorKind::InvalidAudience => "the token's audience is not accepted",
                        ErrorKind::InvalidAlgorithm => {
                            "the token is not signed with the configured algorithm"
                        }
                        ErrorKind::InvalidSignature => "the token's signature is invalid",
                        ErrorKind::MissingRequiredClaim(_) => {
                            "the token lacks a required claim (sub, exp)"
                        }
                        _ => "the token is malformed",
                    }
                    .to_owned(),
                )
            })?;
        let left = data.claims.exp - chrono::Utc::now().timestamp();
        if left > self.max_ttl_seconds {
            return Err(DomainError::Unauthenticated(format!(
                "the token is valid for longer than the {} seconds this server accepts (JWT_MAX_TTL)",
                self.max_ttl_seconds
            )));
        }
        principal_of(data.claims)
    }

    /// Signs `claims`; fails when only a public key is configured.
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("signing needs JWT_SECRET or JWT_PRIVATE_KEY_FILE"))?;
        Ok(encode(&Header::new(self.algorithm), claims, key)?)
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
}

fn principal_of(claims: Claims) -> Result<Principal, DomainError> {
    let unauthenticated = |message: &str| DomainError::Unauthenticated(message.to_owned());
    if claims.sub.trim().is_empty() {
        return Err(unauthenticated("the token's sub is empty"));
    }
    let role = Role::parse(&claims.role).ok_or_else(|| {
        unauthenticated("the token's role is not one of admin, staff, partner, customer")
    })?;
    let customer_id = match (&claims.customer_id, role) {
        (Some(id), _) => Some(
            Uuid::parse_str(id)
                .map_err(|_| unauthenticated("the token's customer_id is not an id"))?,
        ),
        (None, Role::Customer) => {
            return Err(unauthenticated(
                "a customer token needs a customer_id claim",
            ));
        }
        (None, _) => None,
    };
    let scopes: HashSet<&str> = claims
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // Keys belong to the role and subject together: two partners whose tokens share a
    // `sub` (the CLI's default is the role's name) must not see each other's keys as
    // used, nor a customer's token a staff member's.
    let key_owner = match (role, customer_id) {
        (Role::Customer, Some(id)) => format!("customer:{id}"),
        _ => format!("{}:{}", role.as_str(), claims.sub),
    };
    Ok(Principal {
        subject: claims.sub,
        role,
        customer_id,
        scopes: scopes.into_iter().filter_map(Scope::parse).collect(),
        expires_at: claims.exp,
        key_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: &str, exp_offset: i64) -> Claims {
        Claims {
            sub: "tester".into(),
            role: role.into(),
            exp: chrono::Utc::now().timestamp() + exp_offset,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            customer_id: None,
            scope: Some("customers:read bogus".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        let keys = JwtKeys::hs256(b"secret-secret-secret-secret-1234", None, None);
        let token = keys.sign(&claims("partner", 60)).unwrap();
        let principal = keys.verify(&token).unwrap();
        assert_eq!(principal.role, Role::Partner);
        assert_eq!(principal.scopes, vec![Scope::CustomersRead]);
    }

    #[test]
    fn tokens_valid_for_too_long_are_refused() {
        let keys = JwtKeys::hs256(b"secret-secret-secret-secret-1234", None, None);
        let century = keys.sign(&claims("admin", 100 * 365 * 86_400)).unwrap();
        assert!(keys.verify(&century).is_err());
        let month = keys
            .sign(&claims("admin", DEFAULT_MAX_TTL_SECONDS - 60))
            .unwrap();
        assert!(keys.verify(&month).is_ok());
        let short = keys.clone().with_max_ttl(3600);
        assert!(short.verify(&month).is_err());
    }

    #[test]
    fn expired_wrong_key_and_bad_role_are_refused() {
        let keys = JwtKeys::hs256(b"secret-secret-secret-secret-1234", None, None);
        let other = JwtKeys::hs256(b"another-secret-another-secret-12", None, None);
        assert!(
            keys.verify(&keys.sign(&claims("admin", -120)).unwrap())
                .is_err()
        );
        assert!(
            keys.verify(&other.sign(&claims("admin", 60)).unwrap())
                .is_err()
        );
        assert!(
            keys.verify(&keys.sign(&claims("root", 60)).unwrap())
                .is_err()
        );
        assert!(
            keys.verify(&keys.sign(&claims("customer", 60)).unwrap())
                .is_err(),
            "customer_id required"
        );
    }
}
