//! Writing customers' profiles: the new customer's row, a replaced or patched profile,
//! and erasure. Rules (validation, which fields a patch may clear) are the service's;
//! this module only writes what it is given.

use chrono::{DateTime, NaiveDate, Utc};
use entity::customer;
use entity::enums::{AbcClass, CustomerKind, LifecycleStage};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value as Json;
use uuid::Uuid;

use super::now;
use crate::domain::DomainResult;

/// A customer's profile, validated (tags are written apart: `customers::set_tags`).
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub external_ref: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub kind: CustomerKind,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub attributes: Json,
}

/// Inserts a new customer with `profile` in `tier_id`: a prospect with no purchases,
/// points or scores yet.
pub async fn insert(
    db: &impl ConnectionTrait,
    profile: Profile,
    tier_id: Uuid,
    referral_code: String,
) -> DomainResult<customer::Model> {
    let at = now();
    Ok(customer::ActiveModel {
        id: Set(Uuid::now_v7()),
        external_ref: Set(profile.external_ref),
        name: Set(profile.name),
        email: Set(profile.email),
        phone: Set(profile.phone),
        kind: Set(profile.kind),
        industry: Set(profile.industry),
        region: Set(profile.region),
        birthday: Set(profile.birthday),
        attributes: Set(profile.attributes),
        lifecycle_stage: Set(LifecycleStage::Prospect),
        tier_id: Set(tier_id),
        score: Set(0.0),
        downgrade_marked_at: Set(None),
        points_balance: Set(0),
        referral_code: Set(referral_code),
        referred_by_id: Set(None),
        metrics_as_of: Set(at),
        first_purchase_at: Set(None),
        last_purchase_at: Set(None),
        purchase_count: Set(0),
        net_spend_e4: Set(0),
        lifetime_spend_e4: Set(0),
        average_order_value_e4: Set(None),
        engagement_count: Set(0),
        latest_nps: Set(None),
        rfm_recency: Set(None),
        rfm_frequency: Set(None),
        rfm_monetary: Set(None),
        rfm_segment: Set(None),
        abc_class: Set(AbcClass::C),
        outstanding_receivable_e4: Set(0),
        repeat_purchase_days: Set(0),
        first_purchase_day: Set(None),
        last_purchase_day: Set(None),
        repeat_spend_e4: Set(0),
        erased_at: Set(None),
        lifetime_purchase_count: Set(0),
        revision: Set(0),
        tier_held: Set(false),
        metrics_written_at: Set(Some(at)),
        points_pending: Set(0),
        merged_into_id: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?)
}

/// Whether some customer already has `code`.
pub async fn referral_code_taken(db: &impl ConnectionTrait, code: &str) -> DomainResult<bool> {
    Ok(customer::Entity::find()
        .filter(customer::Column::ReferralCode.eq(code))
        .one(db)
        .await?
        .is_some())
}

/// Writes `profile` over `existing`'s (its `externalRef` stays: it is how partners find
/// the customer).
pub async fn replace(
    db: &impl ConnectionTrait,
    existing: customer::Model,
    profile: Profile,
) -> DomainResult<customer::Model> {
    let mut customer: customer::ActiveModel = existing.into();
    customer.name = Set(profile.name);
    customer.email = Set(profile.email);
    customer.phone = Set(profile.phone);
    customer.kind = Set(profile.kind);
    customer.industry = Set(profile.industry);
    customer.region = Set(profile.region);
    customer.birthday = Set(profile.birthday);
    customer.attributes = Set(profile.attributes);
    customer.updated_at = Set(now());
    Ok(customer.update(db).await?)
}

/// Replaces `existing`'s personal data with `erased_name` and nothing else, and clears
/// the free text tied to the customer, which may name or describe the person: notes,
/// order references (a shop's may hold an address or a phone number), ledger reasons
/// and tier-change notes. Amounts, dates and kinds stay: they are the anonymous
/// aggregates the program keeps.
pub async fn erase(
    db: &impl ConnectionTrait,
    existing: customer::Model,
    erased_name: &str,
    at: DateTime<Utc>,
) -> DomainResult<()> {
    use entity::{interaction, points_entry, tier_change};
    let id = existing.id;
    let mut customer: customer::ActiveModel = existing.into();
    customer.name = Set(erased_name.to_owned());
    customer.external_ref = Set(None);
    customer.email = Set(None);
    customer.phone = Set(None);
    customer.industry = Set(None);
    customer.region = Set(None);
    customer.birthday = Set(None);
    customer.attributes = Set(serde_json::json!({}));
    customer.erased_at = Set(Some(at));
    customer.updated_at = Set(at);
    customer.update(db).await?;
    let none = || sea_orm::sea_query::Expr::value(Option::<String>::None);
    interaction::Entity::update_many()
        .col_expr(interaction::Column::Note, none())
        .col_expr(interaction::Column::OrderRef, none())
        .filter(interaction::Column::CustomerId.eq(id))
        .exec(db)
        .await?;
    points_entry::Entity::update_many()
        .col_expr(points_entry::Column::Reason, none())
        .filter(points_entry::Column::CustomerId.eq(id))
        .exec(db)
        .await?;
    tier_change::Entity::update_many()
        .col_expr(tier_change::Column::Note, none())
        .filter(tier_change::Column::CustomerId.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
