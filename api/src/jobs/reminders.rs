//! Events that come from the calendar rather than from a write: `customer.birthday` on
//! the day (UTC), and `points.expiring` once per lot of points, `pointsExpiryReminderDays`
//! before it expires. Every replica runs the job hourly; the slot's lease picks one, and
//! `event_marker` makes each event happen once however often it looks, so a missed hour
//! is made up by the next.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use entity::enums::EventTopic;
use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::schedule::{JobContext, every_slot};
use crate::domain::DomainResult;
use crate::domain::points::open_lots;
use crate::domain::schedule::Schedule;
use crate::store::{Db, customers, markers, outbox, points, program};

/// Customers whose lots are looked at per transaction.
const CHUNK: usize = 500;

/// Runs until the supervisor stops it.
pub async fn remind_forever(db: Db) {
    every_slot(
        db,
        "reminders",
        Schedule::Every(TimeDelta::hours(1)),
        |JobContext { own, .. }| async move {
            let (birthdays, expiring) = send_reminders(&own, Utc::now()).await?;
            if birthdays + expiring > 0 {
                tracing::info!(
                    birthdays,
                    expiring,
                    "announced birthdays and expiring points"
                );
            }
            Ok(())
        },
    )
    .await
}

/// Announces today's birthdays and the lots expiring within the reminder window that
/// were not announced yet; returns how many of each.
pub async fn send_reminders(
    db: &sea_orm::DatabaseConnection,
    now: DateTime<Utc>,
) -> DomainResult<(usize, usize)> {
    let birthdays = birthdays(db, now).await?;
    let settings = program::settings(db).await?;
    let expiring = if settings.points_expiry_reminder_days > 0 {
        let until = now + TimeDelta::days(settings.points_expiry_reminder_days.into());
        expiring_lots(db, now, until).await?
    } else {
        0
    };
    Ok((birthdays, expiring))
}

async fn birthdays(db: &sea_orm::DatabaseConnection, now: DateTime<Utc>) -> DomainResult<usize> {
    let today = now.date_naive();
    let mut born = customers::born_on(db, today.month(), today.day()).await?;
    // Those born on 29 February have theirs on 1 March when the year has no 29th.
    let leap = chrono::NaiveDate::from_ymd_opt(today.year(), 2, 29).is_some();
    if !leap && today.month() == 3 && today.day() == 1 {
        born.extend(customers::born_on(db, 2, 29).await?);
    }
    let year = today.year();
    let mut announced = 0;
    for chunk in born.chunks(CHUNK) {
        let events = chunk.iter().map(|id| {
            let payload = json!({ "date": today.to_string() });
            (format!("birthday:{id}:{year}"), *id, payload)
        });
        announced += announce_once(db, EventTopic::CustomerBirthday, events.collect()).await?;
    }
    Ok(announced)
}

/// Writes the events of `topic`, `(marker key, customer, payload)`, whose keys nobody
/// claimed before, in one transaction with their claims; returns how many it wrote.
async fn announce_once(
    db: &sea_orm::DatabaseConnection,
    topic: EventTopic,
    events: Vec<(String, Uuid, serde_json::Value)>,
) -> DomainResult<usize> {
    let keys: Vec<String> = events.iter().map(|(key, ..)| key.clone()).collect();
    let txn = db.begin().await?;
    let claimed: HashSet<String> = markers::claim(&txn, &keys).await?.into_iter().collect();
    let events: Vec<_> = events
        .into_iter()
        .filter(|(key, ..)| claimed.contains(key))
        .map(|(_, customer, payload)| (Some(customer), customer, Some(payload)))
        .collect();
    let announced = events.len();
    outbox::emit_with_payloads(&txn, topic, events).await?;
    txn.commit().await?;
    Ok(announced)
}

async fn expiring_lots(
    db: &sea_orm::DatabaseConnection,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> DomainResult<usize> {
    let holders = points::customers_with_credits_expiring(db, now, until).await?;
    let mut announced = 0;
    for chunk in holders.chunks(CHUNK) {
        let ledgers = points::ledgers_of(db, chunk).await?;
        // What is left of each lot that expires in the window, per customer and instant.
        let mut lots: Vec<(Uuid, DateTime<Utc>, i64)> = Vec::new();
        for (customer, ledger) in &ledgers {
            let mut left: HashMap<DateTime<Utc>, i64> = HashMap::new();
            for (expires_at, points) in open_lots(ledger) {
                if let Some(at) = expires_at.filter(|at| *at > now && *at <= until) {
                    *left.entry(at).or_default() += points;
                }
            }
            lots.extend(left.into_iter().map(|(at, points)| (*customer, at, points)));
        }
        let events = lots.into_iter().map(|(customer, at, points)| {
            let key = format!("expiring:{customer}:{}", at.timestamp_micros());
            (key, customer, json!({ "points": points, "expiresAt": at }))
        });
        announced += announce_once(db, EventTopic::PointsExpiring, events.collect()).await?;
    }
    Ok(announced)
}
