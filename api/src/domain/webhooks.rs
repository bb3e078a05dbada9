//! The rules of partner webhooks, free of HTTP and SQL: which event types exist, what an
//! endpoint's URL may be, where a destination address is refused, when a failed
//! delivery is tried again, and how a delivery is signed (Standard Webhooks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use entity::enums::EventTopic;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{DomainError, DomainResult};

/// Subscribes an endpoint to every event type, including those added later.
pub const ALL_EVENTS: &str = "*";
/// The event `sendTestWebhook` sends.
pub const TEST_EVENT: &str = "webhook.test";

/// The webhook event type of an outbox topic. Exhaustive: a new topic must say what
/// partners receive for it.
pub fn event_type(topic: EventTopic) -> &'static str {
    match topic {
        EventTopic::TierChanged => "customer.tier_changed",
        EventTopic::PointsChanged => "points.changed",
        EventTopic::ReferralRewarded => "referral.rewarded",
        EventTopic::CustomerErased => "customer.erased",
        EventTopic::LifecycleChanged => "customer.lifecycle_changed",
        EventTopic::PointsExpiring => "points.expiring",
        EventTopic::CustomerBirthday => "customer.birthday",
        EventTopic::AutomationFired => "automation.fired",
        EventTopic::CustomerMerged => "customer.merged",
    }
}

/// Every type an endpoint may subscribe to.
pub fn known_event_types() -> Vec<&'static str> {
    use sea_orm::Iterable;
    let mut types: Vec<&str> = EventTopic::iter().map(event_type).collect();
    types.push(TEST_EVENT);
    types
}

/// The most event types one endpoint lists.
const MAX_EVENT_TYPES: usize = 32;
/// The longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Validates an endpoint's event types: known ones or `*`, at least one; returned sorted
/// and without repeats.
pub fn event_types(given: &[String], field: &str) -> DomainResult<Vec<String>> {
    if given.is_empty() {
        return Err(DomainError::bad_input(
            field,
            "list at least one event type, or \"*\"",
        ));
    }
    if given.len() > MAX_EVENT_TYPES {
        return Err(DomainError::bad_input(
            field,
            format!("at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let known = known_event_types();
    let mut types = Vec::with_capacity(given.len());
    for name in given {
        let name = name.trim();
        if name != ALL_EVENTS && !known.contains(&name) {
            // Quoted no longer than a real type could be: the error is not an echo.
            let shown: String = name.chars().take(64).collect();
            return Err(DomainError::bad_input(
                field,
                format!(
                    "unknown event type {shown:?}; known: {}, or \"*\" for all",
                    known.join(", ")
                ),
            ));
        }
        types.push(name.to_owned());
    }
    types.sort();
    types.dedup();
    Ok(types)
}

/// Whether an endpoint subscribed to `types` receives `event_type`.
pub fn subscribed(types: &[String], event_type: &str) -> bool {
    types.iter().any(|t| t == ALL_EVENTS || t == event_type)
}

/// Validates an endpoint's URL: absolute, `https` (or `http` when `allow_http`), a host,
/// no credentials, not too long; and, when the host is an address, not a refused one.
/// Host names are checked again when resolved, at every attempt (`client`).
pub fn endpoint_url(
    text: &str,
    allow_http: bool,
    allow_private: bool,
    field: &str,
) -> DomainResult<reqwest::Url> {
    let text = text.trim();
    if text.len() > MAX_URL_BYTES {
        return Err(DomainError::bad_input(
            field,
            format!("at most {MAX_URL_BYTES} bytes"),
        ));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| DomainError::bad_input(field, format!("not an absolute URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(DomainError::bad_input(
                field,
                "must be https (plain http is allowed only with WEBHOOK_ALLOW_HTTP=true)",
            ));
        }
        other => {
            return Err(DomainError::bad_input(
                field,
                format!("must be https, not {other}"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DomainError::bad_input(
            field,
            "must not carry credentials; the signature authenticates the sender",
        ));
    }
    let Some(host) = url.host_str() else {
        return Err(DomainError::bad_input(field, "must name a host"));
    };
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        check_destination(ip, allow_private)
            .map_err(|reason| DomainError::bad_input(field, reason))?;
    }
    Ok(url)
}

/// Refuses destinations inside the server's own network — loopback, private ranges,
/// link-local (which holds the clouds' metadata service, 169.254.169.254), shared
/// address space, unspecified, multicast and broadcast — unless `allow_private`.
pub fn check_destination(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(format!(
            "{ip} is a loopback, private, link-local or otherwise internal address; \
             webhooks go only to public addresses (WEBHOOK_ALLOW_PRIVATE=true allows them)"
        ))
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // IETF protocol assignments, 192.0.0.0/24 (NAT64 and DS-Lite endpoints among them).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15, and reserved, 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// Only global unicast (2000::/3), less the ranges that carry an IPv4 address a
/// gateway would reach on our behalf (6to4 2002::/16, Teredo 2001::/32) and
/// documentation. Everything else — loopback, IPv4-compatible and NAT64 forms
/// (`::7f00:1`, `64:ff9b::…`), unique and site local, link-local, discard — is internal.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    (0x2000..=0x3fff).contains(&first)
        && first != 0x2002
        && !(first == 0x2001 && (second == 0 || second == 0x0db8))
}

/// How long to wait before each retry: the default of Standard Webhooks users (Svix's
/// schedule): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — eight attempts in all.
pub fn default_retry_schedule() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// Parses `WEBHOOK_RETRY_SCHEDULE`: durations separated by commas, e.g. `1s,2s,5s`.
pub fn parse_retry_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let schedule: Vec<Duration> = text
        .split(',')
        .map(|part| humantime::parse_duration(part.trim()).map_err(|e| format!("{part:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if schedule.is_empty() || schedule.len() > 20 {
        return Err("between 1 and 20 durations, e.g. 5s,5m,30m".into());
    }
    if schedule.iter().any(|d| d.as_secs() > 7 * 86_400) {
        return Err("no wait longer than 7 days".into());
    }
    Ok(schedule)
}

/// When attempt number `attempts + 1` is due after `attempts` failed ones: the schedule's
/// wait, or the receiver's `Retry-After` when it asks for longer; `None` when every
/// attempt is used (the delivery has FAILED).
pub fn retry_delay(
    schedule: &[Duration],
    attempts: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let wait = *schedule.get(attempts.checked_sub(1)?)?;
    Some(retry_after.map_or(wait, |asked| asked.max(wait)))
}

/// A receiver's `Retry-After`: seconds, or an HTTP date; at most a day is honoured.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let asked = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now).to_std().ok()?
        }
    };
    Some(asked.min(Duration::from_secs(86_400)))
}

/// How long a rotated-out secret still signs, so that a partner can switch over.
pub const ROTATION_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", BASE64.encode(bytes))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with `secret`'s key (the bytes
/// after `whsec_`), as Standard Webhooks libraries verify it.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64
        .decode(key)
        .unwrap_or_else(|_| key.as_bytes().to_vec());
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_inside_the_network_are_refused() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "100::1",
            "fec0::1",
            "192.0.0.1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_destination(ip, false).is_err(), "{ip} refused");
            assert!(
                check_destination(ip, true).is_ok(),
                "{ip} allowed when asked"
            );
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_destination(ip, false).is_ok(), "{ip} is public");
        }
    }

    #[test]
    fn urls_must_be_https_with_a_host_and_no_credentials() {
        let ok = |url: &str| endpoint_url(url, false, false, "url").is_ok();
        assert!(ok("https://shop.example.com/hooks"));
        assert!(!ok("http://shop.example.com/hooks"));
        assert!(endpoint_url("http://shop.example.com/hooks", true, false, "url").is_ok());
        assert!(!ok("ftp://shop.example.com/"));
        assert!(!ok("https://user:pw@shop.example.com/"));
        assert!(!ok("https://127.0.0.1/hooks"));
        assert!(!ok("https://[::1]/hooks"));
        assert!(endpoint_url("https://127.0.0.1/hooks", false, true, "url").is_ok());
        assert!(!ok("not a url"));
        assert!(!ok(&format!("https://a.example.com/{}", "x".repeat(2100))));
    }

    #[test]
    fn event_types_are_known_ones_or_all() {
        let given = |names: &[&str]| {
            event_types(
                &names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                "events",
            )
        };
        assert_eq!(
            given(&["points.changed", "customer.tier_changed", "points.changed"]).unwrap(),
            ["customer.tier_changed", "points.changed"]
        );
        assert_eq!(given(&["*"]).unwrap(), ["*"]);
        assert!(given(&[]).is_err());
        assert!(given(&["points.changd"]).is_err());
        let all = given(&["*"]).unwrap();
        assert!(subscribed(&all, "anything.new"));
        assert!(!subscribed(
            &given(&["points.changed"]).unwrap(),
            "customer.erased"
        ));
    }

    #[test]
    fn retries_follow_the_schedule_or_a_longer_retry_after() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        assert_eq!(
            retry_delay(&schedule, 1, None),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_delay(&schedule, 2, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(retry_delay(&schedule, 3, None), None, "every attempt used");
        assert_eq!(
            retry_delay(&schedule, 1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_delay(&schedule, 1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5)),
            "never sooner than the schedule"
        );
        assert_eq!(default_retry_schedule().len() + 1, 8, "eight attempts");
        assert_eq!(
            parse_retry_schedule("1s, 2s,1m").unwrap(),
            [1, 2, 60].map(Duration::from_secs)
        );
        assert!(parse_retry_schedule("1s,soon").is_err());
        let now = chrono::Utc::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(86_400))
        );
        let later = (now + chrono::TimeDelta::seconds(30)).to_rfc2822();
        let parsed = parse_retry_after(&later, now).unwrap();
        assert!((29..=30).contains(&parsed.as_secs()), "{parsed:?}");
        assert_eq!(parse_retry_after("tomorrow", now), None);
    }

    #[test]
    fn signatures_are_those_of_the_standard_webhooks_specification() {
        // The specification's own example (standard-webhooks, spec/standard-webhooks.md).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let fresh = new_secret();
        assert!(fresh.starts_with("whsec_") && fresh.len() > 40);
        assert_ne!(fresh, new_secret());
    }
}
