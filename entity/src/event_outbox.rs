//! An event for the outbox's consumers: a ledger entry or a tier change that committed.

use sea_orm::entity::prelude::*;

use crate::enums::EventTopic;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_outbox")]
pub struct Model {
    /// UUID v7: events sort in the order they were written.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub topic: EventTopic,
    /// The customer the event is about; none for an event about no single customer.
    pub customer_id: Option<Uuid>,
    /// The points entry or tier change the event is about.
    pub subject_id: Uuid,
    /// The event's own figures, for events that carry them (a lifecycle change's stages).
    pub payload: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
