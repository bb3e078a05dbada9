//! One entry of the append-only points ledger.

use sea_orm::entity::prelude::*;

use crate::enums::PointsEntryKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "points_entry")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub delta: i64,
    pub balance_after: i64,
    pub kind: PointsEntryKind,
    pub reason: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub interaction_id: Option<Uuid>,
    /// The campaign a `CAMPAIGN_BONUS` entry came from.
    pub campaign_id: Option<Uuid>,
    /// When its points become (or became) spendable, for an entry written while they
    /// were pending; `None`: at once.
    pub available_at: Option<DateTimeUtc>,
    /// The transfer a `TRANSFER_OUT` or `TRANSFER_IN` entry belongs to.
    pub transfer_id: Option<Uuid>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
