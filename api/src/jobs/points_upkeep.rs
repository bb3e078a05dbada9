//! The points half of an evaluation run: write off expired points and give birthday
//! bonuses, as of the run's `asOf`.
//!
//! Candidates are found with one query each (for expiry, after a full run, only the
//! customers with lots newly due or ledgers changed since: `points::expiry_candidates`);
//! then, 500 customers at a time, their rows are
//! locked (in id order) and their ledgers read in one query, so that a redemption running
//! meanwhile is either fully before or fully after the write-off, and their entries are
//! written in a fixed number of statements (`points::append_to_each`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::enums::PointsEntryKind;
use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::domain::DomainResult;
use crate::domain::points::{birthday_in_window, expired_by};
use crate::store::points::{self, NewEntry};
use crate::store::{Db, customers, evaluation_runs};

const CHUNK: usize = 500;

const RUN: &str = "evaluation run";

/// Writes one EXPIRE entry per customer for the points of lots dated to expire by `as_of`
/// that spending (soonest expiring first) has not used. Returns the points expired.
pub async fn expire_points(
    db: &Db,
    as_of: DateTime<Utc>,
    only: Option<&[Uuid]>,
) -> DomainResult<i64> {
    let since = evaluation_runs::latest_full(db.conn())
        .await?
        .map(|run| points::ExpiredUpTo {
            as_of: run.as_of,
            started_at: run.started_at,
        });
    let mut candidates = points::expiry_candidates(db.conn(), as_of, since).await?;
    if let Some(only) = only {
        let only: HashSet<&Uuid> = only.iter().collect();
        candidates.retain(|id| only.contains(id));
    }
    let mut expired = 0;
    for chunk in candidates.chunks(CHUNK) {
        let chunk = chunk.to_vec();
        expired += db
            .write(move |txn| {
                Box::pin(async move {
                    let balances = customers::lock_balances_in_order(txn, &chunk).await?;
                    let ledgers = points::ledgers_of(txn, &chunk).await?;
                    let entries: Vec<NewEntry> = ledgers
                        .into_iter()
                        .map(|(customer_id, ledger)| (customer_id, expired_by(&ledger, as_of)))
                        .filter(|(_, points)| *points > 0)
                        .map(|(customer_id, points)| NewEntry {
                            id: None,
                            customer_id,
                            delta: -points,
                            kind: PointsEntryKind::Expire,
                            reason: Some("points expired"),
                            expires_at: None,
                            interaction_id: None,
                            created_by: RUN,
                        })
                        .collect();
                    points::append_to_each(txn, &balances, &entries).await?;
                    Ok(entries.iter().map(|e| -e.delta).sum::<i64>())
                })
            })
            .await?;
    }
    Ok(expired)
}

/// Gives `bonus` to every customer whose birthday falls in the 30 days up to and including
/// `as_of`, once per customer and calendar year. Returns how many got it.
pub async fn birthday_bonuses(
    db: &Db,
    as_of: DateTime<Utc>,
    only: Option<&[Uuid]>,
    bonus: i64,
) -> DomainResult<u64> {
    if bonus <= 0 {
        return Ok(0);
    }
    let only: Option<HashSet<&Uuid>> = only.map(|ids| ids.iter().collect());
    let mut by_year: HashMap<i32, Vec<Uuid>> = HashMap::new();
    let mut birthdays = customers::birthdays(db.conn()).await?;
    while let Some((id, birthday)) = birthdays.try_next().await? {
        if only.as_ref().is_some_and(|only| !only.contains(&id)) {
            continue;
        }
        if let Some(year) = birthday_in_window(birthday, as_of) {
            by_year.entry(year).or_default().push(id);
        }
    }
    let mut given = 0;
    for (year, ids) in by_year {
        for chunk in ids.chunks(CHUNK) {
            let chunk = chunk.to_vec();
            given += db
                .write(move |txn| {
                    Box::pin(async move {
                        let balances = customers::lock_balances_in_order(txn, &chunk).await?;
                        // The reason names the year: it is what "once a year" is checked by.
                        let reason = format!("birthday {year}");
                        let already: HashSet<Uuid> = points::having_entry(
                            txn,
                            &chunk,
                            PointsEntryKind::BirthdayBonus,
                            &reason,
                        )
                        .await?
                        .into_iter()
                        .collect();
                        let entries: Vec<NewEntry> = chunk
                            .iter()
                            .filter(|id| !already.contains(id))
                            .map(|&customer_id| NewEntry {
                                id: None,
                                customer_id,
                                delta: bonus,
                                kind: PointsEntryKind::BirthdayBonus,
                                reason: Some(&reason),
                                expires_at: None,
                                interaction_id: None,
                                created_by: RUN,
                            })
                            .collect();
                        points::append_to_each(txn, &balances, &entries).await?;
                        Ok(entries.len() as u64)
                    })
                })
                .await?;
        }
    }
    Ok(given)
}
