//! Segments and their static members, and membership as SQL: a DYNAMIC segment's rule
//! or a STATIC segment's list, as one condition on `customer` that every count, list
//! and lookup of members uses.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::enums::SegmentKind;
use entity::{customer, segment, segment_member, tier};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SelectStatement, UnionType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::paging::{Page, PageRequest, by_time};
use super::segment_sql::{self, never};
use super::{now, tiers};
use crate::domain::analytics::churn::ChurnModel;
use crate::domain::segment::SegmentDraft;
use crate::domain::segment_rule::Rule;
use crate::domain::{DomainError, DomainResult};

/// Whom a customer list is narrowed to: a saved segment's members, or the customers an
/// unsaved rule matches (a preview).
#[derive(Debug, Clone)]
pub enum Membership {
    Segment(Uuid),
    Rule(Rule),
}

/// The order `segments` pages in: oldest first.
pub const ORDER: &str = "CREATED_AT_ASC";

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<Option<segment::Model>> {
    Ok(segment::Entity::find_by_id(id).one(db).await?)
}

/// The segment, locked for the rest of the transaction, or `NOT_FOUND`.
pub async fn get_for_update(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<segment::Model> {
    use sea_orm::QuerySelect;
    segment::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| DomainError::not_found("segment"))
}

pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<Vec<segment::Model>> {
    Ok(segment::Entity::find()
        .filter(segment::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// Every segment, by name.
pub async fn all(db: &impl ConnectionTrait) -> DomainResult<Vec<segment::Model>> {
    Ok(segment::Entity::find()
        .order_by_asc(segment::Column::Name)
        .all(db)
        .await?)
}

/// A page of segments, oldest first.
pub async fn page(
    db: &impl ConnectionTrait,
    request: &PageRequest,
) -> DomainResult<Page<segment::Model>> {
    by_time::<segment::Entity>(
        db,
        sea_orm::Condition::all(),
        segment::Column::CreatedAt,
        segment::Column::Id,
        false,
        request,
    )
    .await
}

/// Whether another segment already has this name.
pub async fn name_taken(
    db: &impl ConnectionTrait,
    name: &str,
    except: Option<Uuid>,
) -> DomainResult<bool> {
    let mut query = segment::Entity::find().filter(segment::Column::Name.eq(name));
    if let Some(id) = except {
        query = query.filter(segment::Column::Id.ne(id));
    }
    Ok(query.count(db).await? > 0)
}

pub async fn insert(
    db: &impl ConnectionTrait,
    draft: SegmentDraft,
) -> DomainResult<segment::Model> {
    let at = now();
    Ok(segment::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(draft.name),
        description: Set(draft.description),
        kind: Set(draft.kind),
        rule: Set(draft.rule),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?)
}

pub async fn update(
    db: &impl ConnectionTrait,
    id: Uuid,
    draft: SegmentDraft,
) -> DomainResult<segment::Model> {
    Ok(segment::ActiveModel {
        id: Set(id),
        name: Set(draft.name),
        description: Set(draft.description),
        rule: Set(draft.rule),
        updated_at: Set(now()),
        ..Default::default()
    }
    .update(db)
    .await?)
}

/// Deletes a segment with its static members.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<()> {
    segment_member::Entity::delete_many()
        .filter(segment_member::Column::SegmentId.eq(id))
        .exec(db)
        .await?;
    segment::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Adds customers to a static list; those already in it stay as they were.
pub async fn add_members(
    db: &impl ConnectionTrait,
    segment_id: Uuid,
    customer_ids: &[Uuid],
) -> DomainResult<()> {
    if customer_ids.is_empty() {
        return Ok(());
    }
    let at = now();
    segment_member::Entity::insert_many(customer_ids.iter().map(|&customer_id| {
        segment_member::ActiveModel {
            segment_id: Set(segment_id),
            customer_id: Set(customer_id),
            added_at: Set(at),
        }
    }))
    .on_conflict(
        OnConflict::columns([
            segment_member::Column::SegmentId,
            segment_member::Column::CustomerId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn remove_members(
    db: &impl ConnectionTrait,
    segment_id: Uuid,
    customer_ids: &[Uuid],
) -> DomainResult<()> {
    segment_member::Entity::delete_many()
        .filter(segment_member::Column::SegmentId.eq(segment_id))
        .filter(segment_member::Column::CustomerId.is_in(customer_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// What rules are compiled against: the program's tiers (rules name them by key) and
/// the churn model in use (`pAlive` comes from it).
#[derive(Default)]
pub struct RuleContext {
    pub tiers: Vec<tier::Model>,
    pub churn: Option<ChurnModel>,
}

impl RuleContext {
    pub async fn load(db: &impl ConnectionTrait) -> DomainResult<Self> {
        Ok(Self {
            tiers: tiers::all(db).await?,
            churn: super::evaluation_runs::current_churn_model(db).await?,
        })
    }

    fn compile(&self, rule: &Rule, backend: sea_orm::DbBackend, at: DateTime<Utc>) -> Expr {
        segment_sql::compile(rule, backend, at, &self.tiers, self.churn.as_ref())
    }

    /// The condition on `customer` that selects the live customers matching `rule` now.
    pub fn matching(&self, rule: &Rule, backend: sea_orm::DbBackend) -> Expr {
        live().and(self.compile(rule, backend, now()))
    }
}

/// The condition on `customer` that selects a segment's members now. Erased customers
/// are members of nothing.
pub fn members_of(
    segment: &segment::Model,
    backend: sea_orm::DbBackend,
    at: DateTime<Utc>,
    context: &RuleContext,
) -> DomainResult<Expr> {
    let membership = match segment.kind {
        SegmentKind::Static => Expr::col((customer::Entity, customer::Column::Id)).in_subquery(
            Query::select()
                .column(segment_member::Column::CustomerId)
                .from(segment_member::Entity)
                .and_where(segment_member::Column::SegmentId.eq(segment.id))
                .to_owned(),
        ),
        SegmentKind::Dynamic => {
            let rule = segment.rule.as_ref().ok_or_else(|| {
                DomainError::Internal(anyhow::anyhow!("segment {} has no rule", segment.id))
            })?;
            // Saved rules were validated when saved; a tier deleted since then simply
            // matches nobody.
            let rule = Rule::parse(rule, "rule", &|_| true).map_err(|error| {
                DomainError::Internal(anyhow::anyhow!("segment {}: {error}", segment.id))
            })?;
            context.compile(&rule, backend, at)
        }
    };
    Ok(live().and(membership))
}

/// Refuses (`BAD_USER_INPUT` at `path`) a rule the database cannot run: its condition
/// is prepared and run against no rows, so that a rule too large for one statement is
/// refused when it is saved or previewed, not later in every read that meets it.
pub async fn check_runs(db: &impl ConnectionTrait, rule: &Rule, path: &str) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let context = RuleContext::load(db).await?;
    let query = Query::select()
        .expr(Expr::val(1))
        .from(customer::Entity)
        .and_where(live().and(context.compile(rule, backend, now())))
        .limit(0)
        .to_owned();
    match db.query_all_raw(backend.build(&query)).await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::info!(%error, "a segment rule the database cannot run was refused");
            Err(DomainError::bad_input(
                path,
                "the database cannot run this rule (too many values or conditions for one \
                 statement); split it into smaller rules",
            ))
        }
    }
}

/// Customers a segment may hold: not erased, not merged into another.
fn live() -> Expr {
    Expr::col((customer::Entity, customer::Column::ErasedAt))
        .is_null()
        .and(Expr::col((customer::Entity, customer::Column::MergedIntoId)).is_null())
}

/// The condition for `membership`; an unknown segment has no members.
pub async fn condition(db: &impl ConnectionTrait, membership: &Membership) -> DomainResult<Expr> {
    let backend = db.get_database_backend();
    match membership {
        Membership::Segment(id) => match find(db, *id).await? {
            Some(segment) if segment.kind == SegmentKind::Static => {
                members_of(&segment, backend, now(), &RuleContext::default())
            }
            Some(segment) => members_of(&segment, backend, now(), &RuleContext::load(db).await?),
            None => Ok(never()),
        },
        Membership::Rule(rule) => {
            let context = RuleContext::load(db).await?;
            Ok(live().and(context.compile(rule, backend, now())))
        }
    }
}

/// Each segment with the condition that selects its members, leaving out (and logging)
/// one whose stored rule no longer compiles: a rule saved under older limits costs its
/// own answers only.
fn conditions<'s>(
    segments: &'s [segment::Model],
    backend: sea_orm::DbBackend,
    at: DateTime<Utc>,
    context: &RuleContext,
) -> Vec<(&'s segment::Model, Expr)> {
    segments
        .iter()
        .filter_map(|segment| match members_of(segment, backend, at, context) {
            Ok(condition) => Some((segment, condition)),
            Err(error) => {
                tracing::error!(segment = %segment.id, name = %segment.name, ?error,
                    "a segment's rule cannot be compiled; it is left out");
                None
            }
        })
        .collect()
}

/// How many customers each segment has now, in one statement: one `COUNT` per segment,
/// joined with UNION ALL so that each uses the indexes its own condition can. A segment
/// whose rule cannot run has no entry.
pub async fn member_counts(
    db: &impl ConnectionTrait,
    segments: &[segment::Model],
) -> DomainResult<HashMap<Uuid, i64>> {
    let backend = db.get_database_backend();
    let context = RuleContext::load(db).await?;
    let runnable = conditions(segments, backend, now(), &context);
    let mut counts = HashMap::new();
    // A page holds at most 100 segments: one statement for a page, as long as their
    // rules' values fit.
    for chunk in chunks_within(&runnable, backend, 100, 0) {
        let branches = chunk
            .iter()
            .map(|(segment, condition)| {
                let mut branch = branch(segment, condition);
                branch.expr_as(
                    Expr::col(customer::Column::Id).count(),
                    Alias::new("members"),
                );
                branch
            })
            .collect();
        for row in isolated(db, branches, chunk).await? {
            counts.insert(segment_id(&row)?, row.try_get::<i64>("", "members")?);
        }
    }
    Ok(counts)
}

/// One segment's part of a UNION ALL: its id, over the customers its condition selects.
fn branch(segment: &segment::Model, condition: &Expr) -> SelectStatement {
    Query::select()
        .expr_as(Expr::val(segment.id.to_string()), Alias::new("segment_id"))
        .from(customer::Entity)
        .and_where(condition.clone())
        .to_owned()
}

/// The rows of every branch, in one statement; if that fails, branch by branch, so that
/// one segment the database cannot run (saved before rules were checked at save time)
/// costs its own answer only: it is logged and left out, and the others are answered.
async fn isolated(
    db: &impl ConnectionTrait,
    branches: Vec<SelectStatement>,
    segments: &[(&segment::Model, Expr)],
) -> DomainResult<Vec<sea_orm::QueryResult>> {
    let error = match union_all(db, branches.clone()).await {
        Ok(rows) => return Ok(rows),
        Err(error) => error,
    };
    tracing::warn!(
        ?error,
        "segments evaluated together failed; evaluating each alone"
    );
    let mut rows = Vec::new();
    for (branch, (segment, _)) in branches.into_iter().zip(segments) {
        match union_all(db, vec![branch]).await {
            Ok(found) => rows.extend(found),
            Err(error) => tracing::error!(segment = %segment.id, name = %segment.name, ?error,
                "a segment's rule cannot run; it is left out"),
        }
    }
    Ok(rows)
}

/// The segments each of these customers is in now (each list by segment name): every
/// segment's condition tested against just these customers, a bounded number of
/// segments per statement.
pub async fn segments_of(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<segment::Model>>> {
    let mut found: HashMap<Uuid, Vec<segment::Model>> = HashMap::new();
    if customer_ids.is_empty() {
        return Ok(found);
    }
    let segments = all(db).await?;
    let context = RuleContext::load(db).await?;
    let backend = db.get_database_backend();
    let runnable = conditions(&segments, backend, now(), &context);
    let mut member_of: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    // Each branch carries the page's customer ids as well.
    for chunk in chunks_within(&runnable, backend, 20, customer_ids.len()) {
        let branches = chunk
            .iter()
            .map(|(segment, condition)| {
                let id = || Expr::col((customer::Entity, customer::Column::Id));
                let mut branch = branch(segment, condition);
                branch
                    .expr_as(id(), Alias::new("customer_id"))
                    .and_where(id().is_in(customer_ids.iter().copied()));
                branch
            })
            .collect();
        for row in isolated(db, branches, chunk).await? {
            let customer_id: Uuid = row.try_get("", "customer_id")?;
            member_of
                .entry(customer_id)
                .or_default()
                .insert(segment_id(&row)?);
        }
    }
    for (customer_id, ids) in member_of {
        found.insert(
            customer_id,
            segments
                .iter()
                .filter(|s| ids.contains(&s.id))
                .cloned()
                .collect(),
        );
    }
    Ok(found)
}

/// The segments in groups tested by one statement each: at most `per_statement`
/// segments, and at most `PARAMETERS_PER_STATEMENT` bound values (each segment's rule's,
/// plus `extra` of its own), far below both databases' limits (SQLite 32,766).
fn chunks_within<'c, 's>(
    conditions: &'c [(&'s segment::Model, Expr)],
    backend: sea_orm::DbBackend,
    per_statement: usize,
    extra: usize,
) -> Vec<&'c [(&'s segment::Model, Expr)]> {
    const PARAMETERS_PER_STATEMENT: usize = 8_000;
    let mut chunks = Vec::new();
    let (mut start, mut parameters) = (0, 0);
    for (i, (_, condition)) in conditions.iter().enumerate() {
        let query = Query::select()
            .expr(Expr::val(1))
            .and_where(condition.clone())
            .to_owned();
        let own = backend.build(&query).values.map_or(0, |v| v.0.len()) + extra;
        let full = i - start == per_statement || parameters + own > PARAMETERS_PER_STATEMENT;
        if i > start && full {
            chunks.push(&conditions[start..i]);
            start = i;
            parameters = 0;
        }
        parameters += own;
    }
    if start < conditions.len() {
        chunks.push(&conditions[start..]);
    }
    chunks
}

async fn union_all(
    db: &impl ConnectionTrait,
    mut branches: Vec<SelectStatement>,
) -> DomainResult<Vec<sea_orm::QueryResult>> {
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = branches.remove(0);
    for branch in branches {
        query.union(UnionType::All, branch);
    }
    let statement = db.get_database_backend().build(&query);
    Ok(db.query_all_raw(statement).await?)
}

fn segment_id(row: &sea_orm::QueryResult) -> DomainResult<Uuid> {
    let text: String = row.try_get("", "segment_id")?;
    Uuid::parse_str(&text).map_err(|error| DomainError::Internal(error.into()))
}
