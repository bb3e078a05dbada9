//! Partner webhooks: endpoints, one delivery row per event and endpoint, and the outbox
//! position of each durable consumer (the webhook fan-out keeps its place across
//! restarts, unlike the live relay).

use sea_orm_migration::{prelude::*, schema::*};

use crate::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoint::Table)
                    .col(uuid(WebhookEndpoint::Id).primary_key())
                    .col(string_len(WebhookEndpoint::Url, 2048))
                    .col(text_null(WebhookEndpoint::Description))
                    .col(json(WebhookEndpoint::Events))
                    .col(boolean(WebhookEndpoint::Enabled))
                    .col(text_null(WebhookEndpoint::DisabledReason))
                    .col(string_len(WebhookEndpoint::Owner, 256))
                    .col(string_len(WebhookEndpoint::OwnerRole, 16))
                    .col(boolean(WebhookEndpoint::OwnerReadsCustomers))
                    .col(string_len(WebhookEndpoint::Secret, 128))
                    .col(string_len_null(WebhookEndpoint::PreviousSecret, 128))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoint::PreviousSecretUntil,
                    ))
                    .col(timestamp_with_time_zone_null(WebhookEndpoint::FailingSince))
                    .col(timestamp_with_time_zone(WebhookEndpoint::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoint::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(WebhookEndpoint::Table, &[WebhookEndpoint::Owner]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(uuid(WebhookDelivery::Id).primary_key())
                    .col(uuid(WebhookDelivery::EndpointId))
                    .col(uuid(WebhookDelivery::EventId))
                    .col(string_len(WebhookDelivery::EventType, 64))
                    .col(json(WebhookDelivery::Payload))
                    .col(timestamp_with_time_zone(WebhookDelivery::OccurredAt))
                    .col(string_len(WebhookDelivery::Status, 16))
                    .col(integer(WebhookDelivery::Attempts))
                    .col(integer_null(WebhookDelivery::LastStatusCode))
                    .col(text_null(WebhookDelivery::LastError))
                    .col(timestamp_with_time_zone_null(
                        WebhookDelivery::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::ClaimedUntil))
                    .col(timestamp_with_time_zone(WebhookDelivery::CreatedAt))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::DeliveredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDelivery::Table, WebhookDelivery::EndpointId)
                            .to(WebhookEndpoint::Table, WebhookEndpoint::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One delivery per event and endpoint, however many replicas fan the event out.
        manager
            .create_index(
                index(
                    WebhookDelivery::Table,
                    &[WebhookDelivery::EndpointId, WebhookDelivery::EventId],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        // The dispatcher's claim: due deliveries, soonest first.
        manager
            .create_index(index(
                WebhookDelivery::Table,
                &[WebhookDelivery::Status, WebhookDelivery::NextAttemptAt],
            ))
            .await?;
        // An endpoint's deliveries, newest first; and pruning by age.
        manager
            .create_index(index(
                WebhookDelivery::Table,
                &[
                    WebhookDelivery::EndpointId,
                    WebhookDelivery::CreatedAt,
                    WebhookDelivery::Id,
                ],
            ))
            .await?;
        manager
            .create_index(index(WebhookDelivery::Table, &[WebhookDelivery::CreatedAt]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboxCursor::Table)
                    .col(string_len(OutboxCursor::Consumer, 64).primary_key())
                    .col(big_integer(OutboxCursor::Seq))
                    .col(uuid(OutboxCursor::EventId))
                    .col(timestamp_with_time_zone(OutboxCursor::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox_cursor", "webhook_delivery", "webhook_endpoint"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum WebhookEndpoint {
    Table,
    Id,
    Url,
    Description,
    Events,
    Enabled,
    DisabledReason,
    Owner,
    OwnerRole,
    OwnerReadsCustomers,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    FailingSince,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum WebhookDelivery {
    Table,
    Id,
    EndpointId,
    EventId,
    EventType,
    Payload,
    OccurredAt,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    NextAttemptAt,
    ClaimedUntil,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden, Clone)]
enum OutboxCursor {
    Table,
    Consumer,
    Seq,
    EventId,
    UpdatedAt,
}
