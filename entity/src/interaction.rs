//! Something a customer did: a purchase, refund, visit, survey answer, shipment…

use sea_orm::entity::prelude::*;

use crate::enums::{Channel, InteractionKind};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "interaction")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: InteractionKind,
    pub occurred_at: DateTimeUtc,
    pub amount_e4: Option<i64>,
    pub currency: Option<String>,
    pub channel: Option<Channel>,
    pub rating: Option<i32>,
    pub note: Option<String>,
    pub order_ref: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
