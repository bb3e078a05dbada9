//! Customers: lookups, the filtered and ordered list, and writes of the profile.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::{AbcClass, CustomerKind, LifecycleStage, RfmSegment};
use entity::{customer, customer_points_rank, customer_tag, tier};
use sea_orm::sea_query::{
    ColumnRef, Expr, ExprTrait, Func, IntoColumnRef, LikeExpr, NullOrdering, Query,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Set, Value,
};
use uuid::Uuid;

use super::paging::{Cursor, Page, PageRequest, SortValue, after_condition};
use crate::domain::{DomainError, DomainResult};

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<Option<customer::Model>> {
    Ok(customer::Entity::find_by_id(id).one(db).await?)
}

pub async fn find_by_external_ref(
    db: &impl ConnectionTrait,
    external_ref: &str,
) -> DomainResult<Option<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(customer::Column::ExternalRef.eq(external_ref))
        .one(db)
        .await?)
}

/// The customer with this id, or its survivor when it was merged.
pub async fn find_following_merge(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<customer::Model>> {
    follow_merge(db, find(db, id).await?).await
}

/// The customer with this external reference, or its survivor when it was merged.
pub async fn find_by_external_ref_following_merge(
    db: &impl ConnectionTrait,
    external_ref: &str,
) -> DomainResult<Option<customer::Model>> {
    follow_merge(db, find_by_external_ref(db, external_ref).await?).await
}

async fn follow_merge(
    db: &impl ConnectionTrait,
    found: Option<customer::Model>,
) -> DomainResult<Option<customer::Model>> {
    match found {
        Some(customer) => match customer.merged_into_id {
            Some(survivor) => find(db, survivor).await,
            None => Ok(Some(customer)),
        },
        None => Ok(None),
    }
}

/// The ids of the customers with these external references, by reference.
pub async fn ids_by_external_ref(
    db: &impl ConnectionTrait,
    external_refs: &[String],
) -> DomainResult<HashMap<String, Uuid>> {
    if external_refs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Option<String>)> = customer::Entity::find()
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::ExternalRef)
        .filter(customer::Column::ExternalRef.is_in(external_refs.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, reference)| reference.map(|r| (r, id)))
        .collect())
}

/// The customer, locked for the rest of the transaction (Postgres `FOR UPDATE`; SQLite
/// has a single writer already), so that concurrent writes to one customer queue up.
pub async fn find_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<customer::Model>> {
    Ok(customer::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await?)
}

/// Locks these customers in id order, so that transactions locking overlapping sets
/// queue instead of deadlocking.
pub async fn lock_in_order(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<Vec<customer::Model>> {
    Ok(locking_in_order(ids).all(db).await?)
}

/// `lock_in_order` for a write that needs only the customers' balances.
pub async fn lock_balances_in_order(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, i64>> {
    balances(db, locking_in_order(ids)).await
}

async fn balances(
    db: &impl ConnectionTrait,
    locking: sea_orm::Select<customer::Entity>,
) -> DomainResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = locking
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::PointsBalance)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Each of these customers' current tier.
pub async fn tiers_of(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Uuid>> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut tiers = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let rows: Vec<(Uuid, Uuid)> = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .column(customer::Column::TierId)
            .filter(customer::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        tiers.extend(rows);
    }
    Ok(tiers)
}

/// The ids of the customers `condition` (on `customer`) selects, in one statement.
pub async fn ids_where<C: FromIterator<Uuid>>(
    db: &impl ConnectionTrait,
    condition: sea_orm::sea_query::Expr,
) -> DomainResult<C> {
    let query = sea_orm::sea_query::Query::select()
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .and_where(condition)
        .to_owned();
    let backend = db.get_database_backend();
    db.query_all_raw(backend.build(&query))
        .await?
        .iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// `lock_balances_in_order` for customers who were not erased: the others are left out.
pub async fn lock_live_balances_in_order(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, i64>> {
    balances(
        db,
        locking_in_order(ids).filter(customer::Column::ErasedAt.is_null()),
    )
    .await
}

/// The query that locks these customers (each once) in id order.
fn locking_in_order(ids: &[Uuid]) -> sea_orm::Select<customer::Entity> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    customer::Entity::find()
        .filter(customer::Column::Id.is_in(ids))
        .order_by_asc(customer::Column::Id)
        .lock_exclusive()
}

/// Customers per lifecycle stage (stages without customers are left out).
pub async fn count_by_stage(
    db: &impl ConnectionTrait,
) -> DomainResult<HashMap<LifecycleStage, i64>> {
    let rows: Vec<(LifecycleStage, i64)> = customer::Entity::find()
        .select_only()
        .column(customer::Column::LifecycleStage)
        .column_as(customer::Column::Id.count(), "count")
        .filter(customer::Column::MergedIntoId.is_null())
        .group_by(customer::Column::LifecycleStage)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// All customers, and the points they hold (the program's liability: positive balances).
pub async fn count_and_points(db: &impl ConnectionTrait) -> DomainResult<(i64, i64)> {
    let row: Option<(i64, Option<i64>)> = customer::Entity::find()
        .select_only()
        .column_as(customer::Column::Id.count(), "customers")
        .column_as(
            Expr::cust(
                "CAST(SUM(CASE WHEN points_balance > 0 THEN points_balance ELSE 0 END) AS BIGINT)",
            ),
            "points",
        )
        .filter(customer::Column::MergedIntoId.is_null())
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.map_or((0, 0), |(count, points)| (count, points.unwrap_or(0))))
}

/// Every customer, oldest first (for small data sets such as the demo).
pub async fn find_all(db: &impl ConnectionTrait) -> DomainResult<Vec<customer::Model>> {
    Ok(customer::Entity::find()
        .order_by_asc(customer::Column::CreatedAt)
        .order_by_asc(customer::Column::Id)
        .all(db)
        .await?)
}

/// Every live customer with a birthday, with it, streamed: a run looks for the few
/// whose birthday is near without holding everyone in memory.
pub async fn birthdays<'a, C>(
    db: &'a C,
) -> DomainResult<
    impl futures_util::Stream<Item = DomainResult<(Uuid, chrono::NaiveDate)>> + Send + 'a,
>
where
    C: sea_orm::StreamTrait + ConnectionTrait,
{
    use futures_util::StreamExt;
    let rows = customer::Entity::find()
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::Birthday)
        .filter(customer::Column::Birthday.is_not_null())
        .filter(customer::Column::ErasedAt.is_null())
        .filter(customer::Column::MergedIntoId.is_null())
        .into_tuple::<(Uuid, chrono::NaiveDate)>()
        .stream(db)
        .await?;
    Ok(rows.map(|row| Ok(row?)))
}

/// A customer that has not been erased, locked for the rest of the transaction, with
/// its pending points that are due activated; `NOT_FOUND` otherwise. What every write to
/// one customer starts with. A merged member's id stands for its survivor, which is
/// returned instead (merges point every tombstone at the final survivor).
pub async fn live_for_update(db: &impl ConnectionTrait, id: Uuid) -> DomainResult<customer::Model> {
    let mut customer = following_merge_for_update(db, id)
        .await?
        .filter(|c| c.erased_at.is_none())
        .ok_or_else(|| crate::domain::DomainError::not_found("customer"))?;
    super::pending_points::activate_held(db, [&mut customer], super::now()).await?;
    Ok(customer)
}

/// `find_for_update`, or the survivor's row (locked) when `id` was merged into it.
pub async fn following_merge_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> DomainResult<Option<customer::Model>> {
    match find_for_update(db, id).await? {
        Some(customer) => match customer.merged_into_id {
            Some(survivor) => find_for_update(db, survivor).await,
            None => Ok(Some(customer)),
        },
        None => Ok(None),
    }
}

pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<Vec<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(customer::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// What `customers(filter:)` can filter on; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub search: Option<String>,
    pub tier_keys: Option<Vec<String>>,
    pub lifecycle_stages: Option<Vec<LifecycleStage>>,
    pub kinds: Option<Vec<CustomerKind>>,
    pub tags: Option<Vec<String>>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    pub abc_classes: Option<Vec<AbcClass>>,
    pub rfm_segments: Option<Vec<RfmSegment>>,
    /// A segment's members, or the customers a rule matches.
    pub membership: Option<super::segments::Membership>,
    /// Bounds on pAlive under the churn model in use; nobody has a pAlive without one.
    pub min_p_alive: Option<f64>,
    pub max_p_alive: Option<f64>,
}

/// Search terms shorter than this match the start of a name, e-mail, phone or
/// externalRef; longer ones match anywhere in them. A substring of one or two
/// characters is in most of a million customers and no index finds it faster than a
/// scan; a prefix is an index range (the type-ahead a console sends as its user types).
pub const SUBSTRING_SEARCH_FROM: usize = 3;

impl CustomerFilter {
    fn condition(&self, backend: sea_orm::DbBackend) -> Condition {
        // Merged members are tombstones: their survivors are listed instead.
        let mut condition = Condition::all().add(customer::Column::MergedIntoId.is_null());
        if let Some(search) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let term = search.to_lowercase();
            condition = condition.add(if term.chars().count() < SUBSTRING_SEARCH_FROM {
                starts_with(backend, &term)
            } else {
                let pattern = format!("%{}%", escape_like(&term));
                Condition::all().add(
                    Expr::cust(migration::SEARCH_EXPRESSION)
                        .like(LikeExpr::new(pattern).escape('!')),
                )
            });
        }
        if let Some(keys) = &self.tier_keys {
            condition = condition.add(
                customer::Column::TierId.in_subquery(
                    Query::select()
                        .column(tier::Column::Id)
                        .from(tier::Entity)
                        .and_where(tier::Column::Key.is_in(keys.iter().cloned()))
                        .to_owned(),
                ),
            );
        }
        if let Some(stages) = &self.lifecycle_stages {
            condition =
                condition.add(customer::Column::LifecycleStage.is_in(stages.iter().copied()));
        }
        if let Some(kinds) = &self.kinds {
            condition = condition.add(customer::Column::Kind.is_in(kinds.iter().copied()));
        }
        for tag in self.tags.iter().flatten() {
            condition = condition.add(Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from(customer_tag::Entity)
                    .and_where(
                        Expr::col((customer_tag::Entity, customer_tag::Column::CustomerId))
                            .equals((customer::Entity, customer::Column::Id)),
                    )
                    .and_where(
                        Expr::col((customer_tag::Entity, customer_tag::Column::Tag))
                            .eq(tag.as_str()),
                    )
                    .to_owned(),
            ));
        }
        if let Some(min) = self.min_score {
            condition = condition.add(customer::Column::Score.gte(min));
        }
        if let Some(max) = self.max_score {
            condition = condition.add(customer::Column::Score.lte(max));
        }
        if let Some(classes) = &self.abc_classes {
            condition = condition.add(customer::Column::AbcClass.is_in(classes.iter().copied()));
        }
        if let Some(segments) = &self.rfm_segments {
            condition = condition.add(customer::Column::RfmSegment.is_in(segments.iter().copied()));
        }
        condition
    }
}

/// Customers whose name, e-mail, phone or externalRef starts with `prefix` (lower
/// case), as a range of each column's prefix index: `[prefix, prefix + U+10FFFF)` in
/// byte order holds every string that starts with it. A range rather than `LIKE
/// 'ab%'`: Postgres turns a LIKE into an index range only for a pattern it sees when
/// planning, not for a parameter of a prepared statement.
fn starts_with(backend: sea_orm::DbBackend, prefix: &str) -> Condition {
    let upper = format!("{prefix}\u{10FFFF}");
    migration::PREFIX_COLUMNS
        .iter()
        .fold(Condition::any(), |any, column| {
            let expression = migration::prefix_expression(backend, column);
            any.add(
                Condition::all()
                    .add(Expr::cust(expression.clone()).gte(prefix))
                    .add(Expr::cust(expression).lt(upper.as_str())),
            )
        })
}

/// `text` as a literal LIKE pattern, escaped with `!` (a backslash would mean different
/// things to the two databases' string literals).
pub(crate) fn escape_like(text: &str) -> String {
    text.replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerOrderField {
    Name,
    CreatedAt,
    Score,
    LifetimeSpend,
    PointsBalance,
    LastPurchaseAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerOrder {
    pub field: CustomerOrderField,
    pub descending: bool,
}

impl Default for CustomerOrder {
    fn default() -> Self {
        Self {
            field: CustomerOrderField::CreatedAt,
            descending: false,
        }
    }
}

impl CustomerOrder {
    /// The name cursors carry, e.g. `SCORE_DESC`.
    pub fn name(&self) -> String {
        format!(
            "{:?}_{}",
            self.field,
            if self.descending { "DESC" } else { "ASC" }
        )
    }

    /// The columns this order walks: the sort value, then the id. The balance's are its
    /// copy in `customer_points_rank` (joined by `list`), whose index serves the order:
    /// `customer.points_balance` has none, so that moving a balance can be a HOT update.
    fn columns(&self) -> (ColumnRef, ColumnRef) {
        let on_customer = |column: customer::Column| {
            (
                (customer::Entity, column).into_column_ref(),
                (customer::Entity, customer::Column::Id).into_column_ref(),
            )
        };
        match self.field {
            CustomerOrderField::Name => on_customer(customer::Column::Name),
            CustomerOrderField::CreatedAt => on_customer(customer::Column::CreatedAt),
            CustomerOrderField::Score => on_customer(customer::Column::Score),
            CustomerOrderField::LifetimeSpend => on_customer(customer::Column::LifetimeSpendE4),
            CustomerOrderField::PointsBalance => (
                (
                    customer_points_rank::Entity,
                    customer_points_rank::Column::PointsBalance,
                )
                    .into_column_ref(),
                (
                    customer_points_rank::Entity,
                    customer_points_rank::Column::CustomerId,
                )
                    .into_column_ref(),
            ),
            CustomerOrderField::LastPurchaseAt => on_customer(customer::Column::LastPurchaseAt),
        }
    }

    fn nullable(&self) -> bool {
        self.field == CustomerOrderField::LastPurchaseAt
    }

    pub fn sort_value(&self, customer: &customer::Model) -> SortValue {
        match self.field {
            CustomerOrderField::Name => SortValue::Text(customer.name.clone()),
            CustomerOrderField::CreatedAt => SortValue::Text(customer.created_at.to_rfc3339()),
            CustomerOrderField::Score => SortValue::Float(customer.score),
            CustomerOrderField::LifetimeSpend => SortValue::Int(customer.lifetime_spend_e4),
            CustomerOrderField::PointsBalance => SortValue::Int(customer.points_balance),
            CustomerOrderField::LastPurchaseAt => match customer.last_purchase_at {
                Some(at) => SortValue::Text(at.to_rfc3339()),
                None => SortValue::Null,
            },
        }
    }

    /// The cursor's sort value as a database value of this ordering's column; `None`
    /// for NULL. A value of the wrong type means a forged cursor.
    fn cursor_value(&self, cursor: &Cursor) -> DomainResult<Option<Value>> {
        let forged =
            || crate::domain::DomainError::bad_input("after", "is not a cursor from this list");
        let timestamp = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| Value::from(t.with_timezone(&Utc)))
                .map_err(|_| forged())
        };
        Ok(match (self.field, &cursor.value) {
            (CustomerOrderField::LastPurchaseAt, SortValue::Null) => None,
            (CustomerOrderField::Name, SortValue::Text(text)) => Some(Value::from(text.clone())),
            (
                CustomerOrderField::CreatedAt | CustomerOrderField::LastPurchaseAt,
                SortValue::Text(text),
            ) => Some(timestamp(text)?),
            (CustomerOrderField::Score, SortValue::Float(score)) => Some(Value::from(*score)),
            (CustomerOrderField::Score, SortValue::Int(score)) => Some(Value::from(*score as f64)),
            (
                CustomerOrderField::LifetimeSpend | CustomerOrderField::PointsBalance,
                SortValue::Int(n),
            ) => Some(Value::from(*n)),
            _ => return Err(forged()),
        })
    }

    pub fn cursor(&self, customer: &customer::Model) -> String {
        Cursor::new(&self.name(), self.sort_value(customer), customer.id).encode()
    }
}

/// Up to this many matching customers are counted exactly: a console shows "about
/// 480,000" as well, and counting a filter that half of a million customers match would
/// read half a million rows for every page.
pub const EXACT_COUNT_UP_TO: u64 = 1_000;

/// About how many rows the estimate above `EXACT_COUNT_UP_TO` reads. Evaluating a search
/// on a sampled row costs about a microsecond (10,000 rows took 10 ms, a search's whole
/// budget at a million customers); a sample of 2,000 sees a match set of a tenth of the
/// customers about 200 times, so its estimate is within about 7 % (one standard error),
/// and a set of 1 % within about 22 %.
const SAMPLE_ROWS: f64 = 2_000.0;

/// How far a filter is counted when the table's statistics cannot scale a sample (never
/// gathered, or stale after a bulk import until autovacuum analyses the table): a larger
/// count shows as this many rather than counting every match for every page.
const COUNT_WITHOUT_STATISTICS_UP_TO: u64 = 100_000;

/// How many customers match `condition`: exactly up to `EXACT_COUNT_UP_TO`; above it, on
/// Postgres, estimated from a sample (never below `EXACT_COUNT_UP_TO + 1`). SQLite
/// counts exactly.
///
/// On a table larger than the sample, the sample comes first: a type-ahead search of two
/// letters matches a sixth of the customers, and when the sample alone shows that many,
/// the bounded exact count (a scan until the 1,001st match, 3–5 ms at a million) is not
/// needed. A sample that sees few matches proves nothing, and the exact count decides.
async fn count(db: &impl ConnectionTrait, condition: Condition) -> DomainResult<u64> {
    let backend = db.get_database_backend();
    if backend != sea_orm::DbBackend::Postgres {
        return Ok(customer::Entity::find().filter(condition).count(db).await?);
    }
    let sample = match table_rows(db).await? {
        Some(rows) if rows > SAMPLE_ROWS => Some(sample(db, condition.clone(), rows).await?),
        _ => None,
    };
    if let Some(sample) = &sample
        && sample.surely_above(EXACT_COUNT_UP_TO)
    {
        return Ok(sample.estimate());
    }
    let exact = bounded_count(db, condition.clone(), EXACT_COUNT_UP_TO + 1).await?;
    if exact <= EXACT_COUNT_UP_TO {
        return Ok(exact);
    }
    let estimate = match sample {
        Some(sample) => sample.estimate(),
        // Statistics that call the table small (or that autovacuum has not gathered yet,
        // after a bulk import) may be stale: counted, but never further than a bound.
        None => bounded_count(db, condition, COUNT_WITHOUT_STATISTICS_UP_TO).await?,
    };
    Ok(std::cmp::max(estimate, EXACT_COUNT_UP_TO + 1))
}

/// The customers matching `condition`, counted up to `limit`.
async fn bounded_count(
    db: &impl ConnectionTrait,
    condition: Condition,
    limit: u64,
) -> DomainResult<u64> {
    let mut bounded = customer::Entity::find()
        .select_only()
        .expr(Expr::val(1))
        .filter(condition)
        .into_query();
    bounded.limit(limit);
    let counted = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(bounded, sea_orm::sea_query::Alias::new("matching"))
        .to_owned();
    let count: i64 = db
        .query_one(&counted)
        .await?
        .map(|row| row.try_get_by_index(0))
        .transpose()?
        .unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The customer table's size as the statistics know it (`reltuples`, kept by autovacuum
/// and `ANALYZE`); `None` before the table was first analysed.
async fn table_rows(db: &impl ConnectionTrait) -> DomainResult<Option<f64>> {
    let rows: Option<f64> = db
        .query_one_raw(super::raw(
            db.get_database_backend(),
            "SELECT CAST(reltuples AS DOUBLE PRECISION) FROM pg_class \
             WHERE oid = 'customer'::regclass",
            Vec::new(),
        ))
        .await?
        .map(|row| row.try_get_by_index(0))
        .transpose()?;
    Ok(rows.filter(|rows| *rows >= 0.0))
}

/// What a block sample of the customer table saw of a condition.
struct Sample {
    matched: f64,
    sampled: f64,
    table_rows: f64,
}

impl Sample {
    /// The matches, scaled from the sample to the table.
    fn estimate(&self) -> u64 {
        if self.sampled == 0.0 {
            return 0;
        }
        (self.matched / self.sampled * self.table_rows).round() as u64
    }

    /// Whether the table surely holds more than `bound` matches: even two standard errors
    /// below what the sample saw (and it saw at least ten), the estimate is above it.
    fn surely_above(&self, bound: u64) -> bool {
        if self.matched < 10.0 {
            return false;
        }
        let low = self.matched - 2.0 * self.matched.sqrt();
        low / self.sampled * self.table_rows > bound as f64
    }
}

/// Counts the customers matching `condition` in a block sample of about `SAMPLE_ROWS` of
/// the table's `table_rows`. The planner's estimate (`EXPLAIN`) was the first design: it
/// was 12 times too low for a three-letter search at a million customers, and planning
/// the trigram `LIKE` took 38 ms. The sample's seed is fixed, so that every page of one
/// listing (on any replica) shows the same estimate while the table does not change.
async fn sample(
    db: &impl ConnectionTrait,
    condition: Condition,
    table_rows: f64,
) -> DomainResult<Sample> {
    let backend = db.get_database_backend();
    let percent = (SAMPLE_ROWS / table_rows * 100.0).min(100.0);
    // The condition is a column of the sample rather than its WHERE, so that one pass
    // counts both the rows sampled and their matches; the table comes last.
    let counts = Query::select()
        .expr(Func::count(Expr::case(condition, 1)))
        .expr(Expr::cust("COUNT(*)"))
        .from(customer::Entity)
        .to_owned();
    let mut statement = backend.build(&counts);
    let table = " FROM \"customer\"";
    if !statement.sql.ends_with(table) {
        return Err(DomainError::Internal(anyhow::anyhow!(
            "the sample's statement does not end with its table: {}",
            statement.sql
        )));
    }
    statement.sql = format!(
        "{} TABLESAMPLE SYSTEM ({percent}) REPEATABLE (0)",
        statement.sql
    );
    let (matched, sampled): (i64, i64) = db
        .query_one_raw(statement)
        .await?
        .map(|row| Ok::<_, sea_orm::DbErr>((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .transpose()?
        .unwrap_or((0, 0));
    Ok(Sample {
        matched: matched as f64,
        sampled: sampled as f64,
        table_rows,
    })
}

/// One page of customers matching `filter` in `order`, with the total count.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &CustomerFilter,
    order: CustomerOrder,
    page: &PageRequest,
) -> DomainResult<Page<customer::Model>> {
    let mut condition = filter.condition(db.get_database_backend());
    if let Some(membership) = &filter.membership {
        condition = condition.add(super::segments::condition(db, membership).await?);
    }
    if filter.min_p_alive.is_some() || filter.max_p_alive.is_some() {
        let model = super::evaluation_runs::current_churn_model(db).await?;
        let p_alive = || super::segment_sql::p_alive(model.as_ref());
        if let Some(min) = filter.min_p_alive {
            condition = condition.add(p_alive().gte(min));
        }
        if let Some(max) = filter.max_p_alive {
            condition = condition.add(p_alive().lte(max));
        }
    }
    let total = if page.count_total {
        count(db, condition.clone()).await?
    } else {
        0
    };
    let mut query = customer::Entity::find().filter(condition);
    if order.field == CustomerOrderField::PointsBalance {
        query = query.join_rev(
            JoinType::InnerJoin,
            customer_points_rank::Relation::Customer.def(),
        );
    }
    let (sort_column, id_column) = order.columns();
    if let Some(cursor) = &page.after {
        let value = order.cursor_value(cursor)?;
        query = query.filter(after_condition(
            sort_column.clone(),
            id_column.clone(),
            order.descending,
            order.nullable(),
            cursor,
            value,
        ));
    }
    let direction = if order.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    // Customers without a value come last either way. Only a nullable column says so:
    // `NULLS LAST` on a column that has no NULLs still keeps Postgres from walking the
    // index backwards, and every descending page would sort the whole table.
    let query = if order.nullable() {
        query.order_by_with_nulls(
            Expr::col(sort_column),
            direction.clone(),
            NullOrdering::Last,
        )
    } else {
        query.order_by(Expr::col(sort_column), direction.clone())
    };
    let rows = query
        .order_by(Expr::col(id_column), direction)
        .limit(page.first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, page, total))
}

/// Tags of many customers in one query, each customer's in alphabetical order.
pub async fn tags_of(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<String>>> {
    let rows = customer_tag::Entity::find()
        .filter(customer_tag::Column::CustomerId.is_in(ids.iter().copied()))
        .order_by_asc(customer_tag::Column::Tag)
        .all(db)
        .await?;
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in rows {
        tags.entry(row.customer_id).or_default().push(row.tag);
    }
    Ok(tags)
}

/// Replaces a customer's tags.
pub async fn set_tags(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    tags: &[String],
) -> DomainResult<()> {
    customer_tag::Entity::delete_many()
        .filter(customer_tag::Column::CustomerId.eq(customer_id))
        .exec(db)
        .await?;
    if !tags.is_empty() {
        customer_tag::Entity::insert_many(tags.iter().map(|tag| customer_tag::ActiveModel {
            customer_id: Set(customer_id),
            tag: Set(tag.clone()),
        }))
        .exec(db)
        .await?;
    }
    Ok(())
}

/// Adds tags to customers, `(customer, tag)`, in two statements whatever their number:
/// a customer keeps a tag it has, and never gets more than `MAX_TAGS` (a tag that
/// would pass the limit is left out). The callers hold the customers' locks.
pub async fn add_tags(db: &impl ConnectionTrait, tags: &[(Uuid, String)]) -> DomainResult<()> {
    use crate::domain::customer::MAX_TAGS;
    if tags.is_empty() {
        return Ok(());
    }
    let mut owners: Vec<Uuid> = tags.iter().map(|(customer, _)| *customer).collect();
    owners.sort();
    owners.dedup();
    let held = tags_of(db, &owners).await?;
    let mut added: HashMap<Uuid, Vec<&str>> = HashMap::new();
    let mut rows = Vec::new();
    for (customer, tag) in tags {
        let has = held.get(customer).map_or(&[][..], Vec::as_slice);
        let new = added.entry(*customer).or_default();
        if has.contains(tag) || new.contains(&tag.as_str()) || has.len() + new.len() >= MAX_TAGS {
            continue;
        }
        new.push(tag);
        rows.push(vec![(*customer).into(), tag.clone().into()]);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let (relation, values) = super::values::relation(backend, &["uuid", "text"], rows, 1)?;
    let sql = format!(
        "WITH v (customer_id, tag) AS ({relation}) \
         INSERT INTO customer_tag (customer_id, tag) SELECT v.customer_id, v.tag FROM v \
         WHERE true ON CONFLICT DO NOTHING"
    );
    db.execute_raw(super::raw(backend, &sql, values)).await?;
    Ok(())
}

/// The number of customers, erased ones included.
pub async fn count_all(db: &impl ConnectionTrait) -> DomainResult<u64> {
    Ok(customer::Entity::find().count(db).await?)
}

/// The customer, not erased, whose referral code is `code`.
pub async fn by_referral_code(
    db: &impl ConnectionTrait,
    code: &str,
) -> DomainResult<Option<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(customer::Column::ReferralCode.eq(code))
        .filter(customer::Column::ErasedAt.is_null())
        .one(db)
        .await?)
}

/// Records that `referrer_id` referred `referee_id`.
pub async fn set_referred_by(
    db: &impl ConnectionTrait,
    referee_id: Uuid,
    referrer_id: Uuid,
) -> DomainResult<()> {
    customer::Entity::update_many()
        .set(customer::ActiveModel {
            referred_by_id: Set(Some(referrer_id)),
            updated_at: Set(super::now()),
            ..Default::default()
        })
        .filter(customer::Column::Id.eq(referee_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Moves `customer` (locked by the caller) to `tier_id` and holds it there against live
/// upgrades until the next evaluation run; a downgrade mark is cleared.
pub async fn hold_in_tier(
    db: &impl ConnectionTrait,
    customer: &customer::Model,
    tier_id: Uuid,
) -> DomainResult<()> {
    customer::Entity::update_many()
        .set(customer::ActiveModel {
            tier_id: Set(tier_id),
            tier_held: Set(true),
            downgrade_marked_at: Set(None),
            revision: Set(customer.revision + 1),
            updated_at: Set(super::now()),
            ..Default::default()
        })
        .filter(customer::Column::Id.eq(customer.id))
        .exec(db)
        .await?;
    Ok(())
}

/// The customers, not erased, whose birthday is `day`: born on its month and day, and,
/// when its year has no 29 February, those born on one have theirs on 1 March.
pub async fn born_on_day(
    db: &impl ConnectionTrait,
    day: chrono::NaiveDate,
) -> DomainResult<Vec<Uuid>> {
    use chrono::Datelike;
    let mut born = born_on(db, day.month(), day.day()).await?;
    let leap = chrono::NaiveDate::from_ymd_opt(day.year(), 2, 29).is_some();
    if !leap && day.month() == 3 && day.day() == 1 {
        born.extend(born_on(db, 2, 29).await?);
    }
    Ok(born)
}

/// The customers, not erased, born on `month`/`day` (any year).
pub async fn born_on(db: &impl ConnectionTrait, month: u32, day: u32) -> DomainResult<Vec<Uuid>> {
    let backend = db.get_database_backend();
    let (month_of, day_of) = match backend {
        sea_orm::DbBackend::Postgres => (
            "CAST(EXTRACT(MONTH FROM birthday) AS INTEGER)",
            "CAST(EXTRACT(DAY FROM birthday) AS INTEGER)",
        ),
        _ => (
            "CAST(strftime('%m', birthday) AS INTEGER)",
            "CAST(strftime('%d', birthday) AS INTEGER)",
        ),
    };
    let sql = format!(
        "SELECT id FROM customer WHERE birthday IS NOT NULL AND erased_at IS NULL \
         AND merged_into_id IS NULL AND {month_of} = $1 AND {day_of} = $2"
    );
    let rows = db
        .query_all_raw(super::raw(
            backend,
            &sql,
            vec![(month as i32).into(), (day as i32).into()],
        ))
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// The number of customers holding `tier_id`.
pub async fn count_in_tier(db: &impl ConnectionTrait, tier_id: Uuid) -> DomainResult<u64> {
    Ok(customer::Entity::find()
        .filter(customer::Column::TierId.eq(tier_id))
        .filter(customer::Column::MergedIntoId.is_null())
        .count(db)
        .await?)
}

/// Member counts of many tiers in one query.
pub async fn count_by_tier(
    db: &impl ConnectionTrait,
    tier_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = customer::Entity::find()
        .select_only()
        .column(customer::Column::TierId)
        .column_as(customer::Column::Id.count(), "count")
        .filter(customer::Column::TierId.is_in(tier_ids.iter().copied()))
        .filter(customer::Column::MergedIntoId.is_null())
        .group_by(customer::Column::TierId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The metrics columns a live write and an evaluation run both write, in this order,
/// with their Postgres types (for `values::relation`).
pub const METRIC_COLUMNS: [(&str, &str); 10] = [
    ("first_purchase_at", "timestamptz"),
    ("last_purchase_at", "timestamptz"),
    ("lifetime_purchase_count", "integer"),
    ("purchase_count", "integer"),
    ("net_spend_e4", "bigint"),
    ("lifetime_spend_e4", "bigint"),
    ("average_order_value_e4", "bigint"),
    ("engagement_count", "integer"),
    ("latest_nps", "integer"),
    ("outstanding_receivable_e4", "bigint"),
];

/// How a write moves a customer's points: its balance (spendable) and its pending points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointsDeltas {
    pub available: i64,
    pub pending: i64,
}

/// What recording interactions writes on a customer: its metrics, score, stage, tier,
/// downgrade mark and revision, as `customer` holds them, and its balance moved by the
/// delta given with it, for many customers in one `UPDATE … FROM` a batch (`values::relation`): one new
/// row version per customer, where a balance update and a metrics update made two
/// (each rewriting every index of the table). The caller holds their row locks.
pub async fn write_recorded(
    db: &impl ConnectionTrait,
    customers: &[(&customer::Model, PointsDeltas)],
) -> DomainResult<()> {
    const REST: [(&str, &str); 12] = [
        ("metrics_as_of", "timestamptz"),
        ("repeat_purchase_days", "integer"),
        ("first_purchase_day", "integer"),
        ("last_purchase_day", "integer"),
        ("repeat_spend_e4", "bigint"),
        ("score", "double precision"),
        ("lifecycle_stage", "text"),
        ("tier_id", "uuid"),
        ("downgrade_marked_at", "timestamptz"),
        ("revision", "bigint"),
        ("metrics_written_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ];
    let columns: Vec<(&str, &str)> = [
        ("id", "uuid"),
        ("points_delta", "bigint"),
        ("pending_delta", "bigint"),
    ]
    .into_iter()
    .chain(METRIC_COLUMNS)
    .chain(REST)
    .collect();
    if customers.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let types: Vec<&str> = columns.iter().map(|(_, t)| *t).collect();
    let (rows, values) = super::values::relation(
        backend,
        &types,
        customers.iter().map(|(c, delta)| {
            vec![
                c.id.into(),
                delta.available.into(),
                delta.pending.into(),
                c.first_purchase_at.into(),
                c.last_purchase_at.into(),
                c.lifetime_purchase_count.into(),
                c.purchase_count.into(),
                c.net_spend_e4.into(),
                c.lifetime_spend_e4.into(),
                c.average_order_value_e4.into(),
                c.engagement_count.into(),
                c.latest_nps.into(),
                c.outstanding_receivable_e4.into(),
                c.metrics_as_of.into(),
                c.repeat_purchase_days.into(),
                c.first_purchase_day.into(),
                c.last_purchase_day.into(),
                c.repeat_spend_e4.into(),
                c.score.into(),
                c.lifecycle_stage.as_str().to_owned().into(),
                c.tier_id.into(),
                c.downgrade_marked_at.into(),
                c.revision.into(),
                c.metrics_written_at.into(),
                c.updated_at.into(),
            ]
        }),
        1,
    )?;
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let assignments: Vec<String> = names[3..]
        .iter()
        .map(|name| format!("{name} = v.{name}"))
        .collect();
    let sql = format!(
        "WITH v ({names}) AS ({rows})
         UPDATE customer SET points_balance = customer.points_balance + v.points_delta,
            points_pending = customer.points_pending + v.pending_delta,
            {assignments}
         FROM v WHERE customer.id = v.id",
        names = names.join(", "),
        assignments = assignments.join(", "),
    );
    db.execute_raw(super::raw(backend, &sql, values)).await?;
    Ok(())
}

/// The members merged into `survivor` (its tombstones), locked.
pub async fn merged_into(
    db: &impl ConnectionTrait,
    survivor: Uuid,
) -> DomainResult<Vec<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(customer::Column::MergedIntoId.eq(survivor))
        .order_by_asc(customer::Column::Id)
        .lock_exclusive()
        .all(db)
        .await?)
}

/// The ids merged into each of `survivors`, in one statement.
pub async fn merged_ids_of(
    db: &impl ConnectionTrait,
    survivors: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<Uuid>>> {
    let rows: Vec<(Uuid, Option<Uuid>)> = customer::Entity::find()
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::MergedIntoId)
        .filter(customer::Column::MergedIntoId.is_in(survivors.iter().copied()))
        .order_by_asc(customer::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut merged: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (id, survivor) in rows {
        if let Some(survivor) = survivor {
            merged.entry(survivor).or_default().push(id);
        }
    }
    Ok(merged)
}

/// Moves `points` of pending points from one customer to another (a merge).
pub async fn move_pending(
    db: &impl ConnectionTrait,
    from: Uuid,
    to: Uuid,
    points: i64,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let sql = "UPDATE customer SET points_pending = points_pending + \
               CASE WHEN id = $1 THEN -$3 ELSE $3 END WHERE id IN ($1, $2)";
    db.execute_raw(super::raw(
        backend,
        sql,
        vec![from.into(), to.into(), points.into()],
    ))
    .await?;
    Ok(())
}
