//! HTTP routes: GraphQL over HTTP and WebSocket, health, readiness and metrics.

pub mod expansion;
pub mod feeds;
pub mod graphql;
pub mod health;
pub mod metrics;
pub mod query_text;
pub mod quota;
pub mod rate_limit;
pub mod server;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::auth::JwtKeys;
use crate::graphql::AppSchema;
use crate::store::Db;

/// The largest request body accepted by default (`MAX_BODY_BYTES`): room for
/// `recordInteractions` with 1000 items.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What every handler shares. Nothing here is state another replica would need: the
/// database holds all of that.
#[derive(Clone)]
pub struct AppState {
    pub schema: AppSchema,
    pub db: Db,
    pub keys: JwtKeys,
    pub feeds: feeds::Feeds,
    /// Live operations per caller, over all its sockets.
    pub subscriptions: quota::Quota,
    /// Open WebSockets per caller.
    pub sockets: quota::Quota,
    /// Requests per caller.
    pub rate_limiter: std::sync::Arc<rate_limit::RateLimiter>,
    pub limits: crate::config::Limits,
}

pub fn router(state: AppState) -> Router {
    metrics::install();
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route(
            "/graphql",
            get(graphql::get_handler)
                .post(graphql::post_handler)
                .fallback(graphql::other_method),
        )
        .route("/graphql/ws", get(ws::handler))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .layer(axum::middleware::from_fn(metrics::track))
        // `/graphql` reads its body itself, within `MAX_BODY_BYTES`, to answer an
        // oversized one as GraphQL JSON; this bounds any other extractor.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
