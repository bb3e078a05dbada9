//! Creating, updating, upserting and erasing customers.

use chrono::NaiveDate;
use entity::customer;
use entity::enums::{AbcClass, CustomerKind, LifecycleStage, TierChangeReason};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value as Json;
use uuid::Uuid;

use super::Patch;
use crate::domain::{self, DomainError, DomainResult, referral_code};
use crate::store::tier_changes::{self, NewTierChange};
use crate::store::{self, Db, customers, now, tiers};

/// A customer's profile as given to create or upsert, before validation.
#[derive(Debug, Clone, Default)]
pub struct ProfileInput {
    pub name: String,
    pub external_ref: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub kind: Option<CustomerKind>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<Json>,
}

/// A validated profile.
#[derive(Debug, Clone)]
struct Profile {
    name: String,
    external_ref: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    kind: CustomerKind,
    industry: Option<String>,
    region: Option<String>,
    birthday: Option<NaiveDate>,
    tags: Vec<String>,
    attributes: Json,
}

impl ProfileInput {
    fn validate(self) -> DomainResult<Profile> {
        use domain::customer as rules;
        let today = now().date_naive();
        Ok(Profile {
            name: rules::name(&self.name, "input.name")?,
            external_ref: rules::external_ref(self.external_ref.as_deref(), "input.externalRef")?,
            email: rules::email(self.email.as_deref(), "input.email")?,
            phone: rules::phone(self.phone.as_deref(), "input.phone")?,
            kind: self.kind.unwrap_or(CustomerKind::Individual),
            industry: rules::optional_text(self.industry.as_deref(), "input.industry", 200)?,
            region: rules::optional_text(self.region.as_deref(), "input.region", 200)?,
            birthday: rules::birthday(self.birthday, "input.birthday", today)?,
            tags: rules::tags(self.tags.as_deref().unwrap_or_default(), "input.tags")?,
            attributes: rules::attributes(
                self.attributes.unwrap_or_else(|| serde_json::json!({})),
                "input.attributes",
            )?,
        })
    }
}

/// The fields of `updateCustomer`: only those given change.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub kind: Option<CustomerKind>,
    pub industry: Patch<String>,
    pub region: Patch<String>,
    pub birthday: Patch<NaiveDate>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<Json>,
}

fn external_ref_taken(error: DomainError, external_ref: &Option<String>) -> DomainError {
    match (&error, external_ref) {
        (DomainError::Internal(inner), Some(reference))
            if inner
                .downcast_ref::<sea_orm::DbErr>()
                .is_some_and(store::is_unique_violation) =>
        {
            DomainError::Conflict(format!(
                "a customer with externalRef {reference:?} already exists"
            ))
        }
        _ => error,
    }
}

/// Creates a customer in the lowest tier, recorded in its history as CREATED.
/// With a `referral_code`, the customer is linked to its referrer in the same transaction
/// (an unknown code is `NOT_FOUND` and creates nothing).
#[tracing::instrument(name = "customers::create", skip_all)]
pub async fn create(
    db: &Db,
    input: ProfileInput,
    referral_code: Option<String>,
) -> DomainResult<customer::Model> {
    let profile = input.validate()?;
    let external_ref = profile.external_ref.clone();
    let referral_code = referral_code.filter(|code| !code.trim().is_empty());
    db.write(move |txn| {
        Box::pin(async move {
            let created = insert(txn, profile).await?;
            match referral_code {
                Some(code) => {
                    let referral = super::referrals::link(txn, &created, &code).await?;
                    Ok(customer::Model {
                        referred_by_id: Some(referral.referrer_id),
                        ..created
                    })
                }
                None => Ok(created),
            }
        })
    })
    .await
    .map_err(|e| external_ref_taken(e, &external_ref))
}

async fn insert(txn: &impl ConnectionTrait, profile: Profile) -> DomainResult<customer::Model> {
    let tier = tiers::lowest(txn).await?.ok_or_else(|| {
        DomainError::Conflict("the program has no tiers; create one first".into())
    })?;
    let at = now();
    let customer = customer::ActiveModel {
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
        tier_id: Set(tier.id),
        score: Set(0.0),
        downgrade_marked_at: Set(None),
        points_balance: Set(0),
        referral_code: Set(unused_referral_code(txn).await?),
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
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(txn)
    .await?;
    customers::set_tags(txn, customer.id, &profile.tags).await?;
    tier_changes::insert(
        txn,
        NewTierChange {
            customer_id: customer.id,
            from_tier_id: None,
            to_tier_id: tier.id,
            reason: TierChangeReason::Created,
            score: 0.0,
            note: None,
        },
    )
    .await?;
    Ok(customer)
}

/// A referral code no customer has. Codes are random over 8.5e11 values, so a second
/// draw is rare and a third practically never happens; the unique index backs this up.
async fn unused_referral_code(txn: &impl ConnectionTrait) -> DomainResult<String> {
    for _ in 0..5 {
        let code = referral_code::generate();
        let taken = customer::Entity::find()
            .filter(customer::Column::ReferralCode.eq(&code))
            .one(txn)
            .await?;
        if taken.is_none() {
            return Ok(code);
        }
    }
    Err(DomainError::Internal(anyhow::anyhow!(
        "could not draw an unused referral code"
    )))
}

/// Creates the customer with this `externalRef`, or replaces the profile of the one that
/// has it (fields left out are cleared: a partner sends its whole record).
#[tracing::instrument(name = "customers::upsert", skip_all)]
pub async fn upsert(db: &Db, input: ProfileInput) -> DomainResult<customer::Model> {
    let profile = input.validate()?;
    let Some(external_ref) = profile.external_ref.clone() else {
        return Err(DomainError::bad_input(
            "input.externalRef",
            "must not be empty",
        ));
    };
    // Two first upserts of one externalRef can race: the loser's insert hits the unique
    // index, and its second attempt finds the winner's row and updates it.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let profile = profile.clone();
        let reference = external_ref.clone();
        let result = db
            .write(move |txn| {
                Box::pin(async move {
                    match customers::find_by_external_ref(txn, &reference).await? {
                        Some(existing) => replace_profile(txn, existing.id, profile).await,
                        None => insert(txn, profile).await,
                    }
                })
            })
            .await;
        match result {
            Err(error) if attempts < 3 && is_unique_violation(&error) => continue,
            other => return other.map_err(|e| external_ref_taken(e, &Some(external_ref.clone()))),
        }
    }
}

fn is_unique_violation(error: &DomainError) -> bool {
    matches!(error, DomainError::Internal(inner) if inner.downcast_ref::<sea_orm::DbErr>().is_some_and(store::is_unique_violation))
}

async fn replace_profile(
    txn: &impl ConnectionTrait,
    id: Uuid,
    profile: Profile,
) -> DomainResult<customer::Model> {
    let existing = customers::find_for_update(txn, id)
        .await?
        .ok_or_else(|| DomainError::not_found("customer"))?;
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
    let customer = customer.update(txn).await?;
    customers::set_tags(txn, id, &profile.tags).await?;
    Ok(customer)
}

/// Changes the fields given; `NOT_FOUND` for an unknown or erased customer.
#[tracing::instrument(name = "customers::update", skip_all)]
pub async fn update(db: &Db, id: Uuid, patch: ProfilePatch) -> DomainResult<customer::Model> {
    use domain::customer as rules;
    let today = now().date_naive();
    let name = patch
        .name
        .as_deref()
        .map(|n| rules::name(n, "input.name"))
        .transpose()?;
    let email = patch
        .email
        .try_map(|e| rules::email(Some(&e), "input.email"))?;
    let phone = patch
        .phone
        .try_map(|p| rules::phone(Some(&p), "input.phone"))?;
    let industry = patch
        .industry
        .try_map(|v| rules::optional_text(Some(&v), "input.industry", 200))?;
    let region = patch
        .region
        .try_map(|v| rules::optional_text(Some(&v), "input.region", 200))?;
    let birthday = patch
        .birthday
        .try_map(|b| rules::birthday(Some(b), "input.birthday", today).map(|_| b))?;
    let tags = patch
        .tags
        .as_deref()
        .map(|t| rules::tags(t, "input.tags"))
        .transpose()?;
    let attributes = patch
        .attributes
        .map(|a| rules::attributes(a, "input.attributes"))
        .transpose()?;
    let kind = patch.kind;

    db.write(move |txn| {
        Box::pin(async move {
            let existing = customers::live_for_update(txn, id).await?;
            let mut customer: customer::ActiveModel = existing.clone().into();
            if let Some(name) = name {
                customer.name = Set(name);
            }
            // An empty string given for an optional text clears it, like null.
            customer.email = Set(email.apply(existing.email.clone().map(Some)).flatten());
            customer.phone = Set(phone.apply(existing.phone.clone().map(Some)).flatten());
            customer.industry = Set(industry
                .apply(existing.industry.clone().map(Some))
                .flatten());
            customer.region = Set(region.apply(existing.region.clone().map(Some)).flatten());
            customer.birthday = Set(birthday.apply(existing.birthday));
            if let Some(kind) = kind {
                customer.kind = Set(kind);
            }
            if let Some(attributes) = attributes {
                customer.attributes = Set(attributes);
            }
            customer.updated_at = Set(now());
            let customer = customer.update(txn).await?;
            if let Some(tags) = tags {
                customers::set_tags(txn, id, &tags).await?;
            }
            Ok(customer)
        })
    })
    .await
}

/// Removes a customer's personal data — profile, tags, attributes, interaction notes —
/// and keeps the anonymous record: tier, score, metrics, history and ledger, so that
/// aggregates stay true. Erasing twice is harmless.
#[tracing::instrument(name = "customers::erase", skip_all)]
pub async fn erase(db: &Db, id: Uuid) -> DomainResult<()> {
    db.write(move |txn| {
        Box::pin(async move {
            let existing = customers::find_for_update(txn, id)
                .await?
                .ok_or_else(|| DomainError::not_found("customer"))?;
            let at = now();
            let mut customer: customer::ActiveModel = existing.into();
            customer.name = Set(ERASED_NAME.to_owned());
            customer.external_ref = Set(None);
            customer.email = Set(None);
            customer.phone = Set(None);
            customer.industry = Set(None);
            customer.region = Set(None);
            customer.birthday = Set(None);
            customer.attributes = Set(serde_json::json!({}));
            customer.erased_at = Set(Some(at));
            customer.updated_at = Set(at);
            customer.update(txn).await?;
            customers::set_tags(txn, id, &[]).await?;
            // Free text tied to the customer may name or describe the person: notes,
            // order references (a shop's may hold an address or a phone number), ledger
            // reasons and tier-change notes go with the profile. Amounts, dates and kinds
            // stay: they are the anonymous aggregates the program keeps.
            let none = || sea_orm::sea_query::Expr::value(Option::<String>::None);
            use entity::{interaction, points_entry, tier_change};
            interaction::Entity::update_many()
                .col_expr(interaction::Column::Note, none())
                .col_expr(interaction::Column::OrderRef, none())
                .filter(interaction::Column::CustomerId.eq(id))
                .exec(txn)
                .await?;
            points_entry::Entity::update_many()
                .col_expr(points_entry::Column::Reason, none())
                .filter(points_entry::Column::CustomerId.eq(id))
                .exec(txn)
                .await?;
            tier_change::Entity::update_many()
                .col_expr(tier_change::Column::Note, none())
                .filter(tier_change::Column::CustomerId.eq(id))
                .exec(txn)
                .await?;
            Ok(())
        })
    })
    .await
}

/// The name an erased customer is shown with.
pub const ERASED_NAME: &str = "Erased customer";

/// Creates many customers in one transaction (the demo data, imports): all or none.
#[tracing::instrument(name = "customers::create_many", skip_all)]
pub async fn create_many(db: &Db, inputs: Vec<ProfileInput>) -> DomainResult<Vec<customer::Model>> {
    let profiles = inputs
        .into_iter()
        .map(ProfileInput::validate)
        .collect::<DomainResult<Vec<_>>>()?;
    db.write(move |txn| {
        Box::pin(async move {
            let mut created = Vec::with_capacity(profiles.len());
            for profile in profiles {
                created.push(insert(txn, profile).await?);
            }
            Ok(created)
        })
    })
    .await
}
