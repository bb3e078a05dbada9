//! Who is calling and what they may do: JWT verification, the caller (`Principal`), and
//! the one table of permissions (CONTRACT.md, "Authentication and roles") that guards
//! consult.

pub mod guard;
pub mod jwks;
pub mod jwt;
pub mod mapping;

use uuid::Uuid;

use crate::domain::DomainError;

pub use guard::{Allow, Anyone, OwnedBy, ReadCustomer};
pub use jwt::{Claims, JwtKeys, Verified};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Staff,
    Partner,
    Customer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "staff" => Some(Self::Staff),
            "partner" => Some(Self::Partner),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Partner => "partner",
            Self::Customer => "customer",
        }
    }
}

/// A partner's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    CustomersRead,
    CustomersWrite,
    InteractionsWrite,
    PointsWrite,
    RewardsRedeem,
    EventsSubscribe,
    WebhooksManage,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "customers:read" => Some(Self::CustomersRead),
            "customers:write" => Some(Self::CustomersWrite),
            "interactions:write" => Some(Self::InteractionsWrite),
            "points:write" => Some(Self::PointsWrite),
            "rewards:redeem" => Some(Self::RewardsRedeem),
            "events:subscribe" => Some(Self::EventsSubscribe),
            "webhooks:manage" => Some(Self::WebhooksManage),
            _ => None,
        }
    }
}

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read any customer, list and search customers.
    ReadCustomers,
    /// Create, update and upsert customers.
    WriteCustomers,
    /// Remove a customer's personal data.
    EraseCustomers,
    /// Read the program: tiers, scoring model, settings.
    ReadProgram,
    /// Change the program: tiers, scoring model, settings.
    ManageProgram,
    /// Record interactions (purchases, visits, surveys…).
    RecordInteractions,
    /// Move a customer to a tier by hand.
    SetCustomerTier,
    /// Start evaluation runs.
    RunEvaluations,
    /// Add or take points by hand (`adjustPoints`).
    AdjustPoints,
    /// Create and change rewards.
    ManageRewards,
    /// Redeem rewards for any customer (a customer redeems for itself, decided per object).
    RedeemRewards,
    /// Subscribe to every customer's live events (a customer subscribes to its own,
    /// decided per subscription).
    SubscribeEvents,
    /// Read segments and which segments a customer is in.
    ReadSegments,
    /// Create, change and delete segments, their static members, and preview rules.
    ManageSegments,
    /// Register webhook endpoints and see their deliveries: an admin all of them, a
    /// partner its own (decided per endpoint, `service::webhooks`).
    ManageWebhooks,
    /// Read campaigns, simulate them and watch them fire (`campaignFired`).
    ReadCampaigns,
    /// Create, change, start, pause and end campaigns.
    ManageCampaigns,
    /// Transfer points between any members (a customer transfers its own, decided per
    /// request).
    TransferPoints,
    /// Merge a duplicate member into another.
    MergeCustomers,
}

/// The authenticated caller, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    /// The customer a `customer` token speaks for.
    pub customer_id: Option<Uuid>,
    pub scopes: Vec<Scope>,
    /// When the token expires (Unix seconds): a WebSocket is closed then.
    pub expires_at: i64,
    /// Whose idempotency keys this caller uses (`caller`).
    pub key_owner: String,
}

impl Principal {
    fn has_scope(&self, scope: Scope) -> bool {
        self.role == Role::Partner && self.scopes.contains(&scope)
    }

    /// The permission table: the single place that says who may do what.
    pub fn may(&self, permission: Permission) -> bool {
        use Permission::*;
        match self.role {
            Role::Admin => true,
            Role::Staff => !matches!(
                permission,
                EraseCustomers
                    | ManageProgram
                    | RunEvaluations
                    | ManageRewards
                    | ManageWebhooks
                    | ManageCampaigns
                    | MergeCustomers
            ),
            Role::Partner => match permission {
                // Segments are views of customers: who may read every customer may
                // read how they are grouped.
                ReadCustomers | ReadProgram | ReadSegments => self.has_scope(Scope::CustomersRead),
                WriteCustomers => self.has_scope(Scope::CustomersWrite),
                SubscribeEvents => self.has_scope(Scope::EventsSubscribe),
                RecordInteractions => self.has_scope(Scope::InteractionsWrite),
                AdjustPoints | TransferPoints => self.has_scope(Scope::PointsWrite),
                RedeemRewards => self.has_scope(Scope::RewardsRedeem),
                ManageWebhooks => self.has_scope(Scope::WebhooksManage),
                EraseCustomers | ManageProgram | SetCustomerTier | RunEvaluations
                | ManageRewards | ManageSegments | ReadCampaigns | ManageCampaigns
                | MergeCustomers => false,
            },
            // A customer reads only itself, which `ReadCustomer` decides per object.
            Role::Customer => false,
        }
    }

    /// The caller as the business operations know it. A customer token's idempotency keys
    /// belong to its customer, whatever its `sub` says (the CLI used to mint every
    /// customer token with `sub: "customer"`).
    pub fn caller(&self) -> crate::service::Caller<'_> {
        crate::service::Caller {
            subject: &self.subject,
            key_owner: self.key_owner.as_str(),
        }
    }

    /// Whether the caller may redeem rewards for this customer: a customer only for itself.
    pub fn may_redeem_for(&self, id: Uuid) -> bool {
        self.may(Permission::RedeemRewards)
            || (self.role == Role::Customer && self.customer_id == Some(id))
    }

    /// Whether the caller may read this one customer.
    pub fn may_read_customer(&self, id: Uuid) -> bool {
        self.may(Permission::ReadCustomers)
            || (self.role == Role::Customer && self.customer_id == Some(id))
    }
}

/// Whose idempotency keys and rate budget a customer's tokens use: its customer's,
/// whoever minted the token and whatever its `sub`.
pub fn customer_key_owner(customer_id: Uuid) -> String {
    format!("customer:{customer_id}")
}

/// The caller named by an `Authorization: Bearer …` header value. A customer an
/// identity provider's token names by `externalRef` is looked up (following merges):
/// one indexed statement.
pub async fn authenticate(
    keys: &JwtKeys,
    db: &crate::store::Db,
    authorization: Option<&str>,
) -> Result<Principal, DomainError> {
    let value = authorization.ok_or_else(|| {
        DomainError::Unauthenticated("an Authorization: Bearer <token> header is required".into())
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            DomainError::Unauthenticated(
                "the Authorization header must be \"Bearer <token>\"".into(),
            )
        })?;
    match keys.verify_any(token.trim()).await? {
        Verified::Ready(principal) => Ok(principal),
        Verified::CustomerByExternalRef {
            mut principal,
            external_ref,
        } => {
            let customer = crate::store::customers::find_by_external_ref_following_merge(
                db.conn(),
                &external_ref,
            )
            .await?
            .filter(|c| c.erased_at.is_none())
            .ok_or_else(|| {
                DomainError::Unauthenticated(format!(
                    "no customer has the externalRef the token names ({external_ref})"
                ))
            })?;
            principal.customer_id = Some(customer.id);
            principal.key_owner = customer_key_owner(customer.id);
            Ok(principal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, scopes: Vec<Scope>) -> Principal {
        Principal {
            subject: "t".into(),
            role,
            customer_id: Some(Uuid::nil()),
            scopes,
            expires_at: i64::MAX,
            key_owner: "t".into(),
        }
    }

    #[test]
    fn the_permission_table_matches_the_contract() {
        use Permission::*;
        let admin = principal(Role::Admin, vec![]);
        let staff = principal(Role::Staff, vec![]);
        let reader = principal(Role::Partner, vec![Scope::CustomersRead]);
        let writer = principal(Role::Partner, vec![Scope::CustomersWrite]);
        let customer = principal(Role::Customer, vec![Scope::CustomersRead]);
        for p in [
            ReadCustomers,
            WriteCustomers,
            EraseCustomers,
            ReadProgram,
            ManageProgram,
            RecordInteractions,
            SetCustomerTier,
            RunEvaluations,
            AdjustPoints,
            ManageRewards,
            RedeemRewards,
            ReadSegments,
            ManageSegments,
            SubscribeEvents,
            ManageWebhooks,
            ReadCampaigns,
            ManageCampaigns,
        ] {
            assert!(admin.may(p));
            assert!(
                !customer.may(p),
                "customers get no blanket permission, even with a scope claim"
            );
        }
        assert!(staff.may(ReadCustomers) && staff.may(WriteCustomers) && staff.may(ReadProgram));
        assert!(!staff.may(EraseCustomers) && !staff.may(ManageProgram));
        assert!(staff.may(RecordInteractions) && staff.may(SetCustomerTier));
        assert!(!staff.may(RunEvaluations) && !staff.may(ManageRewards));
        assert!(staff.may(AdjustPoints) && staff.may(RedeemRewards));
        assert!(staff.may(ReadSegments) && staff.may(ManageSegments));
        assert!(reader.may(ReadSegments) && !reader.may(ManageSegments));
        assert!(!writer.may(ReadSegments) && !writer.may(ManageSegments));
        let shop = principal(Role::Partner, vec![Scope::RewardsRedeem]);
        assert!(shop.may(RedeemRewards) && !shop.may(AdjustPoints));
        assert!(customer.may_redeem_for(Uuid::nil()) && !customer.may_redeem_for(Uuid::now_v7()));
        let pos = principal(Role::Partner, vec![Scope::InteractionsWrite]);
        assert!(pos.may(RecordInteractions) && !pos.may(ReadCustomers));
        assert!(!reader.may(RecordInteractions) && !pos.may(SetCustomerTier));
        assert!(reader.may(ReadCustomers) && !reader.may(WriteCustomers));
        assert!(writer.may(WriteCustomers) && !writer.may(ReadCustomers));
        let listener = principal(Role::Partner, vec![Scope::EventsSubscribe]);
        assert!(staff.may(SubscribeEvents) && listener.may(SubscribeEvents));
        assert!(!reader.may(SubscribeEvents) && !listener.may(ReadCustomers));
        assert!(customer.may_read_customer(Uuid::nil()));
        assert!(!customer.may_read_customer(Uuid::now_v7()));
        let integrator = principal(Role::Partner, vec![Scope::WebhooksManage]);
        assert!(integrator.may(ManageWebhooks) && !integrator.may(ReadCustomers));
        assert!(!staff.may(ManageWebhooks) && !reader.may(ManageWebhooks));
        assert!(staff.may(ReadCampaigns) && !staff.may(ManageCampaigns));
        assert!(!reader.may(ReadCampaigns) && !integrator.may(ManageCampaigns));
    }
}
