//! A referral: the referee used the referrer's code.

use sea_orm::entity::prelude::*;

use crate::enums::ReferralStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "referral")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub referrer_id: Uuid,
    #[sea_orm(unique)]
    pub referee_id: Uuid,
    pub code: String,
    pub status: ReferralStatus,
    pub referrer_points: i64,
    pub referee_points: i64,
    pub created_at: DateTimeUtc,
    pub rewarded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
