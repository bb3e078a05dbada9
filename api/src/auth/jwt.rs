//! JWT verification and signing: Tierwise's own key (one algorithm: HS256, RS256 or
//! EdDSA), and optionally the keys an identity provider publishes (`jwks`), whose tokens
//! name their role, scopes and customer in claims of their own (`mapping`).

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::jwks::Jwks;
use super::mapping::{ClaimMapping, CustomerMatch};
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
/// token signed otherwise — `none` included — is refused; with an identity provider, a
/// token naming a `kid` is checked against its key set instead, each key with the one
/// algorithm its type implies.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    /// Absent when only an identity provider's keys are configured.
    decoding: Option<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    mapping: ClaimMapping,
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
            decoding: Some(DecodingKey::from_secret(secret)),
            jwks: None,
            mapping: ClaimMapping::default(),
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
            decoding: Some(decoding),
            jwks: None,
            mapping: ClaimMapping::default(),
            encoding,
            issuer,
            audience,
            max_ttl_seconds: DEFAULT_MAX_TTL_SECONDS,
        })
    }

    /// Only an identity provider's keys: tokens are verified, none are signed.
    pub fn identity_provider(
        jwks: Arc<Jwks>,
        mapping: ClaimMapping,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            algorithm: Algorithm::RS256,
            decoding: None,
            jwks: Some(jwks),
            mapping,
            encoding: None,
            issuer,
            audience,
            max_ttl_seconds: DEFAULT_MAX_TTL_SECONDS,
        }
    }

    /// Also accepts tokens signed with an identity provider's keys (those naming a
    /// `kid`), reading their claims through `mapping`.
    pub fn with_identity_provider(mut self, jwks: Arc<Jwks>, mapping: ClaimMapping) -> Self {
        self.jwks = Some(jwks);
        self.mapping = mapping;
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn validation(&self) -> Validation {
        self.validation_for(self.algorithm)
    }

    fn validation_for(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
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

    /// The caller a bearer token signed with Tierwise's own key speaks for, or
    /// `UNAUTHENTICATED` saying why not.
    pub fn verify(&self, token: &str) -> Result<Principal, DomainError> {
        let decoding = self.decoding.as_ref().ok_or_else(|| {
            DomainError::Unauthenticated(
                "the token is not from the identity provider (it names no key, kid)".into(),
            )
        })?;
        let data = decode::<Claims>(token, decoding, &self.validation()).map_err(refusal)?;
        self.within_max_ttl(data.claims.exp)?;
        principal_of(data.claims)
    }

    /// The caller any accepted token speaks for: an identity provider's (it names a
    /// `kid` and a provider is configured, or only a provider is) or Tierwise's own.
    /// An identity provider's token naming its customer by `externalRef` comes back
    /// with that reference, for the caller to resolve.
    pub async fn verify_any(&self, token: &str) -> Result<Verified, DomainError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| DomainError::Unauthenticated("the token is malformed".into()))?;
        let Some(jwks) = self
            .jwks
            .as_ref()
            .filter(|_| header.kid.is_some() || self.decoding.is_none())
        else {
            return self.verify(token).map(Verified::Ready);
        };
        let published = jwks.key(header.kid.as_deref()).await?;
        if header.alg != published.algorithm {
            return Err(DomainError::Unauthenticated(
                "the token is not signed with its key's algorithm".into(),
            ));
        }
        let data = decode::<serde_json::Value>(
            token,
            &published.key,
            &self.validation_for(published.algorithm),
        )
        .map_err(refusal)?;
        let claims = data.claims;
        // The library accepts any JSON number; a fraction or a number past i64 must not
        // read as 0 and slip past JWT_MAX_TTL.
        let exp = match &claims["exp"] {
            serde_json::Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        }
        .ok_or_else(|| DomainError::Unauthenticated("the token's exp is not a time".into()))?;
        self.within_max_ttl(exp)?;
        self.principal_of_mapped(&claims, exp)
    }

    fn within_max_ttl(&self, exp: i64) -> Result<(), DomainError> {
        let left = exp - chrono::Utc::now().timestamp();
        if left > self.max_ttl_seconds {
            return Err(DomainError::Unauthenticated(format!(
                "the token is valid for longer than the {} seconds this server accepts (JWT_MAX_TTL)",
                self.max_ttl_seconds
            )));
        }
        Ok(())
    }

    /// The caller of an identity provider's token, its claims read through `mapping`.
    fn principal_of_mapped(
        &self,
        claims: &serde_json::Value,
        exp: i64,
    ) -> Result<Verified, DomainError> {
        let unauthenticated = |message: String| DomainError::Unauthenticated(message);
        let subject = claims["sub"]
            .as_str()
            .filter(|sub| !sub.trim().is_empty())
            .ok_or_else(|| unauthenticated("the token's sub is empty".into()))?
            .to_owned();
        let mapping = &self.mapping;
        let role = mapping.role(claims).ok_or_else(|| {
            unauthenticated(format!(
                "the token's {} claim names none of admin, staff, partner, customer (and no JWT_DEFAULT_ROLE is set)",
                mapping.role.as_str()
            ))
        })?;
        let scopes = mapping
            .scopes(claims)
            .iter()
            .filter_map(|s| Scope::parse(s))
            .collect();
        // Keys and rate budgets of a provider's users are apart from those of tokens
        // Tierwise mints (whose `sub` may be the same text).
        let principal = |customer_id: Option<Uuid>| Principal {
            key_owner: match customer_id {
                Some(id) => super::customer_key_owner(id),
                None => format!("idp:{}:{subject}", role.as_str()),
            },
            subject: subject.clone(),
            role,
            customer_id,
            scopes,
            expires_at: exp,
        };
        if role != Role::Customer {
            return Ok(Verified::Ready(principal(None)));
        }
        let customer = mapping.customer(claims).ok_or_else(|| {
            unauthenticated(format!(
                "a customer token needs its {} claim",
                mapping.customer.as_str()
            ))
        })?;
        match mapping.customer_match {
            CustomerMatch::Id => {
                let id = Uuid::parse_str(&customer).map_err(|_| {
                    unauthenticated(format!(
                        "the token's {} claim is not a customer id (JWT_CUSTOMER_MATCH=externalRef matches external references)",
                        mapping.customer.as_str()
                    ))
                })?;
                Ok(Verified::Ready(principal(Some(id))))
            }
            CustomerMatch::ExternalRef => Ok(Verified::CustomerByExternalRef {
                principal: principal(None),
                external_ref: customer,
            }),
        }
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

/// A verified token's caller; a customer named by `externalRef` still has to be looked
/// up (`auth::authenticate` does).
#[derive(Debug)]
pub enum Verified {
    Ready(Principal),
    CustomerByExternalRef {
        /// The caller without its customer yet.
        principal: Principal,
        external_ref: String,
    },
}

fn refusal(error: jsonwebtoken::errors::Error) -> DomainError {
    use jsonwebtoken::errors::ErrorKind;
    DomainError::Unauthenticated(
        match error.kind() {
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::ImmatureSignature => "the token is not valid yet",
            ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
            ErrorKind::InvalidAudience => "the token's audience is not accepted",
            ErrorKind::InvalidAlgorithm => "the token is not signed with the configured algorithm",
            ErrorKind::InvalidSignature => "the token's signature is invalid",
            ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, exp)",
            _ => "the token is malformed",
        }
        .to_owned(),
    )
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
        (Role::Customer, Some(id)) => super::customer_key_owner(id),
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

    /// A provider's customer token names its customer by Tierwise id (the default match)
    /// or, with `JWT_CUSTOMER_MATCH=externalRef`, by the reference `authenticate` looks up.
    #[test]
    fn provider_tokens_name_their_customer_by_id_or_reference() {
        use crate::auth::mapping::{ClaimPath, CustomerMatch};
        let keys = |customer_match| {
            JwtKeys::identity_provider(
                Arc::new(Jwks::new("https://idp.example/certs".into())),
                ClaimMapping {
                    default_role: Some(Role::Customer),
                    customer: ClaimPath::new("sub"),
                    customer_match,
                    ..ClaimMapping::default()
                },
                None,
                None,
            )
        };
        let id = Uuid::now_v7();
        let by_id = serde_json::json!({ "sub": id.to_string() });
        match keys(CustomerMatch::Id)
            .principal_of_mapped(&by_id, 0)
            .unwrap()
        {
            Verified::Ready(principal) => {
                assert_eq!(principal.customer_id, Some(id));
                assert_eq!(principal.key_owner, super::super::customer_key_owner(id));
            }
            other => panic!("{other:?}"),
        }
        let not_an_id = serde_json::json!({ "sub": "idp-user-7" });
        assert!(
            keys(CustomerMatch::Id)
                .principal_of_mapped(&not_an_id, 0)
                .is_err()
        );
        match keys(CustomerMatch::ExternalRef)
            .principal_of_mapped(&not_an_id, 0)
            .unwrap()
        {
            Verified::CustomerByExternalRef { external_ref, .. } => {
                assert_eq!(external_ref, "idp-user-7");
            }
            other => panic!("{other:?}"),
        }
    }
}
