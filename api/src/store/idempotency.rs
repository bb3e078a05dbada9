//! Idempotency keys: a caller's key for a mutation, claimed once, durably, and bound to
//! the request it was first sent with (as Stripe does): the same key with the same
//! request replays the first result, with another request it is `CONFLICT`.

use chrono::Utc;
use entity::idempotency_key;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::now;
use crate::domain::{DomainError, DomainResult};

/// What claiming a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: the mutation goes ahead and produces `result_id`.
    Fresh,
    /// The key was used before; this is what that call produced.
    Seen(Option<Uuid>),
}

/// A digest of what a request asks for, in the order given: two requests that ask for the
/// same have the same fingerprint. SHA-256 rather than `std`'s hasher, whose output may
/// change between Rust releases: fingerprints outlive the process that wrote them.
pub fn fingerprint(parts: &[&dyn std::fmt::Display]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part.to_string().as_bytes());
        // A separator no input contains, so that ("ab", "c") and ("a", "bc") differ.
        digest.update([0x1f]);
    }
    format!("{:x}", digest.finalize())
}

/// Claims `(owner, key)` for `operation`, recording that it produces `result_id` for the
/// request whose `fingerprint` is given. Keys are scoped to their operation: a partner may
/// use one receipt number as the key of a purchase and of a redemption.
///
/// `INSERT … ON CONFLICT DO NOTHING` makes parallel claims of one key exact: on Postgres
/// the second insert waits for the first transaction and then does nothing, without
/// aborting its own transaction; on SQLite writers are serial anyway.
pub async fn claim(
    db: &impl ConnectionTrait,
    owner: &str,
    key: &str,
    operation: &str,
    fingerprint: &str,
    result_id: Uuid,
) -> DomainResult<Claim> {
    let key = &format!("{operation}:{key}");
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        caller: Set(owner.to_owned()),
        key: Set(key.to_owned()),
        operation: Set(operation.to_owned()),
        result_id: Set(Some(result_id)),
        fingerprint: Set(Some(fingerprint.to_owned())),
        created_at: Set(now()),
    })
    .on_conflict(kept_by_first_claim())
    .exec_without_returning(db)
    .await?;
    if inserted > 0 {
        return Ok(Claim::Fresh);
    }
    let existing = idempotency_key::Entity::find_by_id((owner.to_owned(), key.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| {
            DomainError::Internal(anyhow::anyhow!(
                "idempotency key vanished between insert and read ({})",
                Utc::now()
            ))
        })?;
    // A key stored before fingerprints existed cannot be told to be the same request:
    // it is refused like a different one rather than replaying what it produced.
    if existing.fingerprint.as_deref() != Some(fingerprint) {
        return Err(reused());
    }
    Ok(Claim::Seen(existing.result_id))
}

/// A key already stored stays as it is: the first claim of a key wins.
fn kept_by_first_claim() -> OnConflict {
    OnConflict::columns([
        idempotency_key::Column::Caller,
        idempotency_key::Column::Key,
    ])
    .do_nothing()
    .to_owned()
}

/// One key a batch claims: the key, its request's fingerprint and what it produces.
pub struct KeyClaim<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub result_id: Uuid,
}

/// `claim` for a whole batch, in two statements: one `INSERT … ON CONFLICT DO NOTHING`
/// of every key, in key order (so that two batches sharing keys wait for each other
/// instead of deadlocking), and one read of what each key holds now. A key the batch
/// repeats is claimed by its first use; a later use with the same request replays that
/// one. `None` where the key is reused with a different request (`reused`).
pub async fn claim_many(
    db: &impl ConnectionTrait,
    owner: &str,
    operation: &str,
    claims: &[KeyClaim<'_>],
) -> DomainResult<Vec<Option<Claim>>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let scoped = |key: &str| format!("{operation}:{key}");
    let mut first_uses: Vec<&KeyClaim<'_>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for claim in claims {
        if seen.insert(claim.key) {
            first_uses.push(claim);
        }
    }
    first_uses.sort_by_key(|claim| claim.key);
    let at = now();
    idempotency_key::Entity::insert_many(first_uses.iter().map(|claim| {
        idempotency_key::ActiveModel {
            caller: Set(owner.to_owned()),
            key: Set(scoped(claim.key)),
            operation: Set(operation.to_owned()),
            result_id: Set(Some(claim.result_id)),
            fingerprint: Set(Some(claim.fingerprint.to_owned())),
            created_at: Set(at),
        }
    }))
    .on_conflict(kept_by_first_claim())
    .exec_without_returning(db)
    .await?;
    let stored: std::collections::HashMap<String, idempotency_key::Model> =
        idempotency_key::Entity::find()
            .filter(idempotency_key::Column::Caller.eq(owner))
            .filter(idempotency_key::Column::Key.is_in(first_uses.iter().map(|c| scoped(c.key))))
            .all(db)
            .await?
            .into_iter()
            .map(|row| (row.key.clone(), row))
            .collect();
    let mut claimed_by_batch = std::collections::HashSet::new();
    claims
        .iter()
        .map(|claim| {
            let row = stored.get(&scoped(claim.key)).ok_or_else(|| {
                DomainError::Internal(anyhow::anyhow!("idempotency key vanished after its insert"))
            })?;
            if row.fingerprint.as_deref() != Some(claim.fingerprint) {
                return Ok(None);
            }
            let ours = row.result_id == Some(claim.result_id);
            Ok(Some(if ours && claimed_by_batch.insert(claim.key) {
                Claim::Fresh
            } else {
                Claim::Seen(row.result_id)
            }))
        })
        .collect()
}

/// The refusal of a key sent again with a different request.
pub fn reused() -> DomainError {
    DomainError::Conflict("idempotency key reused with a different request".into())
}

/// The answer to a repeated key: what the first call produced (`previous`), looked up by
/// `find`.
pub async fn replay<T, F>(previous: Option<Uuid>, find: impl FnOnce(Uuid) -> F) -> DomainResult<T>
where
    F: std::future::Future<Output = DomainResult<Option<T>>>,
{
    match previous {
        Some(id) => find(id).await?,
        None => None,
    }
    .ok_or_else(|| DomainError::Conflict("this idempotency key is already in use".into()))
}
