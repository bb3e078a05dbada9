//! `POST /graphql` and `GET /graphql` (queries only; GraphiQL for browsers), as
//! GraphQL over HTTP describes them: the response's media type and its status for a
//! request that fails before execution follow the client's `Accept` (`media`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use tracing::Instrument as _;

use super::AppState;
use super::media::{ResponseMedia, is_json_body};
use crate::auth::authenticate;
use crate::domain::DomainError;
use crate::graphql::error::ensure_codes;
use crate::service::persisted::{self, Refusal};
use async_graphql::parser::types::OperationType;

/// A GraphQL response carrying one error and no data.
fn error_response(media: ResponseMedia, status: StatusCode, error: DomainError) -> Response {
    coded_response(media, status, error.code(), &error.to_string())
}

/// The response to a request that failed before execution: 200 as `application/json`,
/// 400 as `application/graphql-response+json`.
fn request_error(media: ResponseMedia, error: DomainError) -> Response {
    error_response(media, media.request_error_status(), error)
}

/// A GraphQL response carrying one error with `code` and no data.
fn coded_response(media: ResponseMedia, status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    json_response(media, status, &body)
}

fn json_response(media: ResponseMedia, status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Which operations a transport may run: GET must not change anything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Any,
    QueriesOnly,
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    mut request: async_graphql::Request,
    allowed: Allowed,
) -> Response {
    let media = ResponseMedia::negotiate(headers);
    // A request that names a kept document by its hash alone is looked up once its
    // caller is known and within its rate; any other is checked before authentication:
    // a hostile document must cost nothing, whoever sends it.
    let hash_only = persisted::is_hash_only(&request);
    let mut persisted = persisted::Resolved::default();
    if !hash_only {
        persisted = match resolve_and_check(state, media, &mut request, allowed).await {
            Ok(resolved) => resolved,
            Err(response) => return response,
        };
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match authenticate(&state.keys, &state.db, authorization).await {
        Ok(principal) => principal,
        Err(error) => return error_response(media, StatusCode::UNAUTHORIZED, error),
    };
    if let Err(wait) = state.rate_limiter.take(&principal) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = coded_response(
            media,
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &format!("too many requests from this caller; retry in {seconds} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return response;
    }
    if hash_only {
        persisted = match resolve_and_check(state, media, &mut request, allowed).await {
            Ok(resolved) => resolved,
            Err(response) => return response,
        };
    }
    name_the_operation(&mut request);
    let remember = match persisted::admit(
        &state.db,
        state.limits.trusted_documents,
        &principal,
        &request,
        persisted,
    )
    .await
    {
        Ok(remember) => remember,
        Err(error) => {
            let status = match error {
                DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return error_response(media, status, error);
        }
    };
    let request = crate::graphql::prepare(request, principal, &state.db);
    // The operation runs to its end even when the client goes away. Dropped halfway, it
    // would drop its database work mid-statement: a mutation may be committed or not
    // depending on the instant, and a `BEGIN` cancelled in flight leaves its pooled
    // connection inside a transaction sqlx does not know about (the bench's aborted
    // requests showed it as "there is already a transaction in progress").
    let schema = state.schema.clone();
    // In the request's span, so that what the operation logs names the request.
    let operation = tokio::spawn(
        async move { schema.execute(request).await }.instrument(tracing::Span::current()),
    );
    let timeout = state.limits.request_timeout;
    let mut response = match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            tracing::error!(%error, "a GraphQL operation failed");
            let error = DomainError::Internal(anyhow::anyhow!("{error}"));
            return error_response(media, StatusCode::INTERNAL_SERVER_ERROR, error);
        }
        // The operation still runs to its end (see above); the client is told now.
        Err(_) => {
            return coded_response(
                media,
                StatusCode::SERVICE_UNAVAILABLE,
                "TIMEOUT",
                &format!(
                    "the request took longer than {} s (REQUEST_TIMEOUT); a mutation may still complete: \
                     retry it with the same idempotency key",
                    timeout.as_secs_f64()
                ),
            );
        }
    };
    ensure_codes(&mut response);
    // A document sent with its hash is kept once it has run: one that does not parse or
    // validate is not.
    if let Some(document) = remember
        && !failed_before_execution(&response)
    {
        let keep = state.limits.persisted_queries_max;
        if let Err(error) = persisted::remember(&state.db, document, keep).await {
            tracing::warn!(%error, "keeping a persisted query failed");
        }
    }
    within_size(media, &response, state.limits.max_response_bytes)
}

/// Fills in a persisted document, then the checks every document passes before it runs:
/// the limits on its text, and no mutation over GET.
async fn resolve_and_check(
    state: &AppState,
    media: ResponseMedia,
    request: &mut async_graphql::Request,
    allowed: Allowed,
) -> Result<persisted::Resolved, Response> {
    let resolved = match persisted::resolve(&state.db, request).await {
        Ok(resolved) => resolved,
        Err(Refusal::NotFound) => {
            // Apollo's clients send the document with its hash on this answer.
            return Err(coded_response(
                media,
                media.request_error_status(),
                persisted::NOT_FOUND_CODE,
                persisted::NOT_FOUND,
            ));
        }
        Err(Refusal::Invalid(error)) => return Err(request_error(media, error)),
    };
    if let Err(error) = state.limits.check_request(request) {
        return Err(request_error(media, error));
    }
    if allowed == Allowed::QueriesOnly
        && crate::graphql::operation_type(request).is_some_and(|ty| ty != OperationType::Query)
    {
        return Err(error_response(
            media,
            StatusCode::METHOD_NOT_ALLOWED,
            DomainError::bad_input(
                "query",
                "only queries may be sent with GET; use POST for mutations",
            ),
        ));
    }
    Ok(resolved)
}

/// Names the request's span (and its trace) by the operation it runs.
fn name_the_operation(request: &mut async_graphql::Request) {
    let span = tracing::Span::current();
    let kind = match crate::graphql::operation_type(request) {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => return,
    };
    span.record("graphql.operation.type", kind);
    let name = match &request.operation_name {
        Some(name) => {
            span.record("graphql.operation.name", name.as_str());
            format!("{kind} {name}")
        }
        None => kind.to_owned(),
    };
    crate::telemetry::rename(&span, name);
}

/// Whether a response is to a request that failed before execution: it did not parse or
/// validate, or its variables did not coerce (errors without a path, and no data).
fn failed_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// A GraphQL request in a JSON body. The body is read and parsed here, not by an
/// extractor, so that every way it can be wrong — too large, not JSON, nested past
/// serde's limit, a batch — is answered as GraphQL JSON with a code.
pub async fn post_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let media = ResponseMedia::negotiate(&headers);
    if !is_json_body(&headers) {
        return error_response(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DomainError::bad_input(
                "content-type",
                "send the request as Content-Type: application/json (in UTF-8)",
            ),
        );
    }
    let max_body = state.limits.max_body_bytes;
    let too_large = || {
        let mut response = error_response(
            media,
            StatusCode::PAYLOAD_TOO_LARGE,
            DomainError::bad_input(
                "body",
                format!(
                    "the request body is larger than {max_body} bytes (MAX_BODY_BYTES), or was cut off"
                ),
            ),
        );
        // The rest of the body is not read: the connection cannot carry another request.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        response
    };
    // An announced length over the limit is refused before a byte of the body is read.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > max_body as u64) {
        return too_large();
    }
    let read = axum::body::to_bytes(body, max_body);
    let bytes = match tokio::time::timeout(state.limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return coded_response(
                media,
                StatusCode::REQUEST_TIMEOUT,
                "BAD_USER_INPUT",
                "the request body did not arrive in time (BODY_READ_TIMEOUT)",
            );
        }
    };
    match parse_body(&bytes) {
        Ok(request) => execute(&state, &headers, request, Allowed::Any).await,
        Err(error) => request_error(media, error),
    }
}

/// The request a POST body holds: one JSON object with `query` and optionally
/// `variables` and `operationName`.
fn parse_body(bytes: &[u8]) -> Result<async_graphql::Request, DomainError> {
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(DomainError::bad_input(
            "body",
            "batched requests are not supported: send one operation per request",
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        DomainError::bad_input(
            "body",
            format!(
                "expected a JSON object with \"query\" (and optionally \"variables\" and \"operationName\"): {error}"
            ),
        )
    })
}

/// Any other method on `/graphql`.
pub async fn other_method(headers: HeaderMap) -> Response {
    error_response(
        ResponseMedia::negotiate(&headers),
        StatusCode::METHOD_NOT_ALLOWED,
        DomainError::bad_input("method", "use POST, or GET for queries"),
    )
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
        return super::graphiql::page().into_response();
    }
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(mut request) => {
            // The parser reads `operation_name`; GraphQL over HTTP says `operationName`.
            if request.operation_name.is_none() {
                request.operation_name = operation_name_of(&query);
            }
            request
        }
        Err(error) => {
            return request_error(
                ResponseMedia::negotiate(&headers),
                DomainError::bad_input("query", error.to_string()),
            );
        }
    };
    execute(&state, &headers, request, Allowed::QueriesOnly).await
}

/// The `operationName` parameter of a query string.
fn operation_name_of(query: &str) -> Option<String> {
    use std::collections::HashMap;
    let uri: axum::http::Uri = format!("/graphql?{query}").parse().ok()?;
    let axum::extract::Query(mut params) =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri).ok()?;
    params
        .remove("operationName")
        .filter(|name| !name.is_empty())
}

/// The response as JSON, or one `BAD_USER_INPUT` error when it is larger than `limit`
/// bytes. The cost limit bounds what a query reads; this bounds what it writes (large
/// `attributes` times many aliases). Serialised once, here, rather than by
/// `GraphQLResponse`, so that the size is known before anything is sent.
///
/// A request that failed before execution (it did not parse or validate, or its
/// variables did not coerce: errors without a path, and no data) is answered without a
/// `data` entry, with the status `media` gives such a failure.
fn within_size(media: ResponseMedia, response: &async_graphql::Response, limit: usize) -> Response {
    let failed_before_execution = failed_before_execution(response);
    let mut body = match serde_json::to_value(response) {
        Ok(body) => body,
        Err(error) => {
            let error = DomainError::Internal(anyhow::anyhow!("serialising a response: {error}"));
            return error_response(media, StatusCode::INTERNAL_SERVER_ERROR, error);
        }
    };
    let status = if failed_before_execution {
        if let Some(body) = body.as_object_mut() {
            body.remove("data");
        }
        media.request_error_status()
    } else {
        StatusCode::OK
    };
    let body = body.to_string();
    if body.len() > limit {
        return request_error(
            media,
            DomainError::bad_input(
                "query",
                format!(
                    "the response would be more than {limit} bytes (MAX_RESPONSE_BYTES): ask for fewer fields or smaller pages"
                ),
            ),
        );
    }
    let mut http = (status, body).into_response();
    http.headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    http.headers_mut().extend(response.http_headers.clone());
    http
}
