//! `POST /graphql` and `GET /graphql` (queries only; GraphiQL for browsers).

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::auth::{JwtKeys, Principal};
use crate::domain::DomainError;
use crate::graphql::error::ensure_codes;

/// The caller named by an `Authorization: Bearer …` header value.
pub fn authenticate(keys: &JwtKeys, authorization: Option<&str>) -> Result<Principal, DomainError> {
    let value = authorization.ok_or_else(|| {
        DomainError::Unauthenticated("an Authorization: Bearer <token> header is required".into())
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            DomainError::Unauthenticated(
                "the Authorization header must be \"Bearer <token>\"".into(),
            )
        })?;
    keys.verify(token.trim())
}

/// A GraphQL response carrying one error and no data.
fn error_response(status: StatusCode, error: DomainError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }]
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match authenticate(&state.keys, authorization) {
        Ok(principal) => principal,
        Err(error) => return error_response(StatusCode::UNAUTHORIZED, error),
    };
    let request = crate::graphql::prepare(request, principal, &state.db);
    // The operation runs to its end even when the client goes away. Dropped halfway, it
    // would drop its database work mid-statement: a mutation may be committed or not
    // depending on the instant, and a `BEGIN` cancelled in flight leaves its pooled
    // connection inside a transaction sqlx does not know about (the bench's aborted
    // requests showed it as "there is already a transaction in progress").
    let schema = state.schema.clone();
    let mut response = match tokio::spawn(async move { schema.execute(request).await }).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "a GraphQL operation failed");
            let error = DomainError::Internal(anyhow::anyhow!("{error}"));
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, error);
        }
    };
    ensure_codes(&mut response);
    GraphQLResponse::from(response).into_response()
}

pub async fn post_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    execute(&state, &headers, request.into_inner()).await
}

/// GraphiQL for a browser; otherwise a query in the URL. Mutations are refused here:
/// a GET must not change anything.
pub async fn get_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let query = query.unwrap_or_default();
    if wants_html && !query.contains("query=") {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        )
        .into_response();
    }
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                DomainError::bad_input("query", error.to_string()),
            );
        }
    };
    if !is_query_operation(&request) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            DomainError::bad_input(
                "query",
                "only queries may be sent with GET; use POST for mutations",
            ),
        );
    }
    execute(&state, &headers, request).await
}

/// Whether the operation a request would run is a query. Unparseable documents pass, to
/// be answered with the parser's own error.
fn is_query_operation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return true;
    };
    let operation_type = match &document.operations {
        DocumentOperations::Single(operation) => Some(operation.node.ty),
        DocumentOperations::Multiple(operations) => match &request.operation_name {
            Some(name) => operations.get(name.as_str()).map(|o| o.node.ty),
            None => operations.values().next().map(|o| o.node.ty),
        },
    };
    operation_type.is_none_or(|ty| ty == OperationType::Query)
}
