//! HTTP routes: GraphQL over HTTP and WebSocket, health, readiness and metrics.

pub mod expansion;
pub mod graphiql;
pub mod graphql;
pub mod health;
mod media;
pub mod metrics;
pub mod query_text;
pub mod quota;
pub mod rate_limit;
pub mod server;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
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
    pub feeds: crate::live::feeds::Feeds,
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
        .route(
            &format!("{}/{{file}}", graphiql::ASSETS),
            get(graphiql::asset),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .layer(axum::middleware::from_fn(metrics::track))
        // `/graphql` reads its body itself, within `MAX_BODY_BYTES`, to answer an
        // oversized one as GraphQL JSON; this bounds any other extractor.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Every request carries an id (the client's `x-request-id`, or a new UUID), in
        // the span every log line of the request is written in, and in the response.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .with_state(state)
}

/// The longest `x-request-id` a client may name its request with.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// A client's `x-request-id` goes into every log line of its request: one longer than
/// `MAX_REQUEST_ID_BYTES`, or with characters other than letters, digits and `-_.:`, is
/// dropped, and the request gets a new id instead.
async fn drop_unusable_request_id(
    mut request: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let usable = |value: &axum::http::HeaderValue| {
        value.len() <= MAX_REQUEST_ID_BYTES
            && value
                .as_bytes()
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(byte))
    };
    let headers = request.headers_mut();
    if !headers.get_all(REQUEST_ID).iter().all(usable) {
        headers.remove(REQUEST_ID);
    }
    request
}

const REQUEST_ID: &str = "x-request-id";

/// The span of one HTTP request: its method, path and id.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // Probes (health, readiness, metrics scrapes) come every few seconds: neither logged
    // nor traced at the default level.
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return tracing::debug_span!("probe", path = %request.uri().path(), request_id = %id);
    }
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        graphql.operation.name = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}
