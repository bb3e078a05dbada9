//! A customer: profile, current tier and score, points balance and value metrics.

use sea_orm::entity::prelude::*;

use crate::enums::{AbcClass, CustomerKind, LifecycleStage, RfmSegment};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "customer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub external_ref: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub kind: CustomerKind,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub birthday: Option<Date>,
    pub attributes: Json,
    pub lifecycle_stage: LifecycleStage,
    pub tier_id: Uuid,
    pub score: f64,
    /// Set by the first evaluation run that finds the score below the tier's minimum.
    pub downgrade_marked_at: Option<DateTimeUtc>,
    pub points_balance: i64,
    #[sea_orm(unique)]
    pub referral_code: String,
    pub referred_by_id: Option<Uuid>,
    pub metrics_as_of: DateTimeUtc,
    pub first_purchase_at: Option<DateTimeUtc>,
    pub last_purchase_at: Option<DateTimeUtc>,
    pub purchase_count: i32,
    pub net_spend_e4: i64,
    pub lifetime_spend_e4: i64,
    pub average_order_value_e4: Option<i64>,
    pub engagement_count: i32,
    pub latest_nps: Option<i32>,
    pub rfm_recency: Option<i16>,
    pub rfm_frequency: Option<i16>,
    pub rfm_monetary: Option<i16>,
    pub rfm_segment: Option<RfmSegment>,
    pub abc_class: AbcClass,
    pub outstanding_receivable_e4: i64,
    /// The churn model's history: days with a purchase after the first one (x), and
    /// the first and last purchase day, counted from 1970-01-01 UTC.
    pub repeat_purchase_days: i32,
    pub first_purchase_day: Option<i32>,
    pub last_purchase_day: Option<i32>,
    /// What the repeat purchase days spent (the spend model's mean is this over x).
    pub repeat_spend_e4: i64,
    pub erased_at: Option<DateTimeUtc>,
    /// PURCHASE interactions ever (lifecycle stages count these, not the window's).
    pub lifetime_purchase_count: i32,
    /// Bumped by every write to metrics or tier, so that an evaluation run writes a row
    /// only if nothing changed it since the run read it.
    pub revision: i64,
    /// Set by a manual tier move: live upgrades leave the tier alone until the next run.
    pub tier_held: bool,
    /// When the metrics were last written (wall clock), by a live write or a run. Metrics
    /// written before the latest full run started are true as of that run's `asOf`.
    pub metrics_written_at: Option<DateTimeUtc>,
    /// Points earned but not spendable yet (`pending_points`); not in `points_balance`.
    pub points_pending: i64,
    /// Set when this member was merged into another: the row is a tombstone, and reads
    /// and writes that name it go to the survivor.
    pub merged_into_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
