//! Merging a duplicate member into another (`mergeCustomers`).
//!
//! In one transaction, with both members locked in id order: the merged member's points
//! move to the survivor as transfers of each lot (so every expiry date is kept; pending
//! lots move still pending), its interactions, referrals, tags and static segment
//! memberships move too, the survivor's metrics, score and stage are recomputed from the
//! interactions it now holds, it keeps the higher of the two tiers (a `MERGE` tier
//! change records the merge either way), and the merged row becomes a tombstone: reads
//! and writes naming its id or external reference reach the survivor.

use entity::enums::{EventTopic, PointsEntryKind, TierChangeReason};
use entity::{customer, pending_points, points_entry, points_transfer, tier_change};
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use super::Caller;
use super::transfers::{lock_pair, move_lots};
use crate::domain::{DomainError, DomainResult};
use crate::store::idempotency::{self, Claim};
use crate::store::program_snapshot::Program;
use crate::store::{self, Db, customers, merges, now, outbox, pending_points as pending, points};

const OPERATION: &str = "mergeCustomers";

/// Merges `merged_id` into `survivor_id` and returns the survivor. Merging a pair again
/// returns the survivor (nothing moves twice); the same customer twice, an erased one,
/// or a pair where either was already merged elsewhere (a chain that could loop) is
/// refused.
#[tracing::instrument(name = "merge::merge", skip_all)]
pub async fn merge(
    db: &Db,
    caller: Caller<'_>,
    survivor_id: Uuid,
    merged_id: Uuid,
    idempotency_key: Option<String>,
) -> DomainResult<customer::Model> {
    if survivor_id == merged_id {
        return Err(DomainError::bad_input(
            "mergedId",
            "a customer cannot be merged into itself",
        ));
    }
    let key =
        crate::domain::interaction::idempotency_key(idempotency_key.as_deref(), "idempotencyKey")?;
    let fingerprint = idempotency::fingerprint(&[&survivor_id, &merged_id]);
    let key_owner = caller.key_owner.to_owned();
    let author = caller.subject.to_owned();
    let programs = db.programs().clone();
    db.write(move |txn| {
        Box::pin(async move {
            let program = programs.current(txn).await?;
            if let Some(key) = &key
                && let Claim::Seen(previous) =
                    idempotency::claim(txn, &key_owner, key, OPERATION, &fingerprint, survivor_id)
                        .await?
            {
                return idempotency::replay(previous, |id| customers::find(txn, id)).await;
            }
            let locked = customers::lock_in_order(txn, &[survivor_id, merged_id]).await?;
            let find = |id: Uuid| {
                locked
                    .iter()
                    .find(|c| c.id == id)
                    .cloned()
                    .ok_or_else(|| DomainError::not_found(format!("customer {id}")))
            };
            let (survivor, merged) = (find(survivor_id)?, find(merged_id)?);
            if merged.merged_into_id == Some(survivor_id) {
                return Ok(survivor);
            }
            refuse_unmergeable(&survivor, &merged)?;
            let (survivor, merged) = lock_pair(txn, survivor_id, merged_id).await?;
            let merged_at = now();
            move_points(txn, &survivor, &merged, &author).await?;
            merges::move_related(txn, survivor_id, merged_id, merged_at).await?;
            let survivor = recompute(txn, &program, survivor_id, &merged, merged_at).await?;
            let payload = json!({ "survivorId": survivor_id, "mergedId": merged_id });
            outbox::emit_with_payloads(
                txn,
                EventTopic::CustomerMerged,
                vec![
                    (Some(survivor_id), survivor_id, Some(payload.clone())),
                    (Some(merged_id), survivor_id, Some(payload)),
                ],
            )
            .await?;
            Ok(survivor)
        })
    })
    .await
}

fn refuse_unmergeable(survivor: &customer::Model, merged: &customer::Model) -> DomainResult<()> {
    for (customer, field) in [(survivor, "survivorId"), (merged, "mergedId")] {
        if let Some(into) = customer.merged_into_id {
            return Err(DomainError::Conflict(format!(
                "{field}: customer {} was already merged into {into}",
                customer.id
            )));
        }
        if customer.erased_at.is_some() {
            return Err(DomainError::Conflict(format!(
                "{field}: customer {} was erased",
                customer.id
            )));
        }
    }
    Ok(())
}

/// Moves the merged member's spendable points as a transfer of its lots, and each pending
/// lot as a pending transfer that activates on the survivor when it would have.
async fn move_points(
    txn: &impl ConnectionTrait,
    survivor: &customer::Model,
    merged: &customer::Model,
    author: &str,
) -> DomainResult<()> {
    let at = now();
    let balance = merged.points_balance;
    if balance > 0 {
        let transfer = points_transfer::Model {
            id: uuid::Uuid::now_v7(),
            from_customer_id: merged.id,
            to_customer_id: survivor.id,
            points: balance,
            note: Some("merge".into()),
            merge: true,
            created_by: author.to_owned(),
            created_at: at,
        };
        move_lots(txn, &transfer, merged, survivor, Some("merge")).await?;
    } else if balance < 0 {
        // What a refund took beyond the balance is owed by the person, wherever its
        // points now are: the debt moves too.
        move_debt(txn, survivor, merged, author).await?;
    }
    let lots = pending::of_customer(txn, merged.id).await?;
    if lots.is_empty() {
        return Ok(());
    }
    let transfer_id = Uuid::now_v7();
    let entry =
        |customer_id: Uuid, delta: i64, balance_after: i64, kind, lot: &pending_points::Model| {
            points_entry::Model {
                id: Uuid::now_v7(),
                customer_id,
                delta,
                balance_after,
                kind,
                reason: Some("merge".into()),
                expires_at: None,
                interaction_id: None,
                campaign_id: None,
                available_at: Some(lot.available_at),
                transfer_id: Some(transfer_id),
                created_by: author.to_owned(),
                created_at: at,
            }
        };
    // A pending entry leaves the balance as it was: after the moves above, the merged
    // member's is 0 and the survivor's holds both.
    let merged_balance = 0;
    let survivor_balance = survivor.points_balance + balance;
    let mut entries = Vec::new();
    let mut moved = Vec::new();
    let mut total = 0;
    for lot in &lots {
        let credit = entry(
            survivor.id,
            lot.points,
            survivor_balance,
            PointsEntryKind::TransferIn,
            lot,
        );
        entries.push(entry(
            merged.id,
            -lot.points,
            merged_balance,
            PointsEntryKind::TransferOut,
            lot,
        ));
        moved.push(pending_points::Model {
            customer_id: survivor.id,
            entry_id: credit.id,
            ..lot.clone()
        });
        entries.push(credit);
        total += lot.points;
    }
    store::transfers::insert(
        txn,
        &points_transfer::Model {
            id: transfer_id,
            from_customer_id: merged.id,
            to_customer_id: survivor.id,
            points: total,
            note: Some("merge (pending points)".into()),
            merge: true,
            created_by: author.to_owned(),
            created_at: at,
        },
    )
    .await?;
    customers::move_pending(txn, merged.id, survivor.id, total).await?;
    points::insert_entries(txn, &entries).await?;
    pending::save(txn, &moved).await
}

/// Moves a negative balance: the merged member's is cleared, the survivor's lowered.
async fn move_debt(
    txn: &impl ConnectionTrait,
    survivor: &customer::Model,
    merged: &customer::Model,
    author: &str,
) -> DomainResult<()> {
    let debt = -merged.points_balance;
    let at = now();
    let transfer_id = Uuid::now_v7();
    let entry = |customer_id: Uuid, delta: i64, balance_after: i64, kind| points_entry::Model {
        id: Uuid::now_v7(),
        customer_id,
        delta,
        balance_after,
        kind,
        reason: Some("merge (points owed)".into()),
        expires_at: None,
        interaction_id: None,
        campaign_id: None,
        available_at: None,
        transfer_id: Some(transfer_id),
        created_by: author.to_owned(),
        created_at: at,
    };
    store::transfers::insert(
        txn,
        &points_transfer::Model {
            id: transfer_id,
            from_customer_id: merged.id,
            to_customer_id: survivor.id,
            points: -debt,
            note: Some("merge (points owed)".into()),
            merge: true,
            created_by: author.to_owned(),
            created_at: at,
        },
    )
    .await?;
    points::add_to_balances(txn, &[(merged.id, debt), (survivor.id, -debt)]).await?;
    points::insert_entries(
        txn,
        &[
            entry(merged.id, debt, 0, PointsEntryKind::TransferOut),
            entry(
                survivor.id,
                -debt,
                survivor.points_balance - debt,
                PointsEntryKind::TransferIn,
            ),
        ],
    )
    .await
}

/// Recomputes the survivor's metrics, score and stage from the interactions it now
/// holds, gives it the higher of the two tiers (or a higher one its new score reaches at
/// once, as a purchase would), and records a `MERGE` tier change.
async fn recompute(
    txn: &impl ConnectionTrait,
    program: &Program,
    survivor_id: Uuid,
    merged: &customer::Model,
    at: chrono::DateTime<chrono::Utc>,
) -> DomainResult<customer::Model> {
    let mut survivor = customers::find(txn, survivor_id)
        .await?
        .ok_or_else(|| DomainError::not_found("customer"))?;
    let stage_before = survivor.lifecycle_stage;
    let aggregates =
        store::metrics::of_customer(txn, survivor_id, at, program.model.window_days).await?;
    let evaluated = crate::domain::metrics::evaluate(
        aggregates,
        at,
        &program.model,
        &program.settings,
        program.churn.as_ref(),
    );
    super::interactions::write_metrics(&mut survivor, &evaluated, at, at);
    let rank = |id: Uuid| program.ladder.get(id).map_or(i32::MIN, |t| t.rank);
    let from = survivor.tier_id;
    let mut to = if rank(merged.tier_id) > rank(from) {
        merged.tier_id
    } else {
        from
    };
    if let Some(upgrade) = program.ladder.live_upgrade(to, evaluated.score, false) {
        to = upgrade.id;
    }
    survivor.tier_id = to;
    if to != from {
        survivor.downgrade_marked_at = None;
    }
    customers::write_recorded(txn, &[(&survivor, customers::PointsDeltas::default())]).await?;
    store::tier_changes::insert_many(
        txn,
        vec![tier_change::Model {
            id: Uuid::now_v7(),
            customer_id: survivor_id,
            from_tier_id: Some(from),
            to_tier_id: to,
            reason: TierChangeReason::Merge,
            score: evaluated.score,
            note: Some(format!("merged customer {}", merged.id)),
            evaluation_run_id: None,
            changed_at: at,
            breakdown: store::tier_changes::breakdown_json(&crate::domain::scoring::breakdown(
                &program.model,
                &evaluated.indicators,
            )),
        }],
    )
    .await?;
    outbox::emit_lifecycle_changes(
        txn,
        &[(survivor_id, stage_before, survivor.lifecycle_stage)],
        at,
    )
    .await?;
    // The balance moved by the transfers after `survivor` was read.
    customers::find(txn, survivor_id)
        .await?
        .ok_or_else(|| DomainError::not_found("customer"))
}
