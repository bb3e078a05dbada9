//! Partner webhooks: program events delivered over HTTP, signed (Standard Webhooks),
//! retried, at least once, across replicas.
//!
//! - `fanout`: the outbox consumer that turns each committed event into one delivery row
//!   per subscribed endpoint, in the transaction that moves its saved position; replicas
//!   fanning out the same event make one delivery (a unique key), and a restart resumes
//!   where the last one stopped. Nothing here runs in a writer's transaction: a slow or
//!   failing partner cannot slow the program's writes.
//! - `payload`: what a delivery carries, as the endpoint's owner may see it.
//! - `dispatcher`: claims due deliveries (`FOR UPDATE SKIP LOCKED` on Postgres), sends one
//!   attempt each, and records the outcome and the next attempt.
//! - `client`: the outbound HTTP client: no redirects, a deadline, and a resolver that
//!   refuses internal addresses at connect time.

pub mod client;
pub mod dispatcher;
pub mod fanout;
pub mod payload;

use std::sync::Arc;
use std::time::Duration;

/// What operators set (`WEBHOOK_*`, README "Webhooks").
#[derive(Debug, Clone)]
pub struct Settings {
    /// Endpoints may be plain `http` (`WEBHOOK_ALLOW_HTTP`); tests and intranets.
    pub allow_http: bool,
    /// Destinations may be internal addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// The waits before each retry (`WEBHOOK_RETRY_SCHEDULE`).
    pub retry_schedule: Vec<Duration>,
    /// How long an attempt may take before it counts as failed (`WEBHOOK_TIMEOUT`).
    pub timeout: Duration,
    /// An endpoint failing without a success for this long is disabled
    /// (`WEBHOOK_DISABLE_AFTER`).
    pub disable_after: Duration,
    /// Deliveries are deleted this long after they were created (`WEBHOOK_RETENTION`).
    pub retention: Duration,
    /// How often a dispatcher looks for due deliveries when nothing woke it.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private: false,
            retry_schedule: crate::domain::webhooks::default_retry_schedule(),
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 86_400),
            retention: Duration::from_secs(30 * 86_400),
            poll: Duration::from_secs(1),
        }
    }
}

/// Wakes this server's dispatcher when a delivery became due here (fanned out, a test
/// event, a redelivery); other replicas' dispatchers find it at their next poll.
#[derive(Clone, Default)]
pub struct Wakeup(pub Arc<tokio::sync::Notify>);

impl Wakeup {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}
