//! Events that come from the calendar rather than from a write: `customer.birthday` on
//! the day (UTC), and `points.expiring` once per lot of points, `pointsExpiryReminderDays`
//! before it expires; and the campaigns they fire (BIRTHDAY, once a year; POINTS_EXPIRING,
//! once per lot, `withinDays` before it expires). Every replica runs the job hourly; the
//! slot's lease picks one, and `event_marker` (for events) and the firing log (for
//! campaigns) make each happen once however often it looks, so a missed hour is made up
//! by the next.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use entity::campaign;
use entity::enums::{CampaignTriggerKind, EventTopic};
use sea_orm::DatabaseConnection;
use serde_json::json;
use uuid::Uuid;

use super::schedule::{JobContext, every_slot};
use crate::domain::DomainResult;
use crate::domain::campaign::Rules;
use crate::domain::points::open_lots;
use crate::domain::schedule::Schedule;
use crate::service::campaigns::fire::{self, Cause};
use crate::store::{Db, campaigns, customers, markers, outbox, points, program};

/// Customers whose lots are looked at per transaction.
const CHUNK: usize = 500;

/// Runs until the supervisor stops it.
pub async fn remind_forever(db: Db) {
    every_slot(
        db,
        "reminders",
        Schedule::Every(TimeDelta::hours(1)),
        |JobContext { db, own }| async move {
            let (birthdays, expiring) = send_reminders(&db, &own, Utc::now()).await?;
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
/// were not announced yet, and fires the campaigns they trigger; returns how many of
/// each were announced. Reads go through `reader` (the job's own connection), writes
/// through `db`.
pub async fn send_reminders(
    db: &Db,
    reader: &DatabaseConnection,
    now: DateTime<Utc>,
) -> DomainResult<(usize, usize)> {
    let birthdays = birthdays(db, reader, now).await?;
    let settings = program::settings(reader).await?;
    let reminder_days = i64::from(settings.points_expiry_reminder_days);
    let campaigns = campaigns::active(reader, CampaignTriggerKind::PointsExpiring).await?;
    let windows: Vec<(&campaign::Model, i64)> = campaigns
        .iter()
        .filter_map(|c| {
            let rules = Rules::of(c)
                .inspect_err(|e| tracing::error!(%e, "a campaign is skipped"))
                .ok()?;
            Some((c, i64::from(rules.trigger.within_days?)))
        })
        .collect();
    let horizon = windows
        .iter()
        .map(|(_, days)| *days)
        .chain([reminder_days])
        .max()
        .unwrap_or(0);
    let expiring = if horizon > 0 {
        expiring_lots(db, reader, now, reminder_days, &windows, horizon).await?
    } else {
        0
    };
    Ok((birthdays, expiring))
}

async fn birthdays(
    db: &Db,
    reader: &DatabaseConnection,
    now: DateTime<Utc>,
) -> DomainResult<usize> {
    let today = now.date_naive();
    let born = customers::born_on_day(reader, today).await?;
    let year = today.year();
    let mut announced = 0;
    for chunk in born.chunks(CHUNK) {
        let events = chunk.iter().map(|id| {
            let payload = json!({ "date": today.to_string() });
            (format!("birthday:{id}:{year}"), *id, payload)
        });
        announced += announce_once(db, EventTopic::CustomerBirthday, events.collect()).await?;
    }
    for campaign in campaigns::active(reader, CampaignTriggerKind::Birthday).await? {
        let causes = born
            .iter()
            .map(|&customer_id| Cause {
                customer_id,
                cause: format!("birthday:{year}"),
                at: now,
            })
            .collect();
        fire_without_stopping(db, &campaign, causes).await;
    }
    Ok(announced)
}

/// Fires one campaign; a failure is logged and leaves the other campaigns and events to
/// go on (the next hour tries again: the firing log keeps what did fire).
async fn fire_without_stopping(db: &Db, campaign: &campaign::Model, causes: Vec<Cause>) {
    if causes.is_empty() {
        return;
    }
    if let Err(error) = fire::fire_causes(db, campaign.id, causes).await {
        tracing::error!(campaign = %campaign.id, %error, "a campaign failed to fire; the next hour tries again");
    }
}

/// Writes the events of `topic`, `(marker key, customer, payload)`, whose keys nobody
/// claimed before, in one transaction with their claims; returns how many it wrote.
async fn announce_once(
    db: &Db,
    topic: EventTopic,
    events: Vec<(String, Uuid, serde_json::Value)>,
) -> DomainResult<usize> {
    db.write(move |txn| {
        Box::pin(async move {
            let keys: Vec<String> = events.iter().map(|(key, ..)| key.clone()).collect();
            let claimed: HashSet<String> = markers::claim(txn, &keys).await?.into_iter().collect();
            let events: Vec<_> = events
                .into_iter()
                .filter(|(key, ..)| claimed.contains(key))
                .map(|(_, customer, payload)| (Some(customer), customer, Some(payload)))
                .collect();
            let announced = events.len();
            outbox::emit_with_payloads(txn, topic, events).await?;
            Ok(announced)
        })
    })
    .await
}

/// Announces the lots expiring within `reminder_days` (0: none), and fires each
/// POINTS_EXPIRING campaign for the lots expiring within its window, reading the ledgers
/// of those holding a lot that expires within `horizon` days.
async fn expiring_lots(
    db: &Db,
    reader: &DatabaseConnection,
    now: DateTime<Utc>,
    reminder_days: i64,
    windows: &[(&campaign::Model, i64)],
    horizon: i64,
) -> DomainResult<usize> {
    let remind_until = now + TimeDelta::days(reminder_days);
    let until = now + TimeDelta::days(horizon);
    let holders = points::customers_with_credits_expiring(reader, now, until).await?;
    let mut announced = 0;
    let mut causes: Vec<Vec<Cause>> = vec![Vec::new(); windows.len()];
    for chunk in holders.chunks(CHUNK) {
        let ledgers = points::ledgers_of(reader, chunk).await?;
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
        for ((_, days), causes) in windows.iter().zip(causes.iter_mut()) {
            let within = now + TimeDelta::days(*days);
            causes.extend(lots.iter().filter(|(_, at, _)| *at <= within).map(
                |(customer, at, _)| Cause {
                    customer_id: *customer,
                    cause: format!("expiring:{}", at.timestamp_micros()),
                    at: now,
                },
            ));
        }
        let reminded = lots
            .into_iter()
            .filter(|(_, at, _)| reminder_days > 0 && *at <= remind_until);
        let events = reminded.map(|(customer, at, points)| {
            let key = format!("expiring:{customer}:{}", at.timestamp_micros());
            (key, customer, json!({ "points": points, "expiresAt": at }))
        });
        announced += announce_once(db, EventTopic::PointsExpiring, events.collect()).await?;
    }
    for ((campaign, _), causes) in windows.iter().zip(causes) {
        fire_without_stopping(db, campaign, causes).await;
    }
    Ok(announced)
}
