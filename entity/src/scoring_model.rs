//! The scoring model: one row, id 1. `bands` holds `[{indicator, bands: [{threshold, points}]}]`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scoring_model")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub window_days: i32,
    pub downgrade_grace_days: i32,
    pub weight_recency: f64,
    pub weight_frequency: f64,
    pub weight_monetary: f64,
    pub weight_engagement: f64,
    pub weight_nps: f64,
    pub bands: Json,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
