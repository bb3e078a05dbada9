//! The points half of an evaluation run: write off expired points and give birthday
//! bonuses, as of the run's `asOf`.
//!
//! Candidates are found with one query each (for expiry, after a full run, only the
//! customers with lots newly due or ledgers changed since: `points::expiry_candidates`);
//! then, 500 customers at a time, their rows are
//! locked (in id order) and their ledgers read in one query, so that a redemption running
//! meanwhile is either fully before or fully after the write-off, and their entries are
//! written in a fixed number of statements (`points::append_to_each`).
//!
//! The expiry's chunks take every n-th candidate (`strided`), not runs of neighbours:
//! customers created one after another share a table page, and a page keeps room for
//! about one new row version (`fillfactor 90`), so a chunk of neighbours made most of its
//! balance updates non-HOT (40 % HOT on a million-customer expiry night), each rewriting
//! every index of the customer table.

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
    // Lots whose window closed are spendable, so they can be written off like any.
    crate::jobs::pending_activation::activate_due(db, Utc::now()).await?;
    let mut candidates = points::expiry_candidates(db.conn(), as_of, since).await?;
    if let Some(only) = only {
        let only: HashSet<&Uuid> = only.iter().collect();
        candidates.retain(|id| only.contains(id));
    }
    let mut expired = 0;
    for chunk in strided(&candidates, CHUNK) {
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
                            campaign_id: None,
                            transfer_id: None,
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

/// `ids` in chunks of at most `size`, the k-th of n chunks holding the k-th, (k+n)-th,
/// (k+2n)-th… id, so that no two ids of a chunk are neighbours (unless there are fewer
/// than two chunks). A sorted `ids` gives sorted chunks.
fn strided(ids: &[Uuid], size: usize) -> Vec<Vec<Uuid>> {
    let chunks = ids.len().div_ceil(size.max(1));
    (0..chunks)
        .map(|k| ids.iter().skip(k).step_by(chunks).copied().collect())
        .collect()
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
                                campaign_id: None,
                                transfer_id: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_chunks_hold_every_id_once_sorted_and_apart() {
        let ids: Vec<Uuid> = (0..1_003u128).map(Uuid::from_u128).collect();
        let chunks = strided(&ids, 100);
        assert_eq!(chunks.len(), 11);
        assert!(chunks.iter().all(|chunk| chunk.len() <= 100));
        assert!(chunks.iter().all(|chunk| chunk.is_sorted()));
        assert!(chunks.iter().all(|chunk| {
            chunk
                .windows(2)
                .all(|pair| pair[1].as_u128() - pair[0].as_u128() == 11)
        }));
        let mut all: Vec<Uuid> = chunks.concat();
        all.sort();
        assert_eq!(all, ids);
        assert_eq!(strided(&ids[..7], 100), vec![ids[..7].to_vec()]);
        assert!(strided(&[], 100).is_empty());
    }
}
