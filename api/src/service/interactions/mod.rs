//! Recording interactions: validate, store, earn points, bring the customer's metrics
//! and score up to date and upgrade its tier, all in the transaction of the mutation.
//!
//! A batch is written set-based: everything the rules read is read once for the whole
//! batch (`read_state`, `sums_at_each`), the rules run in memory in the batch's order
//! (`apply`), and the result is written in a fixed number of statements (`write`),
//! whatever the batch's size. `recordInteraction` is a batch of one. Only the customers'
//! own rows are read (their interactions through the `customer_id, occurred_at` index):
//! no population scans on the write path. RFM and ABC depend on everyone else and are
//! left to evaluation runs.

mod apply;

pub(crate) use apply::write_metrics;

use std::collections::{HashMap, HashSet};

use entity::enums::{InteractionKind, LifecycleStage, ReferralStatus};
use entity::{customer, interaction, tier_change};
use sea_orm::{ActiveEnum, ConnectionTrait};
use uuid::Uuid;

use self::apply::Admission;
use super::campaigns::fire::{self, ForInteractions};
use super::{Caller, referrals};
use crate::domain::interaction::{self as rules, InteractionDraft, RawInteraction};
use crate::domain::{DomainError, DomainResult};
use crate::store::idempotency::{self, Claim, KeyClaim};
use crate::store::program_snapshot::Program;
use crate::store::{self, Db, customers, now, points, tier_changes};

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
#[tracing::instrument(name = "interactions::record", skip_all)]
pub async fn record(db: &Db, caller: Caller<'_>, request: RecordRequest) -> DomainResult<Recorded> {
    let mut recorded = record_all(db, caller, vec![request], |_| "input".to_owned()).await?;
    recorded
        .pop()
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("no interaction was recorded")))
}

/// Records up to `MAX_BATCH` interactions in one transaction: all or nothing.
#[tracing::instrument(name = "interactions::record_many", skip_all)]
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
    field_prefix: impl Fn(usize) -> String,
) -> DomainResult<Vec<Recorded>> {
    let key_owner = caller.key_owner.to_owned();
    let caller = caller.subject.to_owned();
    let prefixes: Vec<String> = (0..requests.len()).map(field_prefix).collect();
    let programs = db.programs().clone();
    db.write(move |txn| {
        Box::pin(async move {
            let program = programs.current(txn).await?;
            let mut prepared = prepare(txn, &program, requests, prefixes, now()).await?;
            let (mut locked, survivors) =
                lock_customers(txn, prepared.iter().map(|p| p.customer_id)).await?;
            // An input naming a merged member is recorded for its survivor.
            for p in &mut prepared {
                if let Some(survivor) = survivors.get(&p.customer_id) {
                    p.customer_id = *survivor;
                }
            }
            // Pending points whose window closed become spendable before anything
            // reads the balances (a refund takes them from the balance now).
            store::pending_points::activate_held(txn, locked.values_mut(), now()).await?;
            let mut state = apply::State {
                customers: locked,
                ..Default::default()
            };
            let admissions = admit(txn, &key_owner, &prepared).await?;
            let buyers: Vec<Uuid> = prepared
                .iter()
                .zip(&admissions)
                .filter(|(p, a)| **a == Admission::New && p.draft.kind == InteractionKind::Purchase)
                .map(|(p, _)| p.customer_id)
                .collect();
            lock_referrers(txn, &buyers, &mut state).await?;
            // The batch's clock, read once every lock is held: entries written after a
            // wait are dated after the ones the wait was for, so the ledger's order is
            // the order its balances chain in.
            let at = now();
            let items: Vec<apply::Item> = prepared
                .into_iter()
                .zip(admissions)
                .map(|(p, admission)| apply::Item {
                    interaction: p.interaction(&caller, at),
                    prefix: p.prefix,
                    admission,
                    as_of: at.max(p.draft.occurred_at),
                })
                .collect();
            read_state(txn, &items, &mut state, at).await?;
            let fresh: Vec<interaction::Model> = items
                .iter()
                .filter(|item| item.admission == Admission::New)
                .map(|item| item.interaction.clone())
                .collect();
            state.campaigns = ForInteractions::load(txn, &program, &fresh).await?;
            let stages_before: HashMap<Uuid, LifecycleStage> = state
                .customers
                .values()
                .map(|c| (c.id, c.lifecycle_stage))
                .collect();
            state.aggregates = sums_at_each(txn, &program, &items).await?;
            store::interactions::insert_many(txn, &fresh).await?;
            let outcome = apply::apply(&program, items, state, &caller, at)?;
            write(txn, &program, &outcome, at).await?;
            let moves: Vec<_> = outcome
                .customers
                .iter()
                .filter_map(|c| Some((c.id, *stages_before.get(&c.id)?, c.lifecycle_stage)))
                .collect();
            store::outbox::emit_lifecycle_changes(txn, &moves, at).await?;
            let mut recorded = outcome.recorded;
            if let Some(first) = recorded.iter().find(|r| !r.duplicate) {
                let customers: Vec<Uuid> = outcome.customers.iter().map(|c| c.id).collect();
                let cause = format!("entered:{}", first.interaction.id);
                let given = fire::live_segment_entries(txn, &program, &customers, &cause).await?;
                answer_entries(&mut recorded, &given);
            }
            Ok(recorded)
        })
    })
    .await
}

/// Puts the points a recording's segment entries gave in its answer: on the customer's
/// last new interaction (after which it was in the segment), points and balance.
fn answer_entries(recorded: &mut [Recorded], given: &HashMap<Uuid, i64>) {
    for (customer, points) in given {
        let last = recorded
            .iter_mut()
            .rfind(|r| !r.duplicate && r.customer.id == *customer);
        if let Some(last) = last {
            last.points_earned += points;
            last.customer.points_balance += points;
        }
    }
}

/// An input, validated and resolved to its customer.
struct Prepared {
    prefix: String,
    customer_id: Uuid,
    draft: InteractionDraft,
    /// The idempotency key and the request's fingerprint.
    key: Option<(String, String)>,
    id: Uuid,
}

impl Prepared {
    fn interaction(&self, caller: &str, at: chrono::DateTime<chrono::Utc>) -> interaction::Model {
        let draft = &self.draft;
        interaction::Model {
            id: self.id,
            customer_id: self.customer_id,
            kind: draft.kind,
            occurred_at: draft.occurred_at,
            amount_e4: draft.amount_e4,
            currency: draft.currency.clone(),
            channel: draft.channel,
            rating: draft.rating,
            note: draft.note.clone(),
            order_ref: draft.order_ref.clone(),
            recorded_by: caller.to_owned(),
            recorded_at: at,
        }
    }
}

/// Validates every input in order, the first fault failing the batch, with the
/// customers named by `customerExternalRef` looked up in one statement.
async fn prepare(
    txn: &impl ConnectionTrait,
    program: &Program,
    requests: Vec<RecordRequest>,
    prefixes: Vec<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> DomainResult<Vec<Prepared>> {
    let references: Vec<String> = requests
        .iter()
        .filter_map(|r| match &r.customer {
            Some(CustomerRef::ExternalRef(reference)) => Some(reference.clone()),
            _ => None,
        })
        .collect();
    let by_reference = customers::ids_by_external_ref(txn, &references).await?;
    let mut prepared = Vec::with_capacity(requests.len());
    for (request, prefix) in requests.into_iter().zip(prefixes) {
        let customer_id = match request.customer {
            None => {
                return Err(DomainError::bad_input(
                    format!("{prefix}.customerId"),
                    "give exactly one of customerId and customerExternalRef",
                ));
            }
            Some(CustomerRef::Id(id)) => id,
            Some(CustomerRef::ExternalRef(reference)) => {
                *by_reference.get(&reference).ok_or_else(|| {
                    DomainError::NotFound(format!("no customer has externalRef {reference}"))
                })?
            }
        };
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
        prepared.push(Prepared {
            prefix,
            customer_id,
            draft,
            key: key.map(|key| (key, fingerprint)),
            id: Uuid::now_v7(),
        });
    }
    Ok(prepared)
}

/// Claims the inputs' idempotency keys: what each key lets its input do.
async fn admit(
    txn: &impl ConnectionTrait,
    key_owner: &str,
    prepared: &[Prepared],
) -> DomainResult<Vec<Admission>> {
    let claims: Vec<KeyClaim<'_>> = prepared
        .iter()
        .filter_map(|p| {
            p.key.as_ref().map(|(key, fingerprint)| KeyClaim {
                key,
                fingerprint,
                result_id: p.id,
            })
        })
        .collect();
    let mut outcomes = idempotency::claim_many(txn, key_owner, OPERATION, &claims)
        .await?
        .into_iter();
    Ok(prepared
        .iter()
        .map(|p| match p.key {
            None => Admission::New,
            Some(_) => match outcomes.next().flatten() {
                Some(Claim::Fresh) => Admission::New,
                Some(Claim::Seen(previous)) => Admission::Replay(previous),
                None => Admission::Reused,
            },
        })
        .collect())
}

/// Reads the pending referrals the batch's purchases may settle, and locks their
/// referrers not locked yet: a code applied after the customers were read names a
/// referrer `lock_customers` did not see. Settlements for one referrer queue on its row,
/// so that the yearly count is exact.
async fn lock_referrers(
    txn: &impl ConnectionTrait,
    buyers: &[Uuid],
    state: &mut apply::State,
) -> DomainResult<()> {
    state.pending_referrals = store::referrals::pending_of(txn, buyers).await?;
    let unlocked: Vec<Uuid> = state
        .pending_referrals
        .values()
        .map(|r| r.referrer_id)
        .filter(|id| !state.customers.contains_key(id))
        .collect();
    for customer in customers::lock_in_order(txn, &unlocked).await? {
        state.customers.insert(customer.id, customer);
    }
    Ok(())
}

/// Reads what the rules need besides the customers and referrals: the referrers' count
/// of rewarded referrals this year, the orders the batch's refunds name, and what
/// replayed keys produced. Read before the batch's interactions are stored, so that
/// orders hold only earlier ones.
async fn read_state(
    txn: &impl ConnectionTrait,
    items: &[apply::Item],
    state: &mut apply::State,
    at: chrono::DateTime<chrono::Utc>,
) -> DomainResult<()> {
    let new = || items.iter().filter(|i| i.admission == Admission::New);
    let referrers: Vec<Uuid> = state
        .pending_referrals
        .values()
        .map(|r| r.referrer_id)
        .collect();
    let (year_start, year_end) = referrals::calendar_year(at);
    state.rewarded_this_year =
        store::referrals::rewarded_counts(txn, &referrers, year_start, year_end).await?;
    let orders: Vec<(Uuid, String)> = new()
        .filter(|i| i.interaction.kind == InteractionKind::Refund)
        .filter_map(|i| {
            let order_ref = i.interaction.order_ref.clone()?;
            Some((i.interaction.customer_id, order_ref))
        })
        .collect();
    state.orders = store::interactions::order_histories(txn, &orders).await?;
    let own: HashSet<Uuid> = new().map(|i| i.interaction.id).collect();
    let replayed: Vec<Uuid> = items
        .iter()
        .filter_map(|i| match i.admission {
            Admission::Replay(Some(id)) if !own.contains(&id) => Some(id),
            _ => None,
        })
        .collect();
    let mut earlier = store::interactions::find_many(txn, &replayed).await?;
    let mut caused: HashMap<Uuid, i64> = HashMap::new();
    for (id, _, points) in points::sums_by_interaction(txn, &replayed).await? {
        *caused.entry(id).or_default() += points;
    }
    state.replays = earlier
        .drain()
        .map(|(id, interaction)| (id, (interaction, caused.get(&id).copied().unwrap_or(0))))
        .collect();
    Ok(())
}

/// Each new input's customer sums as of its instant, over its customer's interactions
/// up to and including it, in one statement.
async fn sums_at_each(
    txn: &impl ConnectionTrait,
    program: &Program,
    items: &[apply::Item],
) -> DomainResult<HashMap<i64, crate::domain::metrics::Aggregates>> {
    let points: Vec<store::metrics::Point<'_>> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.admission == Admission::New)
        .map(|(seq, item)| store::metrics::Point {
            seq: seq as i64,
            as_of: item.as_of,
            interaction: &item.interaction,
        })
        .collect();
    store::metrics::at_points(txn, &points, program.model.window_days).await
}

/// Writes what the rules decided, in a fixed number of statements: the customers'
/// metrics and balances, the balances of referrers paid without an interaction of their
/// own, entries and their events, tier changes and their events, and the settled
/// referrals.
async fn write(
    txn: &impl ConnectionTrait,
    program: &Program,
    outcome: &apply::Outcome,
    at: chrono::DateTime<chrono::Utc>,
) -> DomainResult<()> {
    // An entry written while its points are pending (`available_at`) moves pending
    // points, not the balance.
    let mut deltas: HashMap<Uuid, customers::PointsDeltas> = HashMap::new();
    for entry in &outcome.entries {
        let delta = deltas.entry(entry.customer_id).or_default();
        match entry.available_at {
            Some(_) => delta.pending += entry.delta,
            None => delta.available += entry.delta,
        }
    }
    let recorded: Vec<(&customer::Model, customers::PointsDeltas)> = outcome
        .customers
        .iter()
        .map(|c| (c, deltas.remove(&c.id).unwrap_or_default()))
        .collect();
    customers::write_recorded(txn, &recorded).await?;
    // Referrers paid a bonus without an interaction of their own: never pending.
    let others: Vec<(Uuid, i64)> = deltas
        .into_iter()
        .map(|(id, d)| (id, d.available))
        .collect();
    points::add_to_balances(txn, &others).await?;
    points::insert_entries(txn, &outcome.entries).await?;
    store::pending_points::save(txn, &outcome.pending_lots).await?;
    tier_changes::insert_many(txn, outcome.tier_changes.clone()).await?;
    let firings: Vec<_> = outcome
        .firings
        .iter()
        .map(|d| (outcome.campaigns.rules(d.campaign), d.firing.clone()))
        .collect();
    fire::write_firings(txn, &firings, outcome.campaigns.book()).await?;
    let settings = &program.settings;
    store::referrals::settle_many(
        txn,
        &outcome.rewarded_referrals,
        ReferralStatus::Rewarded,
        settings.referrer_bonus,
        settings.referee_bonus,
        at,
    )
    .await?;
    store::referrals::settle_many(
        txn,
        &outcome.rejected_referrals,
        ReferralStatus::Rejected,
        0,
        0,
        at,
    )
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

/// Locks every customer involved, and their referrers (a first purchase pays them), in id
/// order, so that two batches touching the same customers queue instead of deadlocking.
///
/// A merged member named by an input stands for its survivor, which is locked instead;
/// returns the locked customers and, for each merged member named, its survivor.
async fn lock_customers(
    txn: &impl ConnectionTrait,
    ids: impl Iterator<Item = Uuid>,
) -> DomainResult<(HashMap<Uuid, customer::Model>, HashMap<Uuid, Uuid>)> {
    let mut named: Vec<Uuid> = ids.collect();
    named.sort();
    named.dedup();
    let mut read = customers::find_many(txn, &named).await?;
    let mut survivors: HashMap<Uuid, Uuid> = read
        .iter()
        .filter_map(|c| Some((c.id, c.merged_into_id?)))
        .collect();
    let mut targets: Vec<Uuid> = named
        .iter()
        .map(|id| survivors.get(id).copied().unwrap_or(*id))
        .collect();
    targets.sort();
    targets.dedup();
    if !survivors.is_empty() {
        read = customers::find_many(txn, &targets).await?;
    }
    // Locking referrers up front keeps the lock order; a code applied after this read is
    // caught by `lock_referrers`, which locks the referrer it names.
    let referrers = read.into_iter().filter_map(|c| c.referred_by_id);
    let all: Vec<Uuid> = targets.iter().copied().chain(referrers).collect();
    let rows = customers::lock_in_order(txn, &all).await?;
    let mut found: HashMap<Uuid, customer::Model> = rows.into_iter().map(|c| (c.id, c)).collect();
    // A merge that committed between the read and the lock: its survivor is locked
    // out of order, which only a merge racing this very write can cause.
    let merged_since: Vec<(Uuid, Uuid)> = targets
        .iter()
        .filter_map(|id| Some((*id, found.get(id)?.merged_into_id?)))
        .collect();
    for (merged, survivor) in merged_since {
        let customer = customers::live_for_update(txn, survivor).await?;
        found.insert(survivor, customer);
        targets.retain(|id| *id != merged);
        targets.push(survivor);
        for to in survivors.values_mut().filter(|to| **to == merged) {
            *to = survivor;
        }
        survivors.insert(merged, survivor);
    }
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
    Ok((found, survivors))
}
