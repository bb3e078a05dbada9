//! Keyset pagination: opaque, stable cursors and the conditions that continue after them.
//!
//! A cursor names the order it was made for and the last row's sort value and id, so that
//! a page continues exactly after that row whatever was inserted meanwhile, and a cursor
//! from another ordering is refused rather than silently misread.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef};
use sea_orm::{Condition, FromQueryResult, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{DomainError, DomainResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// What a connection field asked for, checked: `first` within 0..=100.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<Cursor>,
    /// Whether the connection's `totalCount` was asked for: counting a million customers
    /// costs more than the page itself, so it is done only then.
    pub count_total: bool,
}

impl PageRequest {
    /// `order` is the ordering's name, which `after` must have been made for.
    pub fn new(first: Option<i32>, after: Option<&str>, order: &str) -> DomainResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => {
                return Err(DomainError::bad_input("first", "must not be negative"));
            }
            Some(n) if n as u64 > MAX_PAGE_SIZE => {
                return Err(DomainError::bad_input(
                    "first",
                    format!("must be at most {MAX_PAGE_SIZE}"),
                ));
            }
            Some(n) => n as u64,
        };
        let after = after.map(|text| Cursor::decode(text, order)).transpose()?;
        Ok(Self {
            first,
            after,
            count_total: true,
        })
    }
}

/// One page of rows, with what the connection needs to describe it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub total_count: u64,
}

impl<T> Page<T> {
    /// Builds a page from up to `first + 1` fetched rows: the extra row only says that
    /// another page follows.
    pub fn from_overfetch(mut items: Vec<T>, request: &PageRequest, total_count: u64) -> Self {
        let has_next_page = items.len() as u64 > request.first;
        items.truncate(request.first as usize);
        Self {
            items,
            has_next_page,
            has_previous_page: request.after.is_some(),
            total_count,
        }
    }
}

/// A sort value as carried in a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "o")]
    pub order: String,
    #[serde(rename = "v")]
    pub value: SortValue,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    pub fn new(order: &str, value: SortValue, id: Uuid) -> Self {
        Self {
            order: order.to_owned(),
            value,
            id,
        }
    }

    pub fn encode(&self) -> String {
        // Serialising plain data to JSON cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str, order: &str) -> DomainResult<Self> {
        let invalid = || DomainError::bad_input("after", "is not a cursor from this list");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.order != order {
            return Err(DomainError::bad_input(
                "after",
                "was made for another ordering of this list",
            ));
        }
        Ok(cursor)
    }
}

/// The condition "comes after `cursor`" for rows ordered by `column` then `id`, both in
/// the same direction, with NULLs last in either direction.
pub fn after_condition(
    column: impl IntoColumnRef + Clone,
    id_column: impl IntoColumnRef + Clone,
    descending: bool,
    nullable: bool,
    cursor: &Cursor,
    value: Option<Value>,
) -> Condition {
    let beyond = |left: Expr, right: Expr| {
        if descending {
            left.lt(right)
        } else {
            left.gt(right)
        }
    };
    let id_beyond = beyond(Expr::col(id_column.clone()), Expr::val(cursor.id));
    match value {
        None => Condition::all()
            .add(Expr::col(column).is_null())
            .add(id_beyond),
        Some(value) => {
            let mut condition = Condition::any()
                .add(beyond(Expr::col(column.clone()), Expr::val(value.clone())))
                .add(
                    Condition::all()
                        .add(Expr::col(column.clone()).eq(value))
                        .add(id_beyond),
                );
            if nullable {
                condition = condition.add(Expr::col(column).is_null());
            }
            condition
        }
    }
}

/// The cursor of a row in a list ordered by a time, then id.
pub fn time_cursor(order: &str, at: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    Cursor::new(order, SortValue::Text(at.to_rfc3339()), id).encode()
}

/// The instant a newest-first cursor points at.
pub fn cursor_instant(cursor: &Cursor) -> DomainResult<chrono::DateTime<chrono::Utc>> {
    let invalid = || DomainError::bad_input("after", "is not a cursor from this list");
    let SortValue::Text(text) = &cursor.value else {
        return Err(invalid());
    };
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid())?
        .with_timezone(&chrono::Utc))
}

/// A page, newest first (by `time`, then `id`), of the rows of `E` that `condition`
/// selects: one customer's history, interactions or ledger.
pub async fn newest_first<E>(
    db: &impl sea_orm::ConnectionTrait,
    condition: Condition,
    time: E::Column,
    id: E::Column,
    page: &PageRequest,
) -> DomainResult<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    by_time::<E>(db, condition, time, id, true, page).await
}

/// A page of the rows of `E` that `condition` selects, by `time` then `id`, newest or
/// oldest first.
pub async fn by_time<E>(
    db: &impl sea_orm::ConnectionTrait,
    condition: Condition,
    time: E::Column,
    id: E::Column,
    descending: bool,
    page: &PageRequest,
) -> DomainResult<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
    let total = if page.count_total {
        E::find().filter(condition.clone()).count(db).await?
    } else {
        0
    };
    let mut query = E::find().filter(condition);
    if let Some(cursor) = &page.after {
        let at = cursor_instant(cursor)?;
        query = query.filter(after_condition(
            time,
            id,
            descending,
            false,
            cursor,
            Some(at.into()),
        ));
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    let rows = query
        .order_by(time, order.clone())
        .order_by(id, order)
        .limit(page.first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, page, total))
}

/// A child list of customers that `first_pages` pages newest first: its table (with a
/// `customer_id` column), its time column, and optionally a column whose value must be
/// one of `any_of`.
pub struct ChildList<'a> {
    pub table: &'a str,
    pub time_column: &'a str,
    pub any_of: Option<(&'a str, Vec<Value>)>,
}

#[derive(FromQueryResult)]
struct ParentCount {
    customer_id: Uuid,
    total: i64,
}

/// The first page (newest first) of a child list for each of many customers, in two
/// statements whatever their number: the pages, and (when `totalCount` is selected) one
/// grouped count for the totals.
///
/// On Postgres each customer's page walks the (customer, time, id) index from its end
/// and stops after the page (`LATERAL … LIMIT`), as PostGraphile compiles it: numbering
/// a customer's whole list with a window function read every entry of a heavy user's
/// ledger for a page of ten. The statement's text is the same for any number of
/// customers (they travel as one parameter, `values::relation`). SQLite, which has no
/// `LATERAL`, numbers each customer's rows with `ROW_NUMBER()`.
///
/// The statements name `E`'s columns rather than `*`: a prepared `SELECT *` is described
/// once, and a column added since (by a migration on another connection, or by a newer
/// replica) changes what it returns under the description: SQLite then reads past the
/// end of a row, Postgres refuses the cached plan.
pub async fn first_pages<E>(
    db: &impl sea_orm::ConnectionTrait,
    list: ChildList<'_>,
    customer_ids: &[Uuid],
    page: &PageRequest,
    parent_of: impl Fn(&E::Model) -> Uuid,
) -> DomainResult<HashMap<Uuid, Page<E::Model>>>
where
    E: sea_orm::EntityTrait,
    E::Model: FromQueryResult,
{
    use sea_orm::{IdenStatic, Iterable};
    let backend = db.get_database_backend();
    let columns: Vec<&str> = E::Column::iter().map(|c| c.as_str()).collect();
    let columns = columns.join(", ");
    let ChildList {
        table,
        time_column,
        any_of,
    } = list;
    let allowed = match any_of {
        Some((column, allowed)) if !allowed.is_empty() => Some((column, allowed)),
        _ => None,
    };
    let page_rows = if backend == sea_orm::DbBackend::Postgres {
        let (parents, mut values) = super::values::relation(
            backend,
            &["uuid"],
            customer_ids.iter().map(|id| vec![(*id).into()]),
            1,
        )?;
        let condition = allowed_condition(&allowed, &mut values);
        values.push((page.first as i64 + 1).into());
        let limit = values.len();
        let sql = format!(
            "WITH parent (id) AS ({parents}) \
             SELECT page.* FROM parent CROSS JOIN LATERAL (SELECT {columns} FROM {table} \
             WHERE customer_id = parent.id{condition} \
             ORDER BY {time_column} DESC, id DESC LIMIT ${limit}) AS page \
             ORDER BY page.customer_id, page.{time_column} DESC, page.id DESC"
        );
        super::raw(backend, &sql, values)
    } else {
        let mut values: Vec<Value> = customer_ids.iter().map(|id| (*id).into()).collect();
        let ids = placeholders(1, customer_ids.len());
        let condition = allowed_condition(&allowed, &mut values);
        values.push((page.first as i64 + 1).into());
        let limit = values.len();
        let sql = format!(
            "SELECT * FROM (SELECT {columns}, ROW_NUMBER() OVER \
             (PARTITION BY customer_id ORDER BY {time_column} DESC, id DESC) AS position \
             FROM {table} WHERE customer_id IN ({ids}){condition}) numbered \
             WHERE position <= ${limit} ORDER BY customer_id, position"
        );
        super::raw(backend, &sql, values)
    };
    let rows = E::Model::find_by_statement(page_rows).all(db).await?;
    let mut values: Vec<Value> = customer_ids.iter().map(|id| (*id).into()).collect();
    let ids = placeholders(1, customer_ids.len());
    let condition = allowed_condition(&allowed, &mut values);
    // The totals only when `totalCount` is selected: a statement of their own.
    let totals = if !page.count_total {
        Vec::new()
    } else {
        ParentCount::find_by_statement(super::raw(
            backend,
            &format!(
                "SELECT customer_id, CAST(COUNT(*) AS BIGINT) AS total FROM {table} \
             WHERE customer_id IN ({ids}){condition} GROUP BY customer_id"
            ),
            values,
        ))
        .all(db)
        .await?
    };

    Ok(group_pages(
        customer_ids,
        rows,
        totals.into_iter().map(|t| (t.customer_id, t.total)),
        page,
        parent_of,
    ))
}

/// ` AND column IN (…)` for a child list limited to some values of a column, with the
/// values appended to `values` (numbered after those already there); empty otherwise.
fn allowed_condition(allowed: &Option<(&str, Vec<Value>)>, values: &mut Vec<Value>) -> String {
    match allowed {
        Some((column, allowed)) => {
            let list = placeholders(values.len() + 1, allowed.len());
            values.extend(allowed.iter().cloned());
            format!(" AND {column} IN ({list})")
        }
        None => String::new(),
    }
}

/// `$from, $from+1, …` for `count` values.
pub fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits rows of many parents into one first page per parent (empty pages included).
fn group_pages<M>(
    parents: &[Uuid],
    rows: Vec<M>,
    totals: impl Iterator<Item = (Uuid, i64)>,
    page: &PageRequest,
    parent_of: impl Fn(&M) -> Uuid,
) -> HashMap<Uuid, Page<M>> {
    let totals: HashMap<Uuid, i64> = totals.collect();
    let mut grouped: HashMap<Uuid, Vec<M>> = parents.iter().map(|id| (*id, Vec::new())).collect();
    for row in rows {
        grouped.entry(parent_of(&row)).or_default().push(row);
    }
    grouped
        .into_iter()
        .map(|(id, items)| {
            let total = u64::try_from(totals.get(&id).copied().unwrap_or(0)).unwrap_or(0);
            (id, Page::from_overfetch(items, page, total))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_check_their_order() {
        let id = Uuid::now_v7();
        let cursor = Cursor::new("NAME_ASC", SortValue::Text("Li Wei".into()), id);
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "NAME_ASC").unwrap(), cursor);
        assert!(Cursor::decode(&text, "SCORE_DESC").is_err());
        assert!(Cursor::decode("not a cursor", "NAME_ASC").is_err());
    }

    #[test]
    fn page_size_is_capped() {
        assert!(PageRequest::new(Some(101), None, "x").is_err());
        assert!(PageRequest::new(Some(-1), None, "x").is_err());
        assert_eq!(PageRequest::new(None, None, "x").unwrap().first, 20);
    }
}
