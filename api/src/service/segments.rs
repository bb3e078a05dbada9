//! Managing segments: saving rules and static lists, each change one transaction.

use std::collections::HashSet;

use entity::enums::SegmentKind;
use entity::segment;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::domain::segment::{MAX_MEMBERS_PER_CALL, SegmentDraft};
use crate::domain::segment_rule::Rule;
use crate::domain::{DomainError, DomainResult};
use crate::store::{Db, customers, is_unique_violation, segments, tiers};

/// A segment as the API gives it, before validation.
#[derive(Debug, Clone)]
pub struct SegmentInput {
    pub name: String,
    pub description: Option<String>,
    pub kind: SegmentKind,
    pub rule: Option<Json>,
}

/// The keys of the program's tiers, which rules may name.
async fn tier_keys(db: &impl sea_orm::ConnectionTrait) -> DomainResult<HashSet<String>> {
    Ok(tiers::all(db).await?.into_iter().map(|t| t.key).collect())
}

async fn draft(
    db: &impl sea_orm::ConnectionTrait,
    input: SegmentInput,
) -> DomainResult<SegmentDraft> {
    let keys = tier_keys(db).await?;
    SegmentDraft::new(
        &input.name,
        input.description.as_deref(),
        input.kind,
        input.rule,
        &|key| keys.contains(key),
    )
}

/// A rule given at `path` (for `segmentPreview`), validated like a saved one.
#[tracing::instrument(name = "segments::parse_rule", skip_all)]
pub async fn parse_rule(db: &Db, rule: &Json, path: &str) -> DomainResult<Rule> {
    let keys = tier_keys(db.conn()).await?;
    Rule::parse(rule, path, &|key| keys.contains(key))
}

fn name_conflict(name: &str) -> DomainError {
    DomainError::Conflict(format!("a segment named {name:?} already exists"))
}

/// Two saves racing for one name: the unique index decides, and the loser gets the same
/// `CONFLICT` as if it had come second.
fn unique_name(error: DomainError, name: &str) -> DomainError {
    match error {
        DomainError::Internal(inner)
            if inner
                .downcast_ref::<sea_orm::DbErr>()
                .is_some_and(is_unique_violation) =>
        {
            name_conflict(name)
        }
        other => other,
    }
}

/// Refuses a DYNAMIC rule the database cannot run (`segments::check_runs`), before the
/// save's transaction: a failed statement would end that transaction on Postgres.
async fn check_rule_runs(db: &Db, input: &SegmentInput) -> DomainResult<()> {
    if let (SegmentKind::Dynamic, Some(rule)) = (input.kind, &input.rule) {
        let rule = parse_rule(db, rule, "input.rule").await?;
        segments::check_runs(db.conn(), &rule, "input.rule").await?;
    }
    Ok(())
}

#[tracing::instrument(name = "segments::create", skip_all)]
pub async fn create(db: &Db, input: SegmentInput) -> DomainResult<segment::Model> {
    check_rule_runs(db, &input).await?;
    let name = input.name.trim().to_owned();
    db.write(move |txn| {
        Box::pin(async move {
            let draft = draft(txn, input).await?;
            if segments::name_taken(txn, &draft.name, None).await? {
                return Err(name_conflict(&draft.name));
            }
            segments::insert(txn, draft).await
        })
    })
    .await
    .map_err(|error| unique_name(error, &name))
}

/// Replaces a segment's name, description and rule; its kind cannot change (a list and
/// a rule are different things: a new segment says so).
#[tracing::instrument(name = "segments::update", skip_all)]
pub async fn update(db: &Db, id: Uuid, input: SegmentInput) -> DomainResult<segment::Model> {
    check_rule_runs(db, &input).await?;
    let name = input.name.trim().to_owned();
    db.write(move |txn| {
        Box::pin(async move {
            let existing = segments::get_for_update(txn, id).await?;
            if existing.rule != input.rule {
                use super::campaigns::{SegmentUse, refuse_if_used};
                refuse_if_used(txn, id, &[SegmentUse::Watches]).await?;
            }
            if existing.kind != input.kind {
                return Err(DomainError::bad_input(
                    "input.kind",
                    format!(
                        "a segment's kind cannot change (this one is {}); create a new segment",
                        existing.kind.as_str()
                    ),
                ));
            }
            let draft = draft(txn, input).await?;
            if segments::name_taken(txn, &draft.name, Some(id)).await? {
                return Err(name_conflict(&draft.name));
            }
            segments::update(txn, id, draft).await
        })
    })
    .await
    .map_err(|error| unique_name(error, &name))
}

#[tracing::instrument(name = "segments::delete", skip_all)]
pub async fn delete(db: &Db, id: Uuid) -> DomainResult<()> {
    db.write(move |txn| {
        Box::pin(async move {
            segments::get_for_update(txn, id).await?;
            use super::campaigns::{SegmentUse, refuse_if_used};
            refuse_if_used(txn, id, &[SegmentUse::Watches, SegmentUse::AddsTo]).await?;
            segments::delete(txn, id).await
        })
    })
    .await
}

/// The static segment, locked; `CONFLICT` for a DYNAMIC one, whose members its rule decides.
async fn static_segment(
    txn: &impl sea_orm::ConnectionTrait,
    id: Uuid,
) -> DomainResult<segment::Model> {
    let segment = segments::get_for_update(txn, id).await?;
    if segment.kind == SegmentKind::Dynamic {
        return Err(DomainError::Conflict(format!(
            "segment {:?} is DYNAMIC: its rule decides its members",
            segment.name
        )));
    }
    Ok(segment)
}

fn bounded(customer_ids: &[Uuid]) -> DomainResult<Vec<Uuid>> {
    if customer_ids.len() > MAX_MEMBERS_PER_CALL {
        return Err(DomainError::bad_input(
            "customerIds",
            format!("at most {MAX_MEMBERS_PER_CALL} per call"),
        ));
    }
    let mut ids = customer_ids.to_vec();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Adds customers to a static segment: all of them or, when one is unknown or erased,
/// none. Adding a member again changes nothing.
#[tracing::instrument(name = "segments::add_members", skip_all)]
pub async fn add_members(
    db: &Db,
    segment_id: Uuid,
    customer_ids: &[Uuid],
) -> DomainResult<segment::Model> {
    let ids = bounded(customer_ids)?;
    db.write(move |txn| {
        Box::pin(async move {
            let segment = static_segment(txn, segment_id).await?;
            let live: HashSet<Uuid> = customers::find_many(txn, &ids)
                .await?
                .into_iter()
                .filter(|c| c.erased_at.is_none())
                .map(|c| c.id)
                .collect();
            if let Some(missing) = ids.iter().find(|id| !live.contains(id)) {
                return Err(DomainError::NotFound(format!(
                    "customer {missing} not found"
                )));
            }
            segments::add_members(txn, segment_id, &ids).await?;
            Ok(segment)
        })
    })
    .await
}

/// Removes customers from a static segment; those not in it are ignored.
#[tracing::instrument(name = "segments::remove_members", skip_all)]
pub async fn remove_members(
    db: &Db,
    segment_id: Uuid,
    customer_ids: &[Uuid],
) -> DomainResult<segment::Model> {
    let ids = bounded(customer_ids)?;
    db.write(move |txn| {
        Box::pin(async move {
            let segment = static_segment(txn, segment_id).await?;
            segments::remove_members(txn, segment_id, &ids).await?;
            Ok(segment)
        })
    })
    .await
}
