//! Referrals (CONTRACT.md, "Referrals"): a code applied at sign-up or before the first
//! purchase, and the reward both sides get when the referee first buys.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use entity::enums::ReferralStatus;
use entity::{customer, referral};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::{DomainError, DomainResult};
use crate::store::{Db, customers, interactions, now, referrals};

/// Links `referee` to the owner of `code`. `NOT_FOUND` for a code no customer has;
/// `CONFLICT` for one's own code, a referee already referred, or one who already bought.
/// The caller holds the referee's row lock.
#[tracing::instrument(name = "referrals::link", skip_all)]
pub async fn link(
    txn: &impl ConnectionTrait,
    referee: &customer::Model,
    code: &str,
) -> DomainResult<referral::Model> {
    let code = code.trim().to_uppercase();
    let referrer = customers::by_referral_code(txn, &code)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("no customer has referral code {code}")))?;
    if referrer.id == referee.id {
        return Err(DomainError::Conflict(
            "a customer cannot use its own referral code".into(),
        ));
    }
    if referee.referred_by_id.is_some() || referrals::of_referee(txn, referee.id).await?.is_some() {
        return Err(DomainError::Conflict(
            "this customer was already referred; a referral code applies once".into(),
        ));
    }
    if interactions::has_purchased(txn, referee.id).await? {
        return Err(DomainError::Conflict(
            "a referral code applies only before the customer's first purchase".into(),
        ));
    }
    customers::set_referred_by(txn, referee.id, referrer.id).await?;
    referrals::insert(
        txn,
        referral::Model {
            id: Uuid::now_v7(),
            referrer_id: referrer.id,
            referee_id: referee.id,
            code,
            status: ReferralStatus::Pending,
            referrer_points: 0,
            referee_points: 0,
            created_at: now(),
            rewarded_at: None,
        },
    )
    .await
}

/// `applyReferralCode`: links an existing customer to a referrer.
#[tracing::instrument(name = "referrals::apply_code", skip_all)]
pub async fn apply_code(db: &Db, customer_id: Uuid, code: String) -> DomainResult<referral::Model> {
    db.write(move |txn| {
        Box::pin(async move {
            let referee = customers::live_for_update(txn, customer_id).await?;
            link(txn, &referee, &code).await
        })
    })
    .await
}

/// The calendar year (UTC) around `at`, as `[start, end)`: the period
/// `maxRewardedReferralsPerYear` counts over.
pub fn calendar_year(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |year| {
        Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(at)
    };
    (start(at.year()), start(at.year() + 1))
}
