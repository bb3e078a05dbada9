//! One evaluation run: what it was asked to do and what it did.

use sea_orm::entity::prelude::*;

use crate::enums::EvaluationStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "evaluation_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub status: EvaluationStatus,
    pub as_of: DateTimeUtc,
    /// The customers the run was limited to, as a JSON array of ids; `None`: everyone.
    pub customer_ids: Option<Json>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub customers_evaluated: i32,
    pub upgrades: i32,
    pub downgrades: i32,
    pub points_expired: i64,
    /// The churn and spend models the run fitted (`domain::analytics::churn`).
    pub churn_model: Option<Json>,
    /// Why the run fitted no model, when it did not.
    pub churn_model_note: Option<String>,
    pub error: Option<String>,
    /// Customers the run could not process (their data is out of any valid range), and
    /// the first of their ids as a JSON array.
    pub skipped_customers: i32,
    pub skipped_customer_ids: Option<Json>,
    pub requested_by: String,
    /// Refreshed while the run works; a RUNNING run whose heartbeat stopped was abandoned.
    pub heartbeat_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
