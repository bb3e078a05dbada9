//! The program's settings: one row, id 1.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "program_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub base_currency: String,
    pub points_per_currency_unit_e4: i64,
    pub points_expiry_days: i32,
    pub birthday_bonus: i64,
    pub referrer_bonus: i64,
    pub referee_bonus: i64,
    pub max_rewarded_referrals_per_year: i32,
    pub at_risk_days: i32,
    pub churn_days: i32,
    /// The largest amount one interaction may carry, in ten-thousandths.
    pub max_interaction_amount_e4: i64,
    /// How many days before a lot of points expires its owner is reminded
    /// (`points.expiring`); 0: never.
    pub points_expiry_reminder_days: i32,
    /// The IANA time zone campaigns' days of the week are counted in.
    pub time_zone: String,
    /// Days a purchase's points stay pending (not spendable) after it; 0: none.
    pub pending_days: i32,
    /// `ROLLING`, `END_OF_YEAR` or `NEVER`.
    pub points_expiry_policy: String,
    /// Under `END_OF_YEAR`: points earned in year Y expire at the end of Y + this.
    pub points_expiry_years: i32,
    pub transfers_enabled: bool,
    /// The most points one member may transfer out in a calendar month; `None`: no limit.
    pub max_transfer_per_month: Option<i64>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
