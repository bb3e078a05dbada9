//! A campaign: an earning rule or automation that fires on a trigger and acts on the
//! customer (`api::domain::campaign` holds its rules).

use sea_orm::entity::prelude::*;

use crate::enums::{CampaignStatus, CampaignTriggerKind};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    /// The trigger's kind, also inside `trigger`: the write paths look campaigns up by it.
    pub trigger_kind: CampaignTriggerKind,
    /// The trigger, as `api::domain::campaign::Trigger` serialises it.
    pub trigger: Json,
    /// A segment rule the customer must match when the trigger fires.
    pub condition: Option<Json>,
    /// The actions, as `api::domain::campaign::Action`s serialise.
    pub actions: Json,
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub limit_per_customer: Option<i32>,
    pub budget_points: Option<i64>,
    /// Points awarded against the budget, kept under the campaign's row lock (only for
    /// a campaign with a budget).
    pub budget_spent: i64,
    /// When a firing first found the budget too small: the campaign awards nothing since.
    pub budget_exhausted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
