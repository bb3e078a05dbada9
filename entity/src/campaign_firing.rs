//! One firing of a campaign for one customer and one cause (an interaction, a tier
//! change, a birthday's year…): the log that makes a cause fire once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_firing")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub customer_id: Uuid,
    /// What fired it, e.g. `interaction:<id>`, `tier:<change id>`, `birthday:<year>`.
    pub cause: String,
    /// The points it awarded.
    pub points: i64,
    pub fired_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
