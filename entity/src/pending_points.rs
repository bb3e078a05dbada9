//! Points a purchase earned that are not spendable yet: its return window is open. The
//! row goes when they activate (move into the balance) at `available_at`; a refund inside
//! the window takes its points from here instead of the balance.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_points")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    /// The ledger entry that credited them (an `EARN`, or the `TRANSFER_IN` that moved
    /// them at a merge): `pointsChanged` names it when they activate.
    pub entry_id: Uuid,
    /// The order of the purchase that earned them, for its refunds.
    pub order_ref: Option<String>,
    /// What is still pending (a refund inside the window lowers it).
    pub points: i64,
    pub available_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
