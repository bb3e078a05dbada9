//! `GET /graphql/ws`: subscriptions over `graphql-transport-ws` and the legacy
//! `graphql-ws`, authenticated by the token in the `connection_init` payload.

use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use futures_util::FutureExt as _;

use super::AppState;
use super::graphql::authenticate;

pub async fn handler(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let keys = state.keys.clone();
            let db = state.db.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .keepalive_timeout(Duration::from_secs(30))
                .on_connection_init(move |payload: serde_json::Value| {
                    async move {
                        let authorization = payload
                            .get("Authorization")
                            .or_else(|| payload.get("authorization"))
                            .and_then(|v| v.as_str());
                        let principal = authenticate(&keys, authorization)
                            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                        let mut data = Data::default();
                        data.insert(principal);
                        data.insert(crate::graphql::loaders::per_request(&db));
                        Ok(data)
                    }
                    .boxed()
                })
                .serve()
        })
}
