//! Enumerations stored as strings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $(#[sea_orm(string_value = $text)] #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The name stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }

            /// The variant stored as `text`, if this version knows it.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(CustomerKind { Individual = "INDIVIDUAL", Business = "BUSINESS" });

string_enum!(LifecycleStage {
    Prospect = "PROSPECT",
    New = "NEW",
    Growing = "GROWING",
    AtRisk = "AT_RISK",
    Churned = "CHURNED",
});

string_enum!(InteractionKind {
    Purchase = "PURCHASE",
    Refund = "REFUND",
    ServiceContact = "SERVICE_CONTACT",
    Visit = "VISIT",
    Feedback = "FEEDBACK",
    Complaint = "COMPLAINT",
    Survey = "SURVEY",
    CampaignResponse = "CAMPAIGN_RESPONSE",
    Shipment = "SHIPMENT",
    Payment = "PAYMENT",
});

string_enum!(Channel {
    Store = "STORE",
    Web = "WEB",
    Mobile = "MOBILE",
    Phone = "PHONE",
    Email = "EMAIL",
    Chat = "CHAT",
    Social = "SOCIAL",
    Partner = "PARTNER",
    Other = "OTHER",
});

string_enum!(TierChangeReason {
    Created = "CREATED",
    Interaction = "INTERACTION",
    Evaluation = "EVALUATION",
    Manual = "MANUAL",
    Merge = "MERGE",
});

string_enum!(PointsEntryKind {
    Earn = "EARN",
    Redeem = "REDEEM",
    Expire = "EXPIRE",
    Adjust = "ADJUST",
    ReferralBonus = "REFERRAL_BONUS",
    Reversal = "REVERSAL",
    BirthdayBonus = "BIRTHDAY_BONUS",
    CampaignBonus = "CAMPAIGN_BONUS",
    TransferOut = "TRANSFER_OUT",
    TransferIn = "TRANSFER_IN",
});

string_enum!(ReferralStatus { Pending = "PENDING", Rewarded = "REWARDED", Rejected = "REJECTED" });

string_enum!(SegmentKind { Dynamic = "DYNAMIC", Static = "STATIC" });

string_enum!(AbcClass { A = "A", B = "B", C = "C" });

string_enum!(RfmSegment {
    Champions = "CHAMPIONS",
    Loyal = "LOYAL",
    PotentialLoyalist = "POTENTIAL_LOYALIST",
    NewCustomers = "NEW_CUSTOMERS",
    Promising = "PROMISING",
    NeedAttention = "NEED_ATTENTION",
    AboutToSleep = "ABOUT_TO_SLEEP",
    AtRisk = "AT_RISK",
    CannotLose = "CANNOT_LOSE",
    Hibernating = "HIBERNATING",
    Lost = "LOST",
});

string_enum!(EvaluationStatus { Running = "RUNNING", Succeeded = "SUCCEEDED", Failed = "FAILED" });

string_enum!(EventTopic {
    TierChanged = "TIER_CHANGED",
    PointsChanged = "POINTS_CHANGED",
    ReferralRewarded = "REFERRAL_REWARDED",
    CustomerErased = "CUSTOMER_ERASED",
    LifecycleChanged = "LIFECYCLE_CHANGED",
    PointsExpiring = "POINTS_EXPIRING",
    CustomerBirthday = "CUSTOMER_BIRTHDAY",
    AutomationFired = "AUTOMATION_FIRED",
    CustomerMerged = "CUSTOMER_MERGED",
});

string_enum!(CampaignStatus { Draft = "DRAFT", Active = "ACTIVE", Paused = "PAUSED", Ended = "ENDED" });

string_enum!(CampaignTriggerKind {
    Interaction = "INTERACTION",
    TierChanged = "TIER_CHANGED",
    EnteredSegment = "ENTERED_SEGMENT",
    LifecycleChanged = "LIFECYCLE_CHANGED",
    PointsExpiring = "POINTS_EXPIRING",
    Birthday = "BIRTHDAY",
    ReferralRewarded = "REFERRAL_REWARDED",
});

string_enum!(WebhookDeliveryStatus { Pending = "PENDING", Succeeded = "SUCCEEDED", Failed = "FAILED" });
