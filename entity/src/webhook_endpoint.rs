//! A partner's HTTP endpoint that receives program events (Standard Webhooks).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoint")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives (`*`: all), a JSON array of strings.
    pub events: Json,
    pub enabled: bool,
    /// Why the server disabled it (failing for too long); `None` when enabled, or
    /// disabled by hand.
    pub disabled_reason: Option<String>,
    /// The `sub` of the token that registered it: a partner manages only its own.
    pub owner: String,
    /// The role of that token (`admin` or `partner`): a partner whose `sub` happens to
    /// equal an admin's does not own the admin's endpoints.
    pub owner_role: String,
    /// Whether the owner may read customers' personal data: without it, payloads carry
    /// ids, `externalRef` and the event's own fields only.
    pub owner_reads_customers: bool,
    /// `whsec_<base64>`: signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, which also signs until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    /// Since when every attempt has failed (`None` after any success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
