//! Internal events: written to the outbox in the transaction of the change they announce,
//! so that the live-events relay publishes exactly what committed, once.

use entity::enums::EventTopic;
use entity::event_outbox;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use super::now;
use crate::domain::DomainResult;

/// Announces that `subject_id` (a ledger entry or a tier change) of `customer_id` happened.
pub async fn emit(
    db: &impl ConnectionTrait,
    topic: EventTopic,
    customer_id: Uuid,
    subject_id: Uuid,
) -> DomainResult<()> {
    emit_many(db, topic, std::iter::once((customer_id, subject_id))).await
}

/// `emit` for many subjects at once (an evaluation batch), in one statement.
pub async fn emit_many(
    db: &impl ConnectionTrait,
    topic: EventTopic,
    subjects: impl IntoIterator<Item = (Uuid, Uuid)>,
) -> DomainResult<()> {
    let at = now();
    let rows: Vec<event_outbox::ActiveModel> = subjects
        .into_iter()
        .map(|(customer_id, subject_id)| event_outbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            topic: Set(topic),
            customer_id: Set(customer_id),
            subject_id: Set(subject_id),
            created_at: Set(at),
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    event_outbox::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}
