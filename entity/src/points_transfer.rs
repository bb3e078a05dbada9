//! Points one member gave another (`transferPoints`), or a merged member's points moved
//! to its survivor (`merge`). The ledger holds the `TRANSFER_OUT` and `TRANSFER_IN`
//! entries, which name it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "points_transfer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub from_customer_id: Uuid,
    pub to_customer_id: Uuid,
    pub points: i64,
    pub note: Option<String>,
    /// Whether it moved a merged member's points (these count against no monthly limit).
    pub merge: bool,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
