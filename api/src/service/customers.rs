//! Creating, updating, upserting and erasing customers.

use chrono::NaiveDate;
use entity::customer;
use entity::enums::{CustomerKind, EventTopic, TierChangeReason};
use sea_orm::ConnectionTrait;
use serde_json::Value as Json;
use uuid::Uuid;

use super::Patch;
use crate::domain::{self, DomainError, DomainResult, referral_code};
use crate::store::profiles::{self, Profile};
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

/// A validated profile and its tags.
#[derive(Debug, Clone)]
struct Valid {
    profile: Profile,
    tags: Vec<String>,
}

impl ProfileInput {
    fn validate(self) -> DomainResult<Valid> {
        use domain::customer as rules;
        let today = now().date_naive();
        let tags = rules::tags(self.tags.as_deref().unwrap_or_default(), "input.tags")?;
        let profile = Profile {
            name: rules::name(&self.name, "input.name")?,
            external_ref: rules::external_ref(self.external_ref.as_deref(), "input.externalRef")?,
            email: rules::email(self.email.as_deref(), "input.email")?,
            phone: rules::phone(self.phone.as_deref(), "input.phone")?,
            kind: self.kind.unwrap_or(CustomerKind::Individual),
            industry: rules::optional_text(self.industry.as_deref(), "input.industry", 200)?,
            region: rules::optional_text(self.region.as_deref(), "input.region", 200)?,
            birthday: rules::birthday(self.birthday, "input.birthday", today)?,
            attributes: rules::attributes(
                self.attributes.unwrap_or_else(|| serde_json::json!({})),
                "input.attributes",
            )?,
        };
        Ok(Valid { profile, tags })
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
    let external_ref = profile.profile.external_ref.clone();
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

async fn insert(txn: &impl ConnectionTrait, valid: Valid) -> DomainResult<customer::Model> {
    let tier = tiers::lowest(txn).await?.ok_or_else(|| {
        DomainError::Conflict("the program has no tiers; create one first".into())
    })?;
    let code = unused_referral_code(txn).await?;
    let customer = profiles::insert(txn, valid.profile, tier.id, code).await?;
    customers::set_tags(txn, customer.id, &valid.tags).await?;
    tier_changes::insert(
        txn,
        NewTierChange {
            customer_id: customer.id,
            from_tier_id: None,
            to_tier_id: tier.id,
            reason: TierChangeReason::Created,
            score: 0.0,
            note: None,
            breakdown: None,
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
        if !profiles::referral_code_taken(txn, &code).await? {
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
    let Some(external_ref) = profile.profile.external_ref.clone() else {
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
    valid: Valid,
) -> DomainResult<customer::Model> {
    let existing = customers::find_for_update(txn, id)
        .await?
        .ok_or_else(|| DomainError::not_found("customer"))?;
    let customer = profiles::replace(txn, existing, valid.profile).await?;
    customers::set_tags(txn, id, &valid.tags).await?;
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
            // An empty string given for an optional text clears it, like null.
            let profile = Profile {
                name: name.unwrap_or_else(|| existing.name.clone()),
                external_ref: existing.external_ref.clone(),
                email: email.apply(existing.email.clone().map(Some)).flatten(),
                phone: phone.apply(existing.phone.clone().map(Some)).flatten(),
                kind: kind.unwrap_or(existing.kind),
                industry: industry
                    .apply(existing.industry.clone().map(Some))
                    .flatten(),
                region: region.apply(existing.region.clone().map(Some)).flatten(),
                birthday: birthday.apply(existing.birthday),
                attributes: attributes.unwrap_or_else(|| existing.attributes.clone()),
            };
            let customer = profiles::replace(txn, existing, profile).await?;
            if let Some(tags) = tags {
                customers::set_tags(txn, customer.id, &tags).await?;
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
            let existing = customers::following_merge_for_update(txn, id)
                .await?
                .ok_or_else(|| DomainError::not_found("customer"))?;
            // The person's records that merges left behind go with it.
            let mut people = customers::merged_into(txn, existing.id).await?;
            people.push(existing);
            for person in people {
                let id = person.id;
                profiles::erase(txn, person, ERASED_NAME, now()).await?;
                // Partners that keep a copy of the profile must delete theirs too.
                store::outbox::emit(txn, EventTopic::CustomerErased, Some(id), id).await?;
                customers::set_tags(txn, id, &[]).await?;
            }
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
            for valid in profiles {
                created.push(insert(txn, valid).await?);
            }
            Ok(created)
        })
    })
    .await
}
