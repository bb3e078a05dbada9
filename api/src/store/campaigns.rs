//! Campaigns and their firing log.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::enums::{CampaignStatus, CampaignTriggerKind};
use entity::{campaign, campaign_firing, customer};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::now;
use crate::domain::campaign::{Draft, Firing, Given, Spent};
use crate::domain::{DomainError, DomainResult};

fn json<T: serde::Serialize>(value: &T) -> DomainResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| DomainError::Internal(e.into()))
}

/// Saves a new campaign as `DRAFT`.
pub async fn insert(db: &impl ConnectionTrait, draft: &Draft) -> DomainResult<campaign::Model> {
    let at = now();
    let row = campaign::ActiveModel {
        id: Set(Uuid::now_v7()),
        status: Set(CampaignStatus::Draft),
        budget_spent: Set(0),
        budget_exhausted_at: Set(None),
        created_at: Set(at),
        ..definition(draft)?
    };
    Ok(row.insert(db).await?)
}

/// Replaces a campaign's definition (the caller holds its row's lock). What it spent is
/// counted again from its firings against the new budget: a raise reopens an exhausted
/// campaign, a cut below what was awarded closes it.
pub async fn update(
    db: &impl ConnectionTrait,
    current: &campaign::Model,
    draft: &Draft,
) -> DomainResult<campaign::Model> {
    let awarded = stats(db, &[current.id])
        .await?
        .get(&current.id)
        .map_or(0, |s| s.points_awarded);
    let spent = Spent::rebudgeted(
        awarded,
        draft.budget_points,
        current.budget_exhausted_at,
        now(),
    );
    let row = campaign::ActiveModel {
        id: Set(current.id),
        budget_spent: Set(spent.points),
        budget_exhausted_at: Set(spent.exhausted_at),
        ..definition(draft)?
    };
    Ok(row.update(db).await?)
}

fn definition(draft: &Draft) -> DomainResult<campaign::ActiveModel> {
    Ok(campaign::ActiveModel {
        name: Set(draft.name.clone()),
        description: Set(draft.description.clone()),
        trigger_kind: Set(draft.trigger.kind()),
        trigger: Set(json(&draft.trigger)?),
        condition: Set(draft.condition.clone()),
        actions: Set(json(&draft.actions)?),
        starts_at: Set(draft.starts_at),
        ends_at: Set(draft.ends_at),
        limit_per_customer: Set(draft.limit_per_customer),
        budget_points: Set(draft.budget_points),
        updated_at: Set(now()),
        ..Default::default()
    })
}

pub async fn set_status(
    db: &impl ConnectionTrait,
    id: Uuid,
    status: CampaignStatus,
) -> DomainResult<campaign::Model> {
    let row = campaign::ActiveModel {
        id: Set(id),
        status: Set(status),
        updated_at: Set(now()),
        ..Default::default()
    };
    Ok(row.update(db).await?)
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<Option<campaign::Model>> {
    Ok(campaign::Entity::find_by_id(id).one(db).await?)
}

/// How many campaigns have not ended.
pub async fn count_running(db: &impl ConnectionTrait) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(campaign::Entity::find()
        .filter(campaign::Column::Status.ne(CampaignStatus::Ended))
        .count(db)
        .await?)
}

/// The campaign, locked for the rest of the transaction (its status and budget).
pub async fn find_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<campaign::Model>> {
    Ok(campaign::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?)
}

pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, campaign::Model>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = campaign::Entity::find()
        .filter(campaign::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}

/// The newest `limit` campaigns, or of those of the given statuses.
pub async fn list(
    db: &impl ConnectionTrait,
    statuses: Option<&[CampaignStatus]>,
    limit: u64,
) -> DomainResult<Vec<campaign::Model>> {
    let mut query = campaign::Entity::find();
    if let Some(statuses) = statuses {
        query = query.filter(campaign::Column::Status.is_in(statuses.iter().copied()));
    }
    Ok(query
        .order_by_desc(campaign::Column::CreatedAt)
        .order_by_desc(campaign::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Every active campaign, oldest first (the order multipliers share their cap in), for
/// the program's snapshot.
pub async fn all_active(db: &impl ConnectionTrait) -> DomainResult<Vec<campaign::Model>> {
    Ok(running().all(db).await?)
}

/// The active campaigns of one trigger kind, oldest first.
pub async fn active(
    db: &impl ConnectionTrait,
    kind: CampaignTriggerKind,
) -> DomainResult<Vec<campaign::Model>> {
    Ok(running()
        .filter(campaign::Column::TriggerKind.eq(kind))
        .all(db)
        .await?)
}

fn running() -> sea_orm::Select<campaign::Entity> {
    campaign::Entity::find()
        .filter(campaign::Column::Status.eq(CampaignStatus::Active))
        .order_by_asc(campaign::Column::CreatedAt)
        .order_by_asc(campaign::Column::Id)
}

/// Locks the campaigns whose budgets the firings draw on, in id order, and says what
/// each has spent: parallel writes firing one campaign queue on its row, so the budget
/// is never overspent.
pub async fn lock_budgets(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Spent>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let rows: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = campaign::Entity::find()
        .select_only()
        .column(campaign::Column::Id)
        .column(campaign::Column::BudgetSpent)
        .column(campaign::Column::BudgetExhaustedAt)
        .filter(campaign::Column::Id.is_in(ids))
        .order_by_asc(campaign::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, points, exhausted_at)| {
            (
                id,
                Spent {
                    points,
                    exhausted_at,
                },
            )
        })
        .collect())
}

/// Writes back what the budgets' campaigns have spent.
pub async fn save_spent(
    db: &impl ConnectionTrait,
    spent: &HashMap<Uuid, Spent>,
) -> DomainResult<()> {
    for (id, spent) in spent {
        campaign::Entity::update_many()
            .col_expr(campaign::Column::BudgetSpent, Expr::val(spent.points))
            .col_expr(
                campaign::Column::BudgetExhaustedAt,
                Expr::val(spent.exhausted_at),
            )
            .filter(campaign::Column::Id.eq(*id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// What each campaign gave each customer (firings and points), for these campaigns and
/// customers.
pub async fn given(
    db: &impl ConnectionTrait,
    campaigns: &[Uuid],
    customers: &[Uuid],
) -> DomainResult<HashMap<(Uuid, Uuid), Given>> {
    if campaigns.is_empty() || customers.is_empty() {
        return Ok(HashMap::new());
    }
    let customers: HashSet<Uuid> = customers.iter().copied().collect();
    let rows: Vec<(Uuid, Uuid, i64, i64)> = campaign_firing::Entity::find()
        .select_only()
        .column(campaign_firing::Column::CampaignId)
        .column(campaign_firing::Column::CustomerId)
        .column_as(campaign_firing::Column::Id.count(), "firings")
        .column_as(Expr::cust("CAST(SUM(points) AS BIGINT)"), "points")
        .filter(campaign_firing::Column::CampaignId.is_in(campaigns.iter().copied()))
        .filter(campaign_firing::Column::CustomerId.is_in(customers))
        .group_by(campaign_firing::Column::CampaignId)
        .group_by(campaign_firing::Column::CustomerId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(campaign, customer, firings, points)| {
            ((campaign, customer), Given { firings, points })
        })
        .collect())
}

/// Logs firings (their causes were checked under the customers' locks; the unique key
/// is the last guard).
pub async fn log_firings(db: &impl ConnectionTrait, firings: &[Firing]) -> DomainResult<()> {
    for chunk in firings.chunks(500) {
        let rows = chunk.iter().map(|f| campaign_firing::ActiveModel {
            id: Set(Uuid::now_v7()),
            campaign_id: Set(f.campaign_id),
            customer_id: Set(f.customer_id),
            cause: Set(f.cause.clone()),
            points: Set(f.points),
            fired_at: Set(f.at),
        });
        campaign_firing::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    campaign_firing::Column::CampaignId,
                    campaign_firing::Column::CustomerId,
                    campaign_firing::Column::Cause,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Which causes of these are logged already for the campaign and customer.
pub async fn logged_causes(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    keys: &[(Uuid, String)],
) -> DomainResult<HashSet<(Uuid, String)>> {
    let mut logged = HashSet::new();
    for chunk in keys.chunks(500) {
        let customers: HashSet<Uuid> = chunk.iter().map(|(c, _)| *c).collect();
        let causes: HashSet<&str> = chunk.iter().map(|(_, cause)| cause.as_str()).collect();
        let rows: Vec<(Uuid, String)> = campaign_firing::Entity::find()
            .select_only()
            .column(campaign_firing::Column::CustomerId)
            .column(campaign_firing::Column::Cause)
            .filter(campaign_firing::Column::CampaignId.eq(campaign_id))
            .filter(campaign_firing::Column::CustomerId.is_in(customers))
            .filter(campaign_firing::Column::Cause.is_in(causes))
            .into_tuple()
            .all(db)
            .await?;
        logged.extend(rows);
    }
    Ok(logged)
}

/// What each campaign has done: firings, customers reached, points awarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct Stats {
    pub times_fired: i64,
    pub customers_reached: i64,
    pub points_awarded: i64,
}

/// `Stats` of these campaigns, in one statement over the firing log.
pub async fn stats(db: &impl ConnectionTrait, ids: &[Uuid]) -> DomainResult<HashMap<Uuid, Stats>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = Query::select()
        .column(campaign_firing::Column::CampaignId)
        .expr_as(
            Expr::col(campaign_firing::Column::Id).count(),
            "times_fired",
        )
        .expr_as(
            Expr::col(campaign_firing::Column::CustomerId).count_distinct(),
            "customers_reached",
        )
        .expr_as(
            Expr::col(campaign_firing::Column::Points)
                .sum()
                .cast_as("BIGINT"),
            "points_awarded",
        )
        .from(campaign_firing::Entity)
        .and_where(campaign_firing::Column::CampaignId.is_in(ids.iter().copied()))
        .group_by_col(campaign_firing::Column::CampaignId)
        .to_owned();
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(backend.build(&query)).await?;
    let mut stats = HashMap::new();
    for row in rows {
        let id: Uuid = row.try_get("", "campaign_id")?;
        stats.insert(id, Stats::from_query_result(&row, "")?);
    }
    Ok(stats)
}

/// Those of `candidates` for whom `condition` (on `customer`) holds, one statement per
/// 500.
pub async fn matching(
    db: &impl ConnectionTrait,
    condition: &Expr,
    candidates: &[Uuid],
) -> DomainResult<HashSet<Uuid>> {
    let mut matched = HashSet::new();
    for chunk in candidates.chunks(500) {
        let query = Query::select()
            .column((customer::Entity, customer::Column::Id))
            .from(customer::Entity)
            .and_where(
                Expr::col((customer::Entity, customer::Column::Id))
                    .is_in(chunk.iter().copied())
                    .and(condition.clone()),
            )
            .to_owned();
        let backend = db.get_database_backend();
        for row in db.query_all_raw(backend.build(&query)).await? {
            matched.insert(row.try_get::<Uuid>("", "id")?);
        }
    }
    Ok(matched)
}
