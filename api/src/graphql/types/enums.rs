//! GraphQL enums, each the public face of an entity enum.

use async_graphql::Enum;

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::CustomerKind")]
pub enum CustomerKind {
    Individual,
    Business,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::LifecycleStage")]
pub enum LifecycleStage {
    Prospect,
    New,
    Growing,
    AtRisk,
    Churned,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::TierChangeReason")]
pub enum TierChangeReason {
    Created,
    Interaction,
    Evaluation,
    Manual,
    /// Another member was merged into this one, which kept the higher of the two tiers.
    Merge,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::AbcClass")]
pub enum AbcClass {
    A,
    B,
    C,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::RfmSegment")]
pub enum RfmSegment {
    Champions,
    Loyal,
    PotentialLoyalist,
    NewCustomers,
    Promising,
    NeedAttention,
    AboutToSleep,
    AtRisk,
    CannotLose,
    Hibernating,
    Lost,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Staff,
    Partner,
    Customer,
}

impl From<crate::auth::Role> for Role {
    fn from(role: crate::auth::Role) -> Self {
        match role {
            crate::auth::Role::Admin => Self::Admin,
            crate::auth::Role::Staff => Self::Staff,
            crate::auth::Role::Partner => Self::Partner,
            crate::auth::Role::Customer => Self::Customer,
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum CustomerOrderField {
    Name,
    CreatedAt,
    Score,
    LifetimeSpend,
    PointsBalance,
    LastPurchaseAt,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::InteractionKind")]
pub enum InteractionKind {
    Purchase,
    Refund,
    ServiceContact,
    Visit,
    Feedback,
    Complaint,
    Survey,
    CampaignResponse,
    Shipment,
    Payment,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::Channel")]
pub enum Channel {
    Store,
    Web,
    Mobile,
    Phone,
    Email,
    Chat,
    Social,
    Partner,
    Other,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::EvaluationStatus")]
pub enum EvaluationStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::PointsEntryKind")]
pub enum PointsEntryKind {
    Earn,
    Redeem,
    Expire,
    Adjust,
    ReferralBonus,
    Reversal,
    BirthdayBonus,
    /// Given by a campaign (`PointsEntry.campaign`).
    CampaignBonus,
    /// Given to another member (`transferPoints`), or moved to a survivor by a merge.
    TransferOut,
    /// Received from another member, with the expiry date the points had there.
    TransferIn,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::ReferralStatus")]
pub enum ReferralStatus {
    Pending,
    Rewarded,
    Rejected,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::SegmentKind")]
pub enum SegmentKind {
    /// Members are the customers its rule matches, always current.
    Dynamic,
    /// Members are added and removed by hand.
    Static,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::WebhookDeliveryStatus")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    Succeeded,
    /// Every attempt used.
    Failed,
}
