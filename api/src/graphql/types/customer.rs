//! `Customer` and the inputs that create, change, filter and order customers.

use std::sync::Arc;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result};
use entity::customer;

use super::enums::{
    AbcClass, CustomerKind, CustomerOrderField, InteractionKind, LifecycleStage, OrderDirection,
    RfmSegment,
};
use super::interaction::{Interaction, InteractionConnection};
use super::metrics::CustomerMetrics;
use super::points::{PointsEntry, PointsEntryConnection};
use super::progress::TierProgress;
use super::referral::Referral;
use super::segment::Segment;
use super::tier::{Tier, TierChangeConnection, load_tier};
use crate::auth::guard::principal;
use crate::auth::{Allow, Anyone, OwnedBy, Permission};
use crate::domain::{DomainError, DomainResult};
use crate::graphql::cost;
use crate::graphql::error::Gql;
use crate::graphql::loaders::{
    InteractionsOf, LedgerLots, LedgerOf, ProgressOf, ReferralsBy, RequestLoader, RewardsOnOffer,
    SegmentsOfCustomer, StoreLoader, TagsOfCustomer, TierHistoryOf, load_customer, normalize_kinds,
};
use crate::graphql::scalars::{Date, DateTime};
use crate::service::Patch;
use crate::service::customers::{ProfileInput, ProfilePatch};
use crate::store::customers::{self as store, CustomerOrder};
use crate::store::paging::{Page, PageRequest};
use crate::store::segments::Membership;
use crate::store::{interactions, points, tier_changes};

/// A customer, guarded as a whole: every field belongs to the customer
/// (`OwnedBy`) except the public view — `id` and `name` reduced to an initial — that a
/// referral screen shows of someone the caller may not read. A field added later is
/// private unless it says otherwise.
#[derive(Clone)]
pub struct Customer(pub customer::Model);

#[Object(guard = "OwnedBy(self.0.id)")]
impl Customer {
    #[graphql(guard = "Anyone")]
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn external_ref(&self) -> Option<&str> {
        self.0.external_ref.as_deref()
    }

    /// The full name to those who may read the customer; to anyone else its initial
    /// ("Z.").
    #[graphql(guard = "Anyone")]
    async fn name(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(if principal(ctx)?.may_read_customer(self.0.id) {
            self.0.name.clone()
        } else {
            crate::domain::customer::public_name(&self.0.name)
        })
    }

    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }

    async fn kind(&self) -> CustomerKind {
        self.0.kind.into()
    }

    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }

    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }

    async fn birthday(&self) -> Option<Date> {
        self.0.birthday.map(Date)
    }

    /// The members merged into this one (`mergeCustomers`): their ids and external
    /// references still find this customer.
    async fn merged_ids(&self, ctx: &Context<'_>) -> Result<Vec<ID>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(crate::graphql::loaders::MergedInto(self.0.id))
            .await
            .gql()?
            .unwrap_or_default()
            .into_iter()
            .map(|id| ID(id.to_string()))
            .collect())
    }

    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(TagsOfCustomer(self.0.id))
            .await
            .gql()?
            .unwrap_or_default())
    }

    /// Free-form profile: interests, company size, contacts.
    #[graphql(complexity = "cost::FREE_FORM_JSON")]
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }

    async fn lifecycle_stage(&self) -> LifecycleStage {
        self.0.lifecycle_stage.into()
    }

    async fn tier(&self, ctx: &Context<'_>) -> Result<Tier> {
        load_tier(ctx, self.0.tier_id).await
    }

    /// 0..100, from the scoring model.
    async fn score(&self) -> f64 {
        self.0.score
    }

    async fn metrics(&self) -> CustomerMetrics {
        CustomerMetrics(self.0.clone())
    }

    /// Why the customer holds its tier and what would take it to the next one, computed
    /// now by the rules that move tiers (README, "Tier progress"). A page of customers
    /// reads it in a fixed number of statements.
    async fn tier_progress(&self, ctx: &Context<'_>) -> Result<TierProgress> {
        use crate::domain::progress::{Inputs, Standing, progress};
        let db = ctx.data::<crate::store::Db>()?;
        let loader = ctx.data::<RequestLoader>()?;
        let program = db.programs().recent(db.conn()).await.gql()?;
        let customer = &self.0;
        let key = ProgressOf::of(customer, program.model.downgrade_grace_days);
        let (sums, rewards) =
            futures_util::try_join!(loader.load_one(key), loader.load_one(RewardsOnOffer)).gql()?;
        let sums = sums
            .ok_or_else(|| {
                DomainError::Internal(anyhow::anyhow!("no sums for customer {}", customer.id))
            })
            .gql()?;
        Ok(TierProgress(progress(&Inputs {
            model: &program.model,
            ladder: &program.ladder,
            max_amount_e4: program.settings.max_interaction_amount_e4,
            standing: Standing {
                tier_id: customer.tier_id,
                tier_held: customer.tier_held,
                downgrade_marked_at: customer.downgrade_marked_at,
                points_balance: customer.points_balance,
            },
            now: sums.now,
            sums_now: sums.sums_now,
            sums_at_grace_end: sums.sums_at_grace_end,
            rewards: &rewards.unwrap_or_default(),
        })))
    }

    /// Newest first.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn tier_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<TierChangeConnection> {
        let request = PageRequest::new(first, after.as_deref(), tier_changes::ORDER).gql()?;
        let key = TierHistoryOf {
            customer: self.0.id,
            first: request.first,
            counted: ctx.look_ahead().field("totalCount").exists(),
        };
        let db = ctx.data::<crate::store::Db>()?;
        let later = tier_changes::page_of(db.conn(), self.0.id, &request);
        let page = first_or_later(ctx, &request, key, later).await?;
        Ok(TierChangeConnection::from_page(
            page,
            tier_changes::cursor,
            super::tier::TierChange,
        ))
    }

    /// Newest first; `kinds` narrows to those kinds.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<InteractionKind>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<InteractionConnection> {
        let request = PageRequest::new(first, after.as_deref(), interactions::ORDER).gql()?;
        let mut kinds: Vec<entity::enums::InteractionKind> = kinds
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect();
        normalize_kinds(&mut kinds);
        let key = InteractionsOf {
            customer: self.0.id,
            first: request.first,
            counted: ctx.look_ahead().field("totalCount").exists(),
            kinds: kinds.clone(),
        };
        let db = ctx.data::<crate::store::Db>()?;
        let later = interactions::page_of(db.conn(), self.0.id, &kinds, &request);
        let page = first_or_later(ctx, &request, key, later).await?;
        Ok(InteractionConnection::from_page(
            page,
            interactions::cursor,
            Interaction,
        ))
    }

    /// Spendable points: redemptions and transfers use these only.
    async fn points_balance(&self) -> i64 {
        self.0.points_balance
    }

    /// Points earned by purchases whose return window (`pendingDays`) is still open:
    /// not in `pointsBalance` until they activate, at each entry's `availableAt`.
    async fn points_pending(&self) -> i64 {
        self.0.points_pending
    }

    /// Unspent points that expire within `withinDays` (0..3650) from now, including any
    /// past their date that no run has written off yet (spending uses the soonest
    /// expiring points first), so that an app can remind its customer.
    async fn points_expiring(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] within_days: i32,
    ) -> Result<i64> {
        if !(0..=3650).contains(&within_days) {
            return Err(DomainError::bad_input(
                "withinDays",
                "must be between 0 and 3650",
            ))
            .gql();
        }
        let ledger = ctx
            .data::<RequestLoader>()?
            .load_one(LedgerLots(self.0.id))
            .await
            .gql()?
            .unwrap_or_default();
        let until = chrono::Utc::now() + chrono::Duration::days(within_days.into());
        Ok(crate::domain::points::expired_by(&ledger, until))
    }

    /// Newest first.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn points_ledger(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<PointsEntryConnection> {
        let request = PageRequest::new(first, after.as_deref(), points::ORDER).gql()?;
        let key = LedgerOf {
            customer: self.0.id,
            first: request.first,
            counted: ctx.look_ahead().field("totalCount").exists(),
        };
        let db = ctx.data::<crate::store::Db>()?;
        let later = points::page_of(db.conn(), self.0.id, &request);
        let page = first_or_later(ctx, &request, key, later).await?;
        Ok(PointsEntryConnection::from_page(
            page,
            points::cursor,
            PointsEntry,
        ))
    }

    async fn referral_code(&self) -> &str {
        &self.0.referral_code
    }

    async fn referred_by(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        match self.0.referred_by_id {
            Some(id) => load_customer(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The segments the customer is in now, by name.
    #[graphql(
        guard = "OwnedBy(self.0.id).and(Allow(Permission::ReadSegments))",
        complexity = "cost::list(cost::UNPAGED_LIST, child_complexity)"
    )]
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        Ok(ctx
            .data::<RequestLoader>()?
            .load_one(SegmentsOfCustomer(self.0.id))
            .await
            .gql()?
            .unwrap_or_default()
            .into_iter()
            .map(Segment)
            .collect())
    }

    /// The referrals this customer made, oldest first.
    #[graphql(complexity = "cost::list(cost::UNPAGED_LIST, child_complexity)")]
    async fn referrals(&self, ctx: &Context<'_>) -> Result<Vec<Referral>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(ReferralsBy(self.0.id))
            .await
            .gql()?
            .unwrap_or_default()
            .into_iter()
            .map(Referral)
            .collect())
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

/// A first page comes from the request's dataloader (batched over the customers of a
/// list); a later page, asked with `after`, straight from the store.
async fn first_or_later<K, M>(
    ctx: &Context<'_>,
    request: &PageRequest,
    key: K,
    later: impl Future<Output = DomainResult<Page<M>>>,
) -> Result<Page<M>>
where
    K: Send + Sync + Clone + Eq + std::hash::Hash + 'static,
    M: Send + Sync + Clone + 'static,
    StoreLoader: Loader<K, Value = Page<M>, Error = Arc<DomainError>>,
{
    if request.after.is_some() {
        return later.await.gql();
    }
    Ok(ctx
        .data::<RequestLoader>()?
        .load_one(key)
        .await
        .gql()?
        .unwrap_or_else(|| Page::from_overfetch(Vec::new(), request, 0)))
}

super::connection::connection!(
    CustomerConnection,
    CustomerEdge,
    Customer,
    total_count: "Exact up to 1,000 matching customers. Above that, on Postgres, an estimate \
        (at least 1,001) from a sample of about 2,000 customers, the same on every page while \
        the customers do not change, so that a filter half the customers match does not count \
        them all for every page; SQLite counts exactly."
);

/// A page of customers (`customers`, `Segment.members`, `segmentPreview`), in `order`
/// (by creation when `None`), with the relations the query selects loaded per page.
pub async fn list_customers(
    ctx: &Context<'_>,
    filter: store::CustomerFilter,
    order: Option<CustomerOrder>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<CustomerConnection> {
    let order = order.unwrap_or_default();
    let mut request = PageRequest::new(first, after.as_deref(), &order.name()).gql()?;
    request.count_total = ctx.look_ahead().field("totalCount").exists();
    let db = ctx.data::<crate::store::Db>()?;
    let page = store::list(db.conn(), &filter, order, &request)
        .await
        .gql()?;
    crate::graphql::loaders::prime_customers(ctx, &page.items).await?;
    Ok(CustomerConnection::from_page(
        page,
        |c| order.cursor(c),
        Customer,
    ))
}

#[derive(InputObject, Default)]
pub struct CustomerFilter {
    /// Case-insensitive. A term of one or two characters matches the start of the
    /// name, email, phone or externalRef; three or more characters match anywhere in
    /// them. At most 200 characters.
    search: Option<String>,
    tier_keys: Option<Vec<String>>,
    lifecycle_stages: Option<Vec<LifecycleStage>>,
    kinds: Option<Vec<CustomerKind>>,
    /// Customers having all of these tags.
    tags: Option<Vec<String>>,
    min_score: Option<f64>,
    max_score: Option<f64>,
    abc_classes: Option<Vec<AbcClass>>,
    rfm_segments: Option<Vec<RfmSegment>>,
    /// Members of this segment (an unknown segment has none).
    segment_id: Option<ID>,
    /// Customers whose pAlive (under the churn model in use) is at least this. Nobody
    /// matches a pAlive bound before a model is fitted.
    min_p_alive: Option<f64>,
    /// Customers whose pAlive is at most this: the churn early-warning list.
    max_p_alive: Option<f64>,
}

/// The longest `search` term: longer ones match nobody (no name, e-mail, phone or
/// reference is that long) and would only cost a scan.
pub const MAX_SEARCH: usize = 200;

impl CustomerFilter {
    /// Refuses what the filter cannot mean, before anything is read.
    pub fn validate(&self) -> crate::domain::DomainResult<()> {
        if self
            .search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH)
        {
            return Err(DomainError::bad_input(
                "filter.search",
                format!("at most {MAX_SEARCH} characters"),
            ));
        }
        Ok(())
    }
}

fn map_all<A: Copy, B: From<A>>(values: Option<Vec<A>>) -> Option<Vec<B>> {
    values.map(|v| v.into_iter().map(B::from).collect())
}

impl From<CustomerFilter> for store::CustomerFilter {
    fn from(filter: CustomerFilter) -> Self {
        Self {
            search: filter.search,
            tier_keys: filter.tier_keys,
            lifecycle_stages: map_all(filter.lifecycle_stages),
            kinds: map_all(filter.kinds),
            tags: filter.tags,
            min_score: filter.min_score,
            max_score: filter.max_score,
            abc_classes: map_all(filter.abc_classes),
            rfm_segments: map_all(filter.rfm_segments),
            membership: filter.segment_id.map(|id| {
                // A malformed id names no segment, like an unknown one.
                Membership::Segment(crate::graphql::id::parse_id_or_none(&id).unwrap_or_default())
            }),
            min_p_alive: filter.min_p_alive,
            max_p_alive: filter.max_p_alive,
        }
    }
}

#[derive(InputObject)]
pub struct CustomerOrderBy {
    field: CustomerOrderField,
    #[graphql(default)]
    direction: OrderDirection,
}

impl From<CustomerOrderBy> for CustomerOrder {
    fn from(order: CustomerOrderBy) -> Self {
        use store::CustomerOrderField as F;
        Self {
            field: match order.field {
                CustomerOrderField::Name => F::Name,
                CustomerOrderField::CreatedAt => F::CreatedAt,
                CustomerOrderField::Score => F::Score,
                CustomerOrderField::LifetimeSpend => F::LifetimeSpend,
                CustomerOrderField::PointsBalance => F::PointsBalance,
                CustomerOrderField::LastPurchaseAt => F::LastPurchaseAt,
            },
            descending: order.direction == OrderDirection::Desc,
        }
    }
}

#[derive(InputObject)]
pub struct CreateCustomerInput {
    name: String,
    external_ref: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[graphql(default_with = "Some(CustomerKind::Individual)")]
    kind: Option<CustomerKind>,
    industry: Option<String>,
    region: Option<String>,
    birthday: Option<Date>,
    tags: Option<Vec<String>>,
    attributes: Option<Json<serde_json::Value>>,
    /// A referrer's code, applied at sign-up.
    pub referral_code: Option<String>,
}

impl From<CreateCustomerInput> for ProfileInput {
    fn from(input: CreateCustomerInput) -> Self {
        Self {
            name: input.name,
            external_ref: input.external_ref,
            email: input.email,
            phone: input.phone,
            kind: input.kind.map(Into::into),
            industry: input.industry,
            region: input.region,
            birthday: input.birthday.map(|d| d.0),
            tags: input.tags,
            attributes: input.attributes.map(|j| j.0),
        }
    }
}

/// Keyed by `externalRef`: creates the customer, or replaces the profile of the one that
/// has it (fields left out are cleared).
#[derive(InputObject)]
pub struct UpsertCustomerInput {
    external_ref: String,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    #[graphql(default_with = "Some(CustomerKind::Individual)")]
    kind: Option<CustomerKind>,
    industry: Option<String>,
    region: Option<String>,
    birthday: Option<Date>,
    tags: Option<Vec<String>>,
    attributes: Option<Json<serde_json::Value>>,
}

impl From<UpsertCustomerInput> for ProfileInput {
    /// The same profile as a create, with the external reference required.
    fn from(input: UpsertCustomerInput) -> Self {
        CreateCustomerInput {
            name: input.name,
            external_ref: Some(input.external_ref),
            email: input.email,
            phone: input.phone,
            kind: input.kind,
            industry: input.industry,
            region: input.region,
            birthday: input.birthday,
            tags: input.tags,
            attributes: input.attributes,
            referral_code: None,
        }
        .into()
    }
}

/// Only the fields given change; `null` clears an optional field.
#[derive(InputObject)]
pub struct UpdateCustomerInput {
    name: MaybeUndefined<String>,
    email: MaybeUndefined<String>,
    phone: MaybeUndefined<String>,
    kind: MaybeUndefined<CustomerKind>,
    industry: MaybeUndefined<String>,
    region: MaybeUndefined<String>,
    birthday: MaybeUndefined<Date>,
    tags: MaybeUndefined<Vec<String>>,
    attributes: MaybeUndefined<Json<serde_json::Value>>,
}

pub(crate) fn patch<T>(value: MaybeUndefined<T>) -> Patch<T> {
    match value {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(v) => Patch::Set(v),
    }
}

impl TryFrom<UpdateCustomerInput> for ProfilePatch {
    type Error = crate::domain::DomainError;

    fn try_from(input: UpdateCustomerInput) -> Result<Self, Self::Error> {
        use crate::domain::DomainError;
        let required = |field: &str| DomainError::bad_input(field, "cannot be cleared");
        Ok(Self {
            name: match input.name {
                MaybeUndefined::Null => return Err(required("input.name")),
                other => other.take(),
            },
            email: patch(input.email),
            phone: patch(input.phone),
            kind: match input.kind {
                MaybeUndefined::Null => return Err(required("input.kind")),
                other => other.take().map(Into::into),
            },
            industry: patch(input.industry),
            region: patch(input.region),
            birthday: patch(input.birthday).try_map(|d| Ok::<_, DomainError>(d.0))?,
            tags: match input.tags {
                MaybeUndefined::Null => Some(Vec::new()),
                other => other.take(),
            },
            attributes: match input.attributes {
                MaybeUndefined::Null => Some(serde_json::json!({})),
                other => other.take().map(|j| j.0),
            },
        })
    }
}
