//! Content negotiation for GraphQL over HTTP: which media type a response is sent as,
//! and what that means for its status.
//!
//! - `application/json` (the legacy type, and the answer to `*/*` and to a request
//!   without `Accept`): every well-formed request is answered 200, its errors in the
//!   body, as clients written before the GraphQL-over-HTTP spec expect.
//! - `application/graphql-response+json`: a request that fails before execution (a body
//!   that is not a GraphQL request, a document that does not parse or validate,
//!   variables that do not coerce, a limit) is answered 400 without a `data` entry, so
//!   that a client and the HTTP layer between can tell it from a partial success.
//!
//! Failures that are not the document's — authentication (401), a rate limit (429), a
//! body too large (413) or slow (408), a timeout (503) — keep their own status in both.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMedia {
    Json,
    GraphqlResponse,
}

impl ResponseMedia {
    /// The type the request's `Accept` header prefers: the higher quality of the two
    /// types Tierwise serves, the one listed first on a tie; `application/json` for
    /// wildcards, for a missing header and for one that names neither.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Self::Json;
        };
        let ranges: Vec<(String, f32)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let quality = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media, quality)
            })
            .collect();
        // A type the client names with q=0 is refused, whatever wildcard it also sends.
        let refused = |name: &str| ranges.iter().any(|(m, q)| m == name && *q <= 0.0);
        let mut best: Option<(f32, Self)> = None;
        for (media, quality) in &ranges {
            let served = match media.as_str() {
                GRAPHQL_RESPONSE => Self::GraphqlResponse,
                JSON => Self::Json,
                "application/*" | "*/*" if !refused(JSON) => Self::Json,
                "application/*" | "*/*" if !refused(GRAPHQL_RESPONSE) => Self::GraphqlResponse,
                _ => continue,
            };
            if *quality > 0.0 && best.is_none_or(|(q, _)| *quality > q) {
                best = Some((*quality, served));
            }
        }
        best.map_or(Self::Json, |(_, media)| media)
    }

    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => JSON,
            Self::GraphqlResponse => GRAPHQL_RESPONSE,
        })
    }

    /// The status of a response to a request that failed before execution.
    pub fn request_error_status(self) -> StatusCode {
        match self {
            Self::Json => StatusCode::OK,
            Self::GraphqlResponse => StatusCode::BAD_REQUEST,
        }
    }
}

/// Whether a POST body is declared as JSON (`application/json`, in UTF-8 if a charset is
/// named): the only request type GraphQL over HTTP requires, and the only one served.
pub fn is_json_body(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case(JSON)
        && parts.all(|param| {
            let param = param.trim();
            match param.split_once('=') {
                Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                    let charset = charset.trim().trim_matches('"');
                    charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
                }
                _ => true,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> ResponseMedia {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        ResponseMedia::negotiate(&headers)
    }

    #[test]
    fn accept_chooses_the_response_type() {
        use ResponseMedia::*;
        assert_eq!(ResponseMedia::negotiate(&HeaderMap::new()), Json);
        assert_eq!(accept("application/json"), Json);
        assert_eq!(accept("*/*"), Json);
        assert_eq!(accept("application/graphql-response+json"), GraphqlResponse);
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            GraphqlResponse
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            Json
        );
        assert_eq!(
            accept("application/json;q=0.5, application/graphql-response+json"),
            GraphqlResponse
        );
        assert_eq!(accept("application/graphql-response+json;q=0, */*"), Json);
        assert_eq!(accept("application/json;q=0, */*"), GraphqlResponse);
        assert_eq!(accept("text/html"), Json);
    }

    #[test]
    fn only_json_bodies_in_utf8_are_served() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_json_body(&headers)
        };
        assert!(!is_json_body(&HeaderMap::new()));
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=UTF-8"));
        assert!(with("application/json;charset=\"utf-8\""));
        assert!(!with("application/json; charset=latin1"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
    }
}
