//! Persisted operations: Apollo's automatic persisted queries (a client sends the
//! SHA-256 of a document instead of the document; `PersistedQueryNotFound` asks it once
//! for both), and trusted documents (`TRUSTED_DOCUMENTS`: the roles named may run only
//! the operations an app's manifest registered with `tierwise persist`).
//!
//! Documents are kept in the database (`store::persisted`), so that every replica knows
//! what any one was sent: a hash-only request costs one indexed read.

use async_graphql::Request;
use sha2::{Digest, Sha256};

use crate::auth::{Principal, Role};
use crate::domain::{DomainError, DomainResult};
use crate::store::{Db, persisted};

/// The message and code Apollo's clients look for to send the document with its hash.
pub const NOT_FOUND: &str = "PersistedQueryNotFound";
pub const NOT_FOUND_CODE: &str = "PERSISTED_QUERY_NOT_FOUND";

/// Which callers may run only registered documents (`TRUSTED_DOCUMENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustedDocuments {
    /// Anyone may send any document (the default).
    #[default]
    Off,
    /// Customers' apps (customer tokens) run only registered documents.
    Customer,
    /// Every caller does.
    All,
}

impl TrustedDocuments {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "" => Some(Self::Off),
            "customer" => Some(Self::Customer),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    fn covers(self, role: Role) -> bool {
        match self {
            Self::Off => false,
            Self::Customer => role == Role::Customer,
            Self::All => true,
        }
    }
}

/// The lowercase hex SHA-256 of a document, as both protocols name it.
pub fn hash_of(document: &str) -> String {
    format!("{:x}", Sha256::digest(document.as_bytes()))
}

/// Why a request naming a persisted document cannot run.
#[derive(Debug)]
pub enum Refusal {
    /// Hash only, and the hash is unknown: the client should send the document too.
    NotFound,
    Invalid(DomainError),
}

/// A document a client sent with its hash, to keep once it ran.
#[derive(Debug)]
pub struct ToRemember {
    hash: String,
    document: String,
}

/// The request's `extensions.persistedQuery`; `null` is none, as Apollo's servers read it.
fn persisted_query(request: &Request) -> Option<&async_graphql::Value> {
    request
        .extensions
        .get("persistedQuery")
        .filter(|value| !matches!(value, async_graphql::Value::Null))
}

/// Whether the request names a document by its hash alone (it costs a lookup).
pub fn is_hash_only(request: &Request) -> bool {
    persisted_query(request).is_some() && request.query.trim().is_empty()
}

/// What a request said about persisted documents, once resolved.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The document's hash, when the request named one.
    hash: Option<String>,
    /// The stored document, when the request was resolved from the store; a request
    /// with a hash and no stored document sent the document itself, to remember.
    stored: Option<persisted::Persisted>,
}

/// Fills in the document of a hash-only request (`extensions.persistedQuery`), and
/// checks that a document sent with a hash is the one the hash names.
pub async fn resolve(db: &Db, request: &mut Request) -> Result<Resolved, Refusal> {
    let Some(persisted) = persisted_query(request) else {
        return Ok(Resolved::default());
    };
    let persisted = async_graphql::Value::clone(persisted)
        .into_json()
        .unwrap_or_default();
    if persisted["version"].as_i64() != Some(1) {
        return Err(Refusal::Invalid(DomainError::bad_input(
            "extensions.persistedQuery.version",
            "PersistedQueryNotSupported: only version 1 is",
        )));
    }
    let hash = persisted["sha256Hash"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            Refusal::Invalid(DomainError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "must be the 64 hex digits of the document's SHA-256",
            ))
        })?;
    if !request.query.trim().is_empty() {
        if hash_of(&request.query) != hash {
            return Err(Refusal::Invalid(DomainError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "provided sha does not match query",
            )));
        }
        return Ok(Resolved {
            hash: Some(hash),
            stored: None,
        });
    }
    let stored = persisted::find(db.conn(), &hash)
        .await
        .map_err(Refusal::Invalid)?
        .ok_or(Refusal::NotFound)?;
    request.query = stored.document.clone();
    Ok(Resolved {
        hash: Some(hash),
        stored: Some(stored),
    })
}

/// Admits the caller's document: under `TRUSTED_DOCUMENTS`, a covered caller runs only a
/// registered one. Returns a document sent with its hash, for `remember` once it ran
/// (a covered caller's are not kept: it may not register documents).
pub async fn admit(
    db: &Db,
    mode: TrustedDocuments,
    principal: &Principal,
    request: &Request,
    resolved: Resolved,
) -> DomainResult<Option<ToRemember>> {
    if mode.covers(principal.role) {
        let trusted = match &resolved.stored {
            Some(stored) => stored.trusted,
            None => {
                let hash = resolved.hash.unwrap_or_else(|| hash_of(&request.query));
                persisted::find(db.conn(), &hash)
                    .await?
                    .is_some_and(|known| known.trusted && known.document == request.query)
            }
        };
        if !trusted {
            return Err(DomainError::Forbidden(format!(
                "this server runs only registered operations for {} callers (TRUSTED_DOCUMENTS); \
                 register the app's manifest with `tierwise persist`",
                principal.role.as_str()
            )));
        }
        return Ok(None);
    }
    Ok(match resolved.hash {
        Some(hash) if resolved.stored.is_none() => Some(ToRemember {
            hash,
            document: request.query.clone(),
        }),
        _ => None,
    })
}

/// Keeps a document sent with its hash, and at most `keep` of them (none with 0).
pub async fn remember(db: &Db, document: ToRemember, keep: usize) -> DomainResult<()> {
    if keep == 0 {
        return Ok(());
    }
    let ToRemember { hash, document } = document;
    db.write(move |txn| {
        Box::pin(async move { persisted::remember(txn, &hash, &document, keep).await })
    })
    .await
}

/// The documents of a manifest, by hash: graphql-codegen's `persisted-documents.json`
/// (`{ "<hash>": "<document>" }`) or Apollo's `persisted-query-manifest.json`
/// (`{ "format": "apollo-persisted-query-manifest", "operations": [{ "id", "body" }] }`).
/// Every hash must be the SHA-256 of its document (both generators' default).
pub fn manifest_documents(manifest: &serde_json::Value) -> anyhow::Result<Vec<(String, String)>> {
    use anyhow::{Context, bail};
    let pairs: Vec<(String, String)> = if manifest["format"] == "apollo-persisted-query-manifest" {
        manifest["operations"]
            .as_array()
            .context("an Apollo manifest lists its operations")?
            .iter()
            .map(|op| {
                Ok((
                    op["id"]
                        .as_str()
                        .context("an operation without an id")?
                        .to_owned(),
                    op["body"]
                        .as_str()
                        .context("an operation without a body")?
                        .to_owned(),
                ))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        manifest
            .as_object()
            .context("a manifest is a JSON object: { hash: document } or Apollo's format")?
            .iter()
            .map(|(hash, document)| {
                Ok((
                    hash.clone(),
                    document
                        .as_str()
                        .with_context(|| format!("{hash}: the document is not a string"))?
                        .to_owned(),
                ))
            })
            .collect::<anyhow::Result<_>>()?
    };
    // By hash: a manifest naming one document twice (`sha256:` prefixed or not, in
    // another case) registers it once.
    let mut documents = std::collections::BTreeMap::new();
    for (hash, document) in pairs {
        let hash = hash
            .strip_prefix("sha256:")
            .unwrap_or(&hash)
            .to_ascii_lowercase();
        if hash_of(&document) != hash {
            bail!(
                "{hash} is not the SHA-256 of its document: generate the manifest with sha256 hashes"
            );
        }
        documents.insert(hash, document);
    }
    Ok(documents.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_the_documents_sha256() {
        // `printf %s "{ __typename }" | sha256sum`
        assert_eq!(
            hash_of("{ __typename }"),
            "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"
        );
    }

    #[test]
    fn both_manifest_formats_are_read_and_checked() {
        let doc = "query Me { viewer { role } }";
        let hash = hash_of(doc);
        let codegen = json!({ hash.clone(): doc });
        assert_eq!(
            manifest_documents(&codegen).unwrap(),
            [(hash.clone(), doc.to_owned())]
        );
        let apollo = json!({ "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": hash, "name": "Me", "type": "query", "body": doc }] });
        assert_eq!(manifest_documents(&apollo).unwrap().len(), 1);
        let wrong =
            json!({ "0000000000000000000000000000000000000000000000000000000000000000": doc });
        assert!(manifest_documents(&wrong).is_err());
    }

    #[test]
    fn modes_cover_roles() {
        assert!(!TrustedDocuments::Off.covers(Role::Customer));
        assert!(TrustedDocuments::Customer.covers(Role::Customer));
        assert!(!TrustedDocuments::Customer.covers(Role::Admin));
        assert!(TrustedDocuments::All.covers(Role::Admin));
    }
}
