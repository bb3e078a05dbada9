//! Tier history: every move of a customer between tiers.

use entity::enums::{EventTopic, TierChangeReason};
use entity::tier_change;
use std::collections::HashMap;

use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use super::paging::{self, ChildList, Page, PageRequest, time_cursor};
use super::{now, outbox};
use crate::domain::DomainResult;
use crate::domain::scoring::IndicatorScore;

/// The order tier history is listed in: newest first.
pub const ORDER: &str = "CHANGED_AT_DESC";

pub struct NewTierChange<'a> {
    pub customer_id: Uuid,
    pub from_tier_id: Option<Uuid>,
    pub to_tier_id: Uuid,
    pub reason: TierChangeReason,
    pub score: f64,
    pub note: Option<&'a str>,
    /// How the score was made, if a score decided the change.
    pub breakdown: Option<&'a [IndicatorScore]>,
}

/// A breakdown as the `breakdown` column keeps it.
pub fn breakdown_json(breakdown: &[IndicatorScore]) -> Option<serde_json::Value> {
    serde_json::to_value(breakdown).ok()
}

/// The breakdown a change keeps; empty for a change no score decided (a customer's
/// first tier) and for changes recorded before breakdowns were kept.
pub fn breakdown_of(change: &tier_change::Model) -> Vec<IndicatorScore> {
    change
        .breakdown
        .clone()
        .and_then(|kept| serde_json::from_value(kept).ok())
        .unwrap_or_default()
}

pub async fn insert(
    db: &impl ConnectionTrait,
    change: NewTierChange<'_>,
) -> DomainResult<tier_change::Model> {
    let change = tier_change::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(change.customer_id),
        from_tier_id: Set(change.from_tier_id),
        to_tier_id: Set(change.to_tier_id),
        reason: Set(change.reason),
        score: Set(change.score),
        note: Set(change.note.map(str::to_owned)),
        evaluation_run_id: Set(None),
        changed_at: Set(now()),
        breakdown: Set(change.breakdown.and_then(breakdown_json)),
    }
    .insert(db)
    .await?;
    outbox::emit(
        db,
        EventTopic::TierChanged,
        Some(change.customer_id),
        change.id,
    )
    .await?;
    Ok(change)
}

pub fn cursor(change: &tier_change::Model) -> String {
    time_cursor(ORDER, change.changed_at, change.id)
}

/// A page of one customer's tier history, newest first.
pub async fn page_of(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    page: &PageRequest,
) -> DomainResult<Page<tier_change::Model>> {
    paging::newest_first::<tier_change::Entity>(
        db,
        Condition::all().add(tier_change::Column::CustomerId.eq(customer_id)),
        tier_change::Column::ChangedAt,
        tier_change::Column::Id,
        page,
    )
    .await
}

/// The first page of each customer's tier history, in two statements whatever the
/// number of customers.
pub async fn first_pages(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    page: &PageRequest,
) -> DomainResult<HashMap<Uuid, Page<tier_change::Model>>> {
    let list = ChildList {
        table: "tier_change",
        time_column: "changed_at",
        any_of: None,
    };
    paging::first_pages::<tier_change::Entity>(db, list, customer_ids, page, |c| c.customer_id)
        .await
}

/// Inserts many tier changes (an evaluation batch, a batch of interactions) in one
/// statement.
pub async fn insert_many(
    db: &impl ConnectionTrait,
    changes: Vec<tier_change::Model>,
) -> DomainResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let subjects: Vec<(Option<Uuid>, Uuid)> = changes
        .iter()
        .map(|c| (Some(c.customer_id), c.id))
        .collect();
    tier_change::Entity::insert_many(changes.into_iter().map(tier_change::ActiveModel::from))
        .exec_without_returning(db)
        .await?;
    outbox::emit_many(db, EventTopic::TierChanged, subjects).await
}
