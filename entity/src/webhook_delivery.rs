//! One event for one endpoint, and where its delivery stands.

use sea_orm::entity::prelude::*;

use crate::enums::WebhookDeliveryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The `webhook-id` header: the outbox event's id, the same on every attempt (and
    /// unique per endpoint, so that replicas fanning out one event make one delivery).
    pub event_id: Uuid,
    pub event_type: String,
    /// The body's `data`, as the endpoint's owner may see it.
    pub payload: Json,
    /// When the event happened: the body's `timestamp`.
    pub occurred_at: DateTimeUtc,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// When the next attempt is due (`None` once SUCCEEDED or FAILED).
    pub next_attempt_at: Option<DateTimeUtc>,
    /// A replica sending an attempt holds it until then; one that dies mid-attempt
    /// leaves it to be claimed again afterwards.
    pub claimed_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
