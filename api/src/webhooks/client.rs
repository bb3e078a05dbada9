//! The outbound HTTP client for deliveries. It follows no redirects (a receiver cannot
//! send Tierwise on to another address), gives each attempt a deadline, reads at most a
//! little of a failure's body, and resolves host names itself so that an address inside
//! the server's network is refused where the connection is made: a name that resolves
//! to 127.0.0.1, or is changed to after it was checked, still cannot be reached.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::Settings;
use crate::domain::webhooks::{check_destination, parse_retry_after};

/// How much of a failed response's body is kept in `lastError`.
const BODY_EXCERPT: usize = 512;

/// What one attempt came to.
#[derive(Debug)]
pub struct Attempt {
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// Why it failed, for `lastError`; `None` on success.
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

pub struct Client {
    http: reqwest::Client,
    allow_http: bool,
    allow_private: bool,
}

impl Client {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect to the destination itself,
            // past the resolver's check.
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("Tierwise-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private,
            }))
            .build()?;
        Ok(Self {
            http,
            allow_http: settings.allow_http,
            allow_private: settings.allow_private,
        })
    }

    /// POSTs `body` to `url` with `headers`.
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Attempt {
        let failed = |error: String| Attempt {
            status: None,
            retry_after: None,
            error: Some(error),
        };
        let url = match reqwest::Url::parse(url) {
            Ok(url) => url,
            Err(error) => return failed(format!("invalid URL: {error}")),
        };
        // Settings may have changed since the endpoint was registered: plain http only
        // while it is allowed now.
        if url.scheme() != "https" && !(url.scheme() == "http" && self.allow_http) {
            return failed(format!(
                "{} is not allowed (WEBHOOK_ALLOW_HTTP is off)",
                url.scheme()
            ));
        }
        // An address written in the URL is not resolved, so it is checked here.
        if let Some(host) = url.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            && let Err(reason) = check_destination(ip, self.allow_private)
        {
            return failed(reason);
        }
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => return failed(describe(&error)),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt {
                status: Some(status.as_u16()),
                retry_after: None,
                error: None,
            };
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let excerpt = excerpt(response).await;
        Attempt {
            status: Some(status.as_u16()),
            retry_after,
            error: Some(if excerpt.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {excerpt}")
            }),
        }
    }
}

/// The start of a response body, read no further than `BODY_EXCERPT` bytes.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(BODY_EXCERPT);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// A transport error in a line, with its causes (reqwest's own message is often just
/// "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves like the system does, then refuses the name if any of its addresses is
/// internal (one public and one private address must not let a retry reach the private
/// one).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &addresses {
                if let Err(reason) = check_destination(address.ip(), allow_private) {
                    // The delivery's `lastError` is its owner's to read: it must not
                    // become a way to look up internal names.
                    tracing::warn!(%host, %reason, "a webhook destination resolves to an internal address");
                    return Err(
                        format!("{host} resolves to an address webhooks may not reach").into(),
                    );
                }
            }
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_is_refused_once_no_longer_allowed() {
        // An endpoint registered while WEBHOOK_ALLOW_HTTP was on is not called over plain
        // http after it was turned off.
        let client = Client::new(&Settings {
            allow_http: false,
            allow_private: true,
            ..Settings::default()
        })
        .unwrap();
        let attempt = client
            .post("http://127.0.0.1:9/hook", &[], Vec::new())
            .await;
        assert!(!attempt.succeeded());
        assert!(attempt.status.is_none(), "no request was made");
        assert!(attempt.error.unwrap().contains("WEBHOOK_ALLOW_HTTP"));
    }
}
