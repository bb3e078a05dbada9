//! One move of a customer between tiers (or its first tier, with reason CREATED).

use sea_orm::entity::prelude::*;

use crate::enums::TierChangeReason;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tier_change")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub from_tier_id: Option<Uuid>,
    pub to_tier_id: Uuid,
    pub reason: TierChangeReason,
    pub score: f64,
    pub note: Option<String>,
    pub evaluation_run_id: Option<Uuid>,
    pub changed_at: DateTimeUtc,
    /// The breakdown of the score that decided the change (`[IndicatorScore]` as JSON),
    /// as it was then; `None` for changes recorded before it was kept.
    pub breakdown: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
