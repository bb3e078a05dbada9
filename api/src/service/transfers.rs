//! Points moving between members: `transferPoints`, and the lots a merge moves.
//!
//! Transferred points keep their expiry dates: the sender's open lots go soonest-expiring
//! first (the order every spend takes), and the recipient gets one `TRANSFER_IN` per
//! expiry date. Both customers are locked in id order, so transfers in both directions
//! between two members queue instead of deadlocking, and the balance check under the
//! locks never lets one overdraw.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use entity::enums::PointsEntryKind;
use entity::{customer, points_entry, points_transfer};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::points::{MAX_POINTS, open_lots};
use crate::domain::{DomainError, DomainResult};
use crate::service::Caller;
use crate::store::idempotency::{self, Claim};
use crate::store::{Db, customers, now, pending_points, points, transfers};

const OPERATION: &str = "transferPoints";

/// Who receives a transfer.
#[derive(Debug, Clone)]
pub enum Recipient {
    Id(Uuid),
    ReferralCode(String),
}

#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub from: Uuid,
    pub to: Recipient,
    pub points: i64,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Moves `points` of the sender's spendable points to the recipient. Refused when the
/// program has transfers off (`FORBIDDEN`), for the sender itself, beyond the monthly
/// limit or the balance (`INSUFFICIENT_POINTS`). A repeated idempotency key returns the
/// first transfer.
#[tracing::instrument(name = "transfers::transfer", skip_all)]
pub async fn transfer(
    db: &Db,
    caller: Caller<'_>,
    request: TransferRequest,
) -> DomainResult<points_transfer::Model> {
    let points = request.points;
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(DomainError::bad_input(
            "input.points",
            format!("must be between 1 and {MAX_POINTS}"),
        ));
    }
    let note = crate::domain::customer::optional_text(request.note.as_deref(), "input.note", 500)?;
    let key = crate::domain::interaction::idempotency_key(
        request.idempotency_key.as_deref(),
        "input.idempotencyKey",
    )?;
    if let Recipient::ReferralCode(code) = &request.to
        && code.chars().count() > 64
    {
        return Err(DomainError::bad_input(
            "input.toReferralCode",
            "no customer has this referral code",
        ));
    }
    let recipient_text = match &request.to {
        Recipient::Id(id) => format!("id:{id}"),
        Recipient::ReferralCode(code) => format!("code:{code}"),
    };
    let fingerprint = idempotency::fingerprint(&[
        &request.from,
        &recipient_text,
        &points,
        &note.clone().unwrap_or_default(),
    ]);
    let key_owner = caller.key_owner.to_owned();
    let author = caller.subject.to_owned();
    let programs = db.programs().clone();
    db.write(move |txn| {
        Box::pin(async move {
            let program = programs.current(txn).await?;
            let settings = &program.settings;
            if !settings.transfers_enabled {
                return Err(DomainError::Forbidden(
                    "points transfers are not enabled in this program".into(),
                ));
            }
            let id = Uuid::now_v7();
            if let Some(key) = &key
                && let Claim::Seen(previous) =
                    idempotency::claim(txn, &key_owner, key, OPERATION, &fingerprint, id).await?
            {
                return idempotency::replay(previous, |id| transfers::find(txn, id)).await;
            }
            let from = survivor_id(txn, request.from).await?;
            let to = match &request.to {
                Recipient::Id(id) => survivor_id(txn, *id).await?,
                Recipient::ReferralCode(code) => {
                    let found = customers::by_referral_code(txn, code)
                        .await?
                        .ok_or_else(|| {
                            DomainError::bad_input(
                                "input.toReferralCode",
                                "no customer has this referral code",
                            )
                        })?;
                    found.merged_into_id.unwrap_or(found.id)
                }
            };
            if from == to {
                return Err(DomainError::bad_input(
                    "input.toCustomerId",
                    "a member cannot transfer points to itself",
                ));
            }
            let (sender, recipient) = lock_pair(txn, from, to).await?;
            if let Some(limit) = settings.max_transfer_per_month {
                let month = month_start(settings.zone(), now());
                let sent = transfers::sent_since(txn, from, month).await?;
                if sent + points > limit {
                    return Err(DomainError::bad_input(
                        "input.points",
                        format!(
                            "would exceed the {limit} points a member may transfer in a month \
                             ({} left this month)",
                            (limit - sent).max(0)
                        ),
                    ));
                }
            }
            if sender.points_balance < points {
                return Err(DomainError::InsufficientPoints {
                    balance: Some(sender.points_balance),
                    needed: points,
                });
            }
            let transfer = points_transfer::Model {
                id,
                from_customer_id: from,
                to_customer_id: to,
                points,
                note: note.clone(),
                merge: false,
                created_by: author.clone(),
                created_at: now(),
            };
            move_lots(txn, &transfer, &sender, &recipient, note.as_deref()).await?;
            Ok(transfer)
        })
    })
    .await
}

/// The id writes naming `id` go to: its survivor when it was merged; `NOT_FOUND` for an
/// unknown customer.
async fn survivor_id(txn: &impl ConnectionTrait, id: Uuid) -> DomainResult<Uuid> {
    let customer = customers::find(txn, id)
        .await?
        .ok_or_else(|| DomainError::not_found("customer"))?;
    Ok(customer.merged_into_id.unwrap_or(customer.id))
}

/// Locks both customers in id order, with their due pending points activated; erased
/// ones are `NOT_FOUND`.
pub(crate) async fn lock_pair(
    txn: &impl ConnectionTrait,
    a: Uuid,
    b: Uuid,
) -> DomainResult<(customer::Model, customer::Model)> {
    let mut locked: HashMap<Uuid, customer::Model> = customers::lock_in_order(txn, &[a, b])
        .await?
        .into_iter()
        .filter(|c| c.erased_at.is_none())
        .map(|c| (c.id, c))
        .collect();
    pending_points::activate_held(txn, locked.values_mut(), now()).await?;
    let first = locked
        .remove(&a)
        .ok_or_else(|| DomainError::not_found("customer"))?;
    let second = locked
        .remove(&b)
        .ok_or_else(|| DomainError::not_found("customer"))?;
    Ok((first, second))
}

/// The first instant of the calendar month `at` falls in, in `zone`.
fn month_start(zone: chrono_tz::Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    let local = at.with_timezone(&zone);
    zone.with_ymd_and_hms(local.year(), local.month(), 1, 0, 0, 0)
        .earliest()
        .map_or(at, |start| start.with_timezone(&Utc))
}

/// Writes a transfer of the sender's spendable points: the transfer, one `TRANSFER_OUT`
/// on the sender and one `TRANSFER_IN` per expiry date on the recipient, taking the
/// sender's lots soonest-expiring first (never-expiring last). The caller holds both
/// customers' locks, with their due pending points activated.
pub(crate) async fn move_lots(
    txn: &impl ConnectionTrait,
    transfer: &points_transfer::Model,
    sender: &customer::Model,
    recipient: &customer::Model,
    note: Option<&str>,
) -> DomainResult<()> {
    let ledger = points::ledgers_of(txn, &[sender.id])
        .await?
        .remove(&sender.id)
        .unwrap_or_default();
    let mut lots = open_lots(&ledger);
    lots.sort_by_key(|(expires_at, _)| (expires_at.is_none(), *expires_at));
    let mut by_expiry: BTreeMap<(bool, Option<DateTime<Utc>>), i64> = BTreeMap::new();
    let mut owed = transfer.points;
    for (expires_at, left) in lots {
        if owed == 0 {
            break;
        }
        let taken = left.min(owed);
        owed -= taken;
        *by_expiry
            .entry((expires_at.is_none(), expires_at))
            .or_default() += taken;
    }
    // Lots and balance agree (the balance is the open lots less any debt), so this is
    // only reached if they did not: the rest never expires rather than being refused.
    if owed > 0 {
        *by_expiry.entry((true, None)).or_default() += owed;
    }
    let at = transfer.created_at;
    let reason = note.map(str::to_owned).or_else(|| {
        Some(if transfer.merge {
            "merge".to_owned()
        } else {
            "transfer".to_owned()
        })
    });
    let entry =
        |customer_id: Uuid, delta: i64, balance_after: i64, kind, expires_at| points_entry::Model {
            id: Uuid::now_v7(),
            customer_id,
            delta,
            balance_after,
            kind,
            reason: reason.clone(),
            expires_at,
            interaction_id: None,
            campaign_id: None,
            available_at: None,
            transfer_id: Some(transfer.id),
            created_by: transfer.created_by.clone(),
            created_at: at,
        };
    let mut entries = vec![entry(
        sender.id,
        -transfer.points,
        sender.points_balance - transfer.points,
        PointsEntryKind::TransferOut,
        None,
    )];
    let mut balance = recipient.points_balance;
    for ((_, expires_at), points) in by_expiry {
        balance += points;
        entries.push(entry(
            recipient.id,
            points,
            balance,
            PointsEntryKind::TransferIn,
            expires_at,
        ));
    }
    transfers::insert(txn, transfer).await?;
    points::add_to_balances(
        txn,
        &[
            (sender.id, -transfer.points),
            (recipient.id, transfer.points),
        ],
    )
    .await?;
    points::insert_entries(txn, &entries).await
}
