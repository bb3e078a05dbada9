//! Recording interactions: validate, store, earn points, bring the customer's metrics
//! and score up to date and upgrade its tier, all in the transaction of the mutation.
//!
//! Only the customer's own rows are read (its interactions through the
//! `customer_id, occurred_at` index) — no population scans on the write path. RFM and ABC
//! depend on everyone else and are left to evaluation runs.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::enums::{InteractionKind, PointsEntryKind, TierChangeReason};
use entity::{customer, interaction, tier_change};
use sea_orm::{ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::tiering::Program;
use super::{Caller, referrals};
use crate::domain::interaction::{self as rules, InteractionDraft, RawInteraction};
use crate::domain::metrics;
use crate::domain::{DomainError, DomainResult};
use crate::store::idempotency::{self, Claim};
use crate::store::points::{self, NewEntry};
use crate::store::tier_changes::{self, NewTierChange};
use crate::store::{self, Db, customers, now};

/// The most interactions one `recordInteractions` call may carry.
pub const MAX_BATCH: usize = 1000;

const OPERATION: &str = "recordInteraction";

/// Who an interaction is about.
#[derive(Debug, Clone)]
pub enum CustomerRef {
    Id(Uuid),
    ExternalRef(String),
}

#[derive(Debug, Clone)]
pub struct RecordRequest {
    /// `None` when the caller gave both or neither of `customerId` and
    /// `customerExternalRef` (reported as a field error).
    pub customer: Option<CustomerRef>,
    pub interaction: RawInteraction,
    pub idempotency_key: Option<String>,
}

/// What recording one interaction did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub interaction: interaction::Model,
    pub customer: customer::Model,
    pub points_earned: i64,
    pub tier_change: Option<tier_change::Model>,
    pub duplicate: bool,
}

/// Records one interaction (`recordInteraction`).
pub async fn record(db: &Db, caller: Caller<'_>, request: RecordRequest) -> DomainResult<Recorded> {
    let mut recorded = record_all(db, caller, vec![request], |_| "input".to_owned()).await?;
    recorded
        .pop()
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("no interaction was recorded")))
}

/// Records up to `MAX_BATCH` interactions in one transaction: all or nothing.
pub async fn record_many(
    db: &Db,
    caller: Caller<'_>,
    requests: Vec<RecordRequest>,
) -> DomainResult<Vec<Recorded>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    if requests.len() > MAX_BATCH {
        return Err(DomainError::bad_input(
            "inputs",
            format!("at most {MAX_BATCH} interactions per call"),
        ));
    }
    record_all(db, caller, requests, |i| format!("inputs[{i}]")).await
}

async fn record_all(
    db: &Db,
    caller: Caller<'_>,
    requests: Vec<RecordRequest>,
    field_prefix: impl Fn(usize) -> String + Send + 'static,
) -> DomainResult<Vec<Recorded>> {
    let key_owner = caller.key_owner.to_owned();
    let caller = caller.subject.to_owned();
    db.write(move |txn| {
        Box::pin(async move {
            let program = Program::load(txn).await?;
            let at = now();
            let mut prepared = Vec::with_capacity(requests.len());
            for (i, request) in requests.into_iter().enumerate() {
                let prefix = field_prefix(i);
                let customer_id = resolve(txn, request.customer, &prefix).await?;
                let fingerprint = request_fingerprint(customer_id, &request.interaction);
                let draft = rules::validate(
                    request.interaction,
                    &prefix,
                    rules::Bounds::of(&program.settings),
                    at,
                )?;
                let key = rules::idempotency_key(
                    request.idempotency_key.as_deref(),
                    &format!("{prefix}.idempotencyKey"),
                )?;
                let key = key.map(|key| (key, fingerprint));
                prepared.push((customer_id, draft, key, prefix));
            }
            let mut locked = lock_customers(txn, prepared.iter().map(|p| p.0)).await?;
            let mut recorded = Vec::with_capacity(prepared.len());
            for (customer_id, draft, key, prefix) in prepared {
                let item = record_one(
                    txn,
                    &program,
                    (&caller, &key_owner, &prefix),
                    &mut locked,
                    customer_id,
                    draft,
                    key.as_ref()
                        .map(|(key, fingerprint)| (key.as_str(), fingerprint.as_str())),
                )
                .await?;
                recorded.push(item);
            }
            Ok(recorded)
        })
    })
    .await
}

/// What a recording asks for, as sent: the customer and every field, with `occurredAt`
/// as given (a retry that leaves it out asks for the same as the first call, although
/// "now" has moved on).
fn request_fingerprint(customer_id: Uuid, raw: &RawInteraction) -> String {
    let text = |value: Option<&str>| value.map_or("\u{0}".to_owned(), str::to_owned);
    idempotency::fingerprint(&[
        &customer_id,
        &raw.kind.to_value(),
        &text(raw.occurred_at.map(|t| t.to_rfc3339()).as_deref()),
        &text(raw.amount.map(|a| a.normalize().to_string()).as_deref()),
        &text(raw.currency.as_deref()),
        &text(raw.channel.map(|c| c.to_value()).as_deref()),
        &text(raw.rating.map(|r| r.to_string()).as_deref()),
        &text(raw.note.as_deref()),
        &text(raw.order_ref.as_deref()),
    ])
}

/// The customer an input names: exactly one of `customerId` and `customerExternalRef`.
async fn resolve(
    txn: &impl ConnectionTrait,
    customer: Option<CustomerRef>,
    prefix: &str,
) -> DomainResult<Uuid> {
    match customer {
        None => Err(DomainError::bad_input(
            format!("{prefix}.customerId"),
            "give exactly one of customerId and customerExternalRef",
        )),
        Some(CustomerRef::Id(id)) => Ok(id),
        Some(CustomerRef::ExternalRef(reference)) => {
            customers::find_by_external_ref(txn, &reference)
                .await?
                .map(|c| c.id)
                .ok_or_else(|| {
                    DomainError::NotFound(format!("no customer has externalRef {reference}"))
                })
        }
    }
}

/// Locks every customer involved, and their referrers (a first purchase pays them), in id
/// order, so that two batches touching the same customers queue instead of deadlocking.
async fn lock_customers(
    txn: &impl ConnectionTrait,
    ids: impl Iterator<Item = Uuid>,
) -> DomainResult<HashMap<Uuid, customer::Model>> {
    let mut targets: Vec<Uuid> = ids.collect();
    targets.sort();
    targets.dedup();
    // Locking referrers up front keeps the lock order; a code applied after this read is
    // caught by the settlement, which locks the referrer itself.
    let referrers = customers::find_many(txn, &targets)
        .await?
        .into_iter()
        .filter_map(|c| c.referred_by_id);
    let all: Vec<Uuid> = targets.iter().copied().chain(referrers).collect();
    let rows = customers::lock_in_order(txn, &all).await?;
    let found: HashMap<Uuid, customer::Model> = rows.into_iter().map(|c| (c.id, c)).collect();
    for id in &targets {
        match found.get(id) {
            None => return Err(DomainError::not_found(format!("customer {id}"))),
            Some(c) if c.erased_at.is_some() => {
                return Err(DomainError::Conflict(format!(
                    "customer {id} was erased; nothing more can be recorded for it"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

async fn record_one(
    txn: &impl ConnectionTrait,
    program: &Program,
    (caller, key_owner, prefix): (&str, &str, &str),
    customers: &mut HashMap<Uuid, customer::Model>,
    customer_id: Uuid,
    draft: InteractionDraft,
    key: Option<(&str, &str)>,
) -> DomainResult<Recorded> {
    let id = Uuid::now_v7();
    if let Some((key, fingerprint)) = key
        && let Claim::Seen(previous) =
            idempotency::claim(txn, key_owner, key, OPERATION, fingerprint, id).await?
    {
        return duplicate(txn, customers, previous).await;
    }
    let current = customers
        .get(&customer_id)
        .cloned()
        .ok_or_else(|| DomainError::not_found("customer"))?;
    if let (InteractionKind::Refund, Some(amount_e4), Some(order_ref)) =
        (draft.kind, draft.amount_e4, draft.order_ref.as_deref())
    {
        let order = order_paid(txn, customer_id, order_ref).await?;
        rules::check_refund(amount_e4, order, prefix)?;
    }
    let interaction = store::interactions::insert(txn, id, customer_id, &draft, caller).await?;
    let points_earned = match interaction.kind {
        InteractionKind::Purchase => {
            earn_points(txn, program, &current, &interaction, caller).await?
                + referrals::settle_on_first_purchase(txn, program, customer_id, caller).await?
        }
        InteractionKind::Refund => reverse_points(txn, &interaction, caller).await?,
        _ => 0,
    };

    // Interactions may be dated up to five minutes ahead; score as of the later instant so
    // that the one just recorded counts.
    let as_of = now().max(draft.occurred_at);
    let aggregates =
        store::metrics::of_customer(txn, customer_id, as_of, program.model.window_days).await?;
    let evaluated = metrics::evaluate(
        aggregates,
        as_of,
        &program.model,
        &program.settings,
        program.churn.as_ref(),
    );
    let upgrade = program
        .ladder
        .live_upgrade(current.tier_id, evaluated.score, current.tier_held)
        .copied();

    let a = evaluated.aggregates;
    let mut changes = customer::ActiveModel {
        metrics_as_of: Set(as_of),
        first_purchase_at: Set(a.first_purchase_at),
        last_purchase_at: Set(a.last_purchase_at),
        lifetime_purchase_count: Set(a.lifetime_purchases as i32),
        purchase_count: Set(a.purchases as i32),
        net_spend_e4: Set(a.net_spend_e4),
        lifetime_spend_e4: Set(a.lifetime_spend_e4),
        average_order_value_e4: Set(evaluated.average_order_value_e4),
        engagement_count: Set(a.engagements as i32),
        latest_nps: Set(a.latest_nps),
        outstanding_receivable_e4: Set(a.receivable_e4),
        repeat_purchase_days: Set(a.history.map_or(0, |h| h.repeat_days)),
        first_purchase_day: Set(a.history.map(|h| h.first_day)),
        last_purchase_day: Set(a.history.map(|h| h.last_day)),
        repeat_spend_e4: Set(a.history.map_or(0, |h| h.repeat_spend_e4)),
        score: Set(evaluated.score),
        lifecycle_stage: Set(evaluated.stage),
        revision: Set(current.revision + 1),
        metrics_written_at: Set(Some(now())),
        updated_at: Set(now()),
        ..Default::default()
    };
    if let Some(tier) = upgrade {
        changes.tier_id = Set(tier.id);
        changes.downgrade_marked_at = Set(None);
    }
    let updated = customer::Entity::update_many()
        .set(changes)
        .filter(customer::Column::Id.eq(customer_id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DomainError::not_found("customer"))?;
    customers.insert(customer_id, updated.clone());

    let tier_change = match upgrade {
        Some(tier) => Some(
            tier_changes::insert(
                txn,
                NewTierChange {
                    customer_id,
                    from_tier_id: Some(current.tier_id),
                    to_tier_id: tier.id,
                    reason: TierChangeReason::Interaction,
                    score: evaluated.score,
                    note: None,
                },
            )
            .await?,
        ),
        None => None,
    };
    Ok(Recorded {
        interaction,
        customer: updated,
        points_earned,
        tier_change,
        duplicate: false,
    })
}

/// The answer to a repeated idempotency key: what the first call recorded, unchanged.
async fn duplicate(
    txn: &impl ConnectionTrait,
    customers: &HashMap<Uuid, customer::Model>,
    previous: Option<Uuid>,
) -> DomainResult<Recorded> {
    let interaction = match previous {
        Some(id) => store::interactions::find(txn, id).await?,
        None => None,
    }
    .ok_or_else(|| DomainError::Conflict("this idempotency key is already in use".into()))?;
    let customer = match customers.get(&interaction.customer_id) {
        Some(c) => c.clone(),
        None => customers::find(txn, interaction.customer_id)
            .await?
            .ok_or_else(|| DomainError::not_found("customer"))?,
    };
    Ok(Recorded {
        points_earned: points::caused_by(txn, interaction.id).await?,
        interaction,
        customer,
        tier_change: None,
        duplicate: true,
    })
}

/// A PURCHASE earns `floor(amount × pointsPerCurrencyUnit × multiplier)` at the tier held
/// when it is recorded; its points expire `pointsExpiryDays` after it occurred.
async fn earn_points(
    txn: &impl ConnectionTrait,
    program: &Program,
    customer: &customer::Model,
    interaction: &interaction::Model,
    caller: &str,
) -> DomainResult<i64> {
    let points = crate::domain::points::earned(
        interaction.amount_e4.unwrap_or(0),
        program.settings.points_per_currency_unit_e4,
        program.multiplier_e4(customer.tier_id),
    )?;
    if points <= 0 {
        return Ok(0);
    }
    points::append(
        txn,
        NewEntry {
            id: None,
            customer_id: customer.id,
            delta: points,
            kind: PointsEntryKind::Earn,
            reason: Some("purchase"),
            expires_at: expiry(interaction.occurred_at, program.settings.points_expiry_days),
            interaction_id: Some(interaction.id),
            created_by: caller,
        },
    )
    .await?;
    Ok(points)
}

/// What a refund of `order_ref` is checked against (`rules::check_refund`): the order's
/// purchases and earlier refunds.
async fn order_paid(
    txn: &impl ConnectionTrait,
    customer_id: Uuid,
    order_ref: &str,
) -> DomainResult<rules::OrderPaid> {
    let total =
        |rows: Vec<interaction::Model>| -> i64 { rows.iter().filter_map(|r| r.amount_e4).sum() };
    let of = |kind| store::interactions::of_order(txn, customer_id, kind, order_ref);
    Ok(rules::OrderPaid {
        paid_e4: total(of(InteractionKind::Purchase).await?),
        refunded_e4: total(of(InteractionKind::Refund).await?),
    })
}

/// A REFUND naming a purchase's `orderRef` takes back that purchase's points in
/// proportion to the amount refunded. The proportion is taken over all refunds of the
/// order so far, so partial refunds that add up to the whole purchase take back exactly
/// what it earned, and never more. Returns the (negative) change.
async fn reverse_points(
    txn: &impl ConnectionTrait,
    refund: &interaction::Model,
    caller: &str,
) -> DomainResult<i64> {
    let Some(order_ref) = refund.order_ref.as_deref() else {
        return Ok(0);
    };
    let customer_id = refund.customer_id;
    let purchases =
        store::interactions::of_order(txn, customer_id, InteractionKind::Purchase, order_ref)
            .await?;
    let purchased_e4: i64 = purchases.iter().filter_map(|p| p.amount_e4).sum();
    if purchased_e4 <= 0 {
        return Ok(0);
    }
    let purchase_ids: Vec<Uuid> = purchases.iter().map(|p| p.id).collect();
    let earned = points::sum_for(txn, &purchase_ids, PointsEntryKind::Earn).await?;
    let refunds =
        store::interactions::of_order(txn, customer_id, InteractionKind::Refund, order_ref).await?;
    let refunded_e4: i64 = refunds.iter().filter_map(|r| r.amount_e4).sum();
    let earlier_refunds: Vec<Uuid> = refunds
        .iter()
        .map(|r| r.id)
        .filter(|id| *id != refund.id)
        .collect();
    let reversed_so_far =
        -points::sum_for(txn, &earlier_refunds, PointsEntryKind::Reversal).await?;
    let refunded_share = i128::from(refunded_e4.min(purchased_e4));
    let due = (i128::from(earned) * refunded_share / i128::from(purchased_e4)) as i64;
    let reversal = due - reversed_so_far;
    if reversal <= 0 {
        return Ok(0);
    }
    points::append(
        txn,
        NewEntry {
            id: None,
            customer_id,
            delta: -reversal,
            kind: PointsEntryKind::Reversal,
            reason: Some(&format!("refund of order {order_ref}")),
            expires_at: None,
            interaction_id: Some(refund.id),
            created_by: caller,
        },
    )
    .await?;
    Ok(-reversal)
}

fn expiry(occurred_at: DateTime<Utc>, expiry_days: i32) -> Option<DateTime<Utc>> {
    (expiry_days > 0).then(|| occurred_at + Duration::days(expiry_days.into()))
}
