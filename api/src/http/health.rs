//! `/healthz`: the process is up. `/readyz`: it can reach its database.

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// A probe must answer quickly: with the database down, a ping could wait for a pooled
/// connection until the pool's acquire timeout.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(PING_TIMEOUT, state.db.ping()).await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) | Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}
