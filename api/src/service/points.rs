//! Hand adjustments of a customer's points.

use entity::enums::PointsEntryKind;
use entity::points_entry;
use uuid::Uuid;

use crate::domain::DomainResult;
use crate::domain::points::adjustment;
use crate::service::Caller;
use crate::store::idempotency::{self, Claim};
use crate::store::points::{self, NewEntry};
use crate::store::{Db, customers};

const OPERATION: &str = "adjustPoints";

pub struct Adjustment {
    pub customer_id: Uuid,
    pub delta: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

/// Adds (or takes) points by hand, as an `ADJUST` entry. The balance never goes below
/// zero (`INSUFFICIENT_POINTS`); a repeated idempotency key returns the first entry.
#[tracing::instrument(name = "points::adjust", skip_all)]
pub async fn adjust(
    db: &Db,
    caller: Caller<'_>,
    request: Adjustment,
) -> DomainResult<points_entry::Model> {
    let (delta, reason) = adjustment(request.delta, &request.reason)?;
    let key = crate::domain::interaction::idempotency_key(
        request.idempotency_key.as_deref(),
        "input.idempotencyKey",
    )?;
    let fingerprint = idempotency::fingerprint(&[&request.customer_id, &delta, &reason.as_str()]);
    let key_owner = caller.key_owner.to_owned();
    let caller = caller.subject.to_owned();
    db.write(move |txn| {
        Box::pin(async move {
            let customer = customers::live_for_update(txn, request.customer_id).await?;
            let id = Uuid::now_v7();
            if let Some(key) = &key
                && let Claim::Seen(previous) =
                    idempotency::claim(txn, &key_owner, key, OPERATION, &fingerprint, id).await?
            {
                return idempotency::replay(previous, |id| points::find(txn, id)).await;
            }
            // Taking points never ends below zero (the ledger refuses an ADJUST that
            // would); adding is always allowed (it may lift a balance a refund's reversal
            // took below zero).
            points::append(
                txn,
                NewEntry {
                    id: Some(id),
                    customer_id: customer.id,
                    delta,
                    kind: PointsEntryKind::Adjust,
                    reason: Some(&reason),
                    expires_at: None,
                    interaction_id: None,
                    campaign_id: None,
                    transfer_id: None,
                    created_by: &caller,
                },
            )
            .await
        })
    })
    .await
}
