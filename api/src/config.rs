//! Configuration from the environment (and a `.env` file), validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::auth::JwtKeys;
use crate::domain::schedule::Schedule;
use crate::http::rate_limit::{Budget, Budgets};

/// How many batches a subscriber may fall behind before it is dropped (`EVENT_BUFFER`).
/// A batch holds what committed between two reads of the live relay, at most `outbox::BATCH` events.
pub const DEFAULT_EVENT_BUFFER: usize = 64;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tierwise.db";

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub listen_addr: SocketAddr,
    pub keys: JwtKeys,
    pub base_currency: String,
    /// Load the demo data set into a new database: on by default for the embedded
    /// SQLite database, off for Postgres (`DEMO_DATA=true|false` overrides).
    pub demo_data: bool,
    /// When evaluation runs start by themselves (`EVALUATION_SCHEDULE`); off when unset.
    pub evaluation_schedule: Option<Schedule>,
    /// How many batches of live events a subscriber may fall behind before it is
    /// dropped with `SLOW_CONSUMER` (`EVENT_BUFFER`, default 64).
    pub event_buffer: usize,
    /// Partner webhooks (`WEBHOOK_*`).
    pub webhooks: crate::webhooks::Settings,
    /// What one client may hold or ask for.
    pub limits: Limits,
    /// The embedded database's signing secret was made by this start: the one time
    /// `serve` prints an admin token.
    pub new_secret: bool,
}

/// Bounds on what a client may hold or ask for, each from an environment variable
/// (README, "Limits").
#[derive(Clone, Debug)]
pub struct Limits {
    /// Operations one WebSocket may have running (`MAX_SUBSCRIPTIONS_PER_SOCKET`).
    pub subscriptions_per_socket: usize,
    /// Operations one caller may have running over all its sockets on this server
    /// (`MAX_SUBSCRIPTIONS_PER_CALLER`).
    pub subscriptions_per_caller: usize,
    /// WebSockets one caller may hold open on this server (`MAX_SOCKETS_PER_CALLER`).
    pub sockets_per_caller: usize,
    /// Connections served at once; more wait to be accepted (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle
    /// connection stays open (`HEADER_READ_TIMEOUT`).
    pub header_read_timeout: std::time::Duration,
    /// How long a client may take to send a request's body (`BODY_READ_TIMEOUT`).
    pub body_read_timeout: std::time::Duration,
    /// How long a request may run before the client is answered `TIMEOUT`
    /// (`REQUEST_TIMEOUT`).
    pub request_timeout: std::time::Duration,
    /// The longest GraphQL document, in bytes (`MAX_QUERY_BYTES`).
    pub max_query_bytes: usize,
    /// How deeply brackets may nest in a document (`MAX_NESTING`, at most 128).
    pub max_nesting: usize,
    /// The most a query may cost (`MAX_QUERY_COST`; see `graphql::cost`).
    pub max_cost: usize,
    /// The largest response body, in bytes (`MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// The largest request body, in bytes (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// The largest WebSocket message a client may send (`MAX_WS_MESSAGE_BYTES`).
    pub max_ws_message_bytes: usize,
    /// Requests per second per caller, by role (`RATE_LIMIT_ADMIN`, `…_STAFF`,
    /// `…_PARTNER`, `…_CUSTOMER`; 0 turns a role's limit off).
    pub rates: crate::http::rate_limit::Budgets,
    /// Who may run only registered documents (`TRUSTED_DOCUMENTS`: off, customer, all).
    pub trusted_documents: crate::service::persisted::TrustedDocuments,
    /// Documents kept from automatic persisted queries (`PERSISTED_QUERIES_MAX`; 0
    /// keeps none, so hash-only requests work only for registered documents).
    pub persisted_queries_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            subscriptions_per_socket: 32,
            subscriptions_per_caller: 200,
            sockets_per_caller: 50,
            max_connections: 10_000,
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(30),
            request_timeout: std::time::Duration::from_secs(30),
            max_query_bytes: crate::http::query_text::MAX_QUERY_BYTES,
            max_nesting: crate::http::query_text::MAX_NESTING,
            max_cost: crate::graphql::MAX_COST,
            max_response_bytes: 16 * 1024 * 1024,
            max_body_bytes: crate::http::MAX_BODY_BYTES,
            max_ws_message_bytes: crate::http::ws::MAX_CLIENT_MESSAGE,
            rates: crate::http::rate_limit::Budgets::default(),
            trusted_documents: crate::service::persisted::TrustedDocuments::Off,
            persisted_queries_max: 10_000,
        }
    }
}

impl Limits {
    /// Checks a request before the schema sees it: the document's text
    /// (`http::query_text`), that no text in it holds a NUL character
    /// (`http::query_text::check_no_nul`), then what its fragments expand to
    /// (`http::expansion`). The document is parsed here, once, into the request, where
    /// the schema and `http::graphql::operation_type` find it; one that does not parse is
    /// left for execution to report.
    pub fn check_request(
        &self,
        request: &mut async_graphql::Request,
    ) -> crate::domain::DomainResult<()> {
        crate::http::query_text::check(&request.query, self.max_query_bytes, self.max_nesting)?;
        crate::http::query_text::check_no_nul(request)?;
        match request.parsed_query() {
            Ok(document) => crate::http::expansion::check(document),
            Err(_) => Ok(()),
        }
    }

    pub fn connections(&self) -> crate::http::server::ConnectionLimits {
        crate::http::server::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
        }
    }

    fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let defaults = Self::default();
        let number = |name: &str, default: usize, max: usize| {
            setting(
                &var,
                name,
                default,
                &format!("a number from 1 to {max}"),
                |text| text.parse::<usize>().ok().filter(|n| (1..=max).contains(n)),
            )
        };
        let duration = |name: &str, default: std::time::Duration| {
            let expected = "a duration such as 10s or 2m, at most 1 day";
            setting(&var, name, default, expected, |text| {
                humantime::parse_duration(text)
                    .ok()
                    .filter(|d| !d.is_zero() && d.as_secs() <= 86_400)
            })
        };
        let rate = |name: &str, default: Budget| {
            let expected = "requests per second, 0 (no limit) to 1000000";
            setting(&var, name, default, expected, |text| {
                text.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 1_000_000)
                    .map(Budget::per_second)
            })
        };
        let rates = Budgets {
            admin: rate("RATE_LIMIT_ADMIN", defaults.rates.admin)?,
            staff: rate("RATE_LIMIT_STAFF", defaults.rates.staff)?,
            partner: rate("RATE_LIMIT_PARTNER", defaults.rates.partner)?,
            customer: rate("RATE_LIMIT_CUSTOMER", defaults.rates.customer)?,
        };
        let trusted_documents = match var("TRUSTED_DOCUMENTS") {
            None => defaults.trusted_documents,
            Some(text) => {
                crate::service::persisted::TrustedDocuments::parse(&text).with_context(|| {
                    format!("TRUSTED_DOCUMENTS must be off, customer or all (not {text})")
                })?
            }
        };
        let persisted_queries_max = setting(
            &var,
            "PERSISTED_QUERIES_MAX",
            defaults.persisted_queries_max,
            "a number from 0 to 1000000",
            |text| text.parse::<usize>().ok().filter(|n| *n <= 1_000_000),
        )?;
        Ok(Self {
            rates,
            trusted_documents,
            persisted_queries_max,
            max_connections: number("MAX_CONNECTIONS", defaults.max_connections, 1_000_000)?,
            header_read_timeout: duration("HEADER_READ_TIMEOUT", defaults.header_read_timeout)?,
            body_read_timeout: duration("BODY_READ_TIMEOUT", defaults.body_read_timeout)?,
            request_timeout: duration("REQUEST_TIMEOUT", defaults.request_timeout)?,
            max_query_bytes: number("MAX_QUERY_BYTES", defaults.max_query_bytes, 1 << 20)?,
            max_nesting: number(
                "MAX_NESTING",
                defaults.max_nesting,
                crate::http::query_text::NESTING_CEILING,
            )?,
            max_cost: number("MAX_QUERY_COST", defaults.max_cost, 100_000_000)?,
            max_body_bytes: number("MAX_BODY_BYTES", defaults.max_body_bytes, 1 << 30)?,
            max_ws_message_bytes: number(
                "MAX_WS_MESSAGE_BYTES",
                defaults.max_ws_message_bytes,
                1 << 26,
            )?,
            max_response_bytes: number("MAX_RESPONSE_BYTES", defaults.max_response_bytes, 1 << 30)?,
            subscriptions_per_socket: number(
                "MAX_SUBSCRIPTIONS_PER_SOCKET",
                defaults.subscriptions_per_socket,
                10_000,
            )?,
            subscriptions_per_caller: number(
                "MAX_SUBSCRIPTIONS_PER_CALLER",
                defaults.subscriptions_per_caller,
                1_000_000,
            )?,
            sockets_per_caller: number(
                "MAX_SOCKETS_PER_CALLER",
                defaults.sockets_per_caller,
                1_000_000,
            )?,
        })
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        // A missing .env is the normal case.
        let _ = dotenvy::dotenv();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());

        let database_url = var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let sqlite = is_sqlite(&database_url);
        if !sqlite
            && !database_url.starts_with("postgres://")
            && !database_url.starts_with("postgresql://")
        {
            bail!("DATABASE_URL must start with sqlite:// or postgres://");
        }
        let listen_addr = var("LISTEN_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8000".to_owned())
            .parse()
            .context("LISTEN_ADDR must be an address such as 127.0.0.1:8000")?;
        let mut new_secret = false;
        let issuer = var("JWT_ISSUER");
        let audience = var("JWT_AUDIENCE");
        let mut identity_provider = identity_provider(&var)?;
        let keys = if let Some(secret) = var("JWT_SECRET") {
            if secret.len() < 32 {
                bail!("JWT_SECRET must be at least 32 characters");
            }
            JwtKeys::hs256(secret.as_bytes(), issuer, audience)
        } else if let Some(path) = var("JWT_PUBLIC_KEY_FILE") {
            let public = std::fs::read(&path)
                .with_context(|| format!("reading JWT_PUBLIC_KEY_FILE {path}"))?;
            let private = match var("JWT_PRIVATE_KEY_FILE") {
                Some(path) => Some(
                    std::fs::read(&path)
                        .with_context(|| format!("reading JWT_PRIVATE_KEY_FILE {path}"))?,
                ),
                None => None,
            };
            JwtKeys::public_key(&public, private.as_deref(), issuer, audience)?
        } else if let Some((jwks, mapping)) = identity_provider.take() {
            // Only the provider's tokens: Tierwise signs none (`tierwise token` says so).
            JwtKeys::identity_provider(jwks, mapping, issuer, audience)
        } else if sqlite {
            let secret;
            (secret, new_secret) = embedded_secret(&database_url)?;
            JwtKeys::hs256(secret.as_bytes(), issuer, audience)
        } else {
            bail!(
                "no JWT key is configured: on Postgres set JWT_SECRET (HS256, at least 32 characters) \
                 or JWT_PUBLIC_KEY_FILE (RS256 or EdDSA public key in PEM), or JWT_JWKS_URL (an identity provider)"
            );
        };
        let max_ttl = setting(
            &var,
            "JWT_MAX_TTL",
            crate::auth::jwt::DEFAULT_MAX_TTL_SECONDS,
            "a duration such as 30d or 12h",
            |text| {
                humantime::parse_duration(text)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_secs()).ok())
                    .filter(|s| *s > 0)
            },
        )?;
        // Tierwise's own key, and beside it the provider's, when both are configured.
        let keys = match identity_provider {
            Some((jwks, mapping)) => keys.with_identity_provider(jwks, mapping),
            None => keys,
        }
        .with_max_ttl(max_ttl);
        let base_currency = var("BASE_CURRENCY")
            .unwrap_or_else(|| "CNY".to_owned())
            .to_ascii_uppercase();
        if base_currency.len() != 3 || !base_currency.chars().all(|c| c.is_ascii_alphabetic()) {
            bail!("BASE_CURRENCY must be a three-letter ISO 4217 code such as CNY");
        }
        let demo_data = match var("DEMO_DATA").as_deref() {
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => bail!("DEMO_DATA must be true or false, not {other:?}"),
            None => sqlite,
        };
        let evaluation_schedule = var("EVALUATION_SCHEDULE")
            .map(|text| Schedule::parse(&text))
            .transpose()
            .map_err(|e| anyhow::anyhow!("EVALUATION_SCHEDULE {e}"))?;
        let event_buffer = setting(
            &var,
            "EVENT_BUFFER",
            DEFAULT_EVENT_BUFFER,
            "a number from 1 to 1000000",
            |text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            },
        )?;
        let webhooks = webhook_settings(&var)?;
        let limits = Limits::from_env(var)?;
        Ok(Self {
            database_url,
            listen_addr,
            keys,
            base_currency,
            demo_data,
            evaluation_schedule,
            event_buffer,
            webhooks,
            limits,
            new_secret,
        })
    }
}

fn webhook_settings(
    var: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<crate::webhooks::Settings> {
    let defaults = crate::webhooks::Settings::default();
    let flag = |name: &str| -> anyhow::Result<bool> {
        match var(name).as_deref() {
            None => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => bail!("{name} must be true or false, not {other:?}"),
        }
    };
    let duration = |name: &str, default: std::time::Duration, max_seconds: u64| {
        setting(
            var,
            name,
            default,
            &format!(
                "a duration such as 10s or 5d, at most {}",
                humantime::format_duration(std::time::Duration::from_secs(max_seconds))
            ),
            |text| {
                humantime::parse_duration(text)
                    .ok()
                    .filter(|d| !d.is_zero() && d.as_secs() <= max_seconds)
            },
        )
    };
    let retry_schedule = match var("WEBHOOK_RETRY_SCHEDULE") {
        Some(text) => crate::domain::webhooks::parse_retry_schedule(&text)
            .map_err(|e| anyhow::anyhow!("WEBHOOK_RETRY_SCHEDULE: {e}"))?,
        None => defaults.retry_schedule,
    };
    Ok(crate::webhooks::Settings {
        allow_http: flag("WEBHOOK_ALLOW_HTTP")?,
        allow_private: flag("WEBHOOK_ALLOW_PRIVATE")?,
        retry_schedule,
        timeout: duration("WEBHOOK_TIMEOUT", defaults.timeout, 60)?,
        disable_after: duration("WEBHOOK_DISABLE_AFTER", defaults.disable_after, 90 * 86_400)?,
        retention: duration("WEBHOOK_RETENTION", defaults.retention, 365 * 86_400)?,
        poll: defaults.poll,
    })
}

/// The setting `name` read by `parse` (trimmed), `default` when unset; a value `parse`
/// refuses stops the start, saying what was `expected`.
fn setting<T>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(text) => {
            parse(text.trim()).ok_or_else(|| anyhow::anyhow!("{name} must be {expected}"))
        }
    }
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file of a `sqlite://path` URL; `None` for in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// The embedded mode's HS256 secret, kept beside the database (`<file>.secret`, readable
/// by the owner only) so that tokens survive restarts; made on first use.
/// Also says whether the secret was made now (a new embedded database).
fn embedded_secret(url: &str) -> anyhow::Result<(String, bool)> {
    use rand::Rng;
    let generate = || {
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let Some(database) = sqlite_file(url) else {
        return Ok((generate(), true));
    };
    let path = secret_path(&database);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            // A secret made by hand, or by an older version, may be readable by others.
            make_private(&path)?;
            return Ok((existing, false));
        }
    }
    let secret = generate();
    write_private(&path, &secret)
        .with_context(|| format!("writing the JWT secret to {}", path.display()))?;
    Ok((secret, true))
}

/// Makes the SQLite database's files readable by their owner only: they hold every
/// customer's personal data. Corrected on every start.
pub fn make_sqlite_files_private(url: &str) -> anyhow::Result<()> {
    let Some(database) = sqlite_file(url) else {
        return Ok(());
    };
    // The secret is corrected where it is read (`embedded_secret`).
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        make_private(Path::new(&name))?;
    }
    Ok(())
}

/// Mode 0600 for `path` if it exists.
fn make_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn secret_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".secret");
    database.with_file_name(name)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// `JWT_JWKS_URL` and the claim mapping of the provider's tokens (`JWT_ROLE_CLAIM`,
/// `JWT_DEFAULT_ROLE`, `JWT_SCOPE_CLAIM`, `JWT_CUSTOMER_CLAIM`, `JWT_CUSTOMER_MATCH`).
fn identity_provider(
    var: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<
    Option<(
        std::sync::Arc<crate::auth::jwks::Jwks>,
        crate::auth::mapping::ClaimMapping,
    )>,
> {
    use crate::auth::Role;
    use crate::auth::mapping::{ClaimMapping, ClaimPath, CustomerMatch};
    let Some(url) = var("JWT_JWKS_URL") else {
        for name in [
            "JWT_ROLE_CLAIM",
            "JWT_DEFAULT_ROLE",
            "JWT_SCOPE_CLAIM",
            "JWT_CUSTOMER_CLAIM",
            "JWT_CUSTOMER_MATCH",
        ] {
            if var(name).is_some() {
                bail!(
                    "{name} maps the claims of an identity provider's tokens: set JWT_JWKS_URL too"
                );
            }
        }
        return Ok(None);
    };
    let parsed = reqwest::Url::parse(&url).context("JWT_JWKS_URL must be a URL")?;
    if !matches!(parsed.scheme(), "https" | "http") {
        bail!("JWT_JWKS_URL must be an https:// (or, on a network you trust, http://) URL");
    }
    // A provider signs tokens for every app it serves: without an audience, a token
    // another app of the same realm, tenant or pool obtained would be accepted here.
    if var("JWT_AUDIENCE").is_none() {
        bail!(
            "JWT_JWKS_URL needs JWT_AUDIENCE (the client id or API identifier the provider puts in `aud` for Tierwise), \
             and should have JWT_ISSUER"
        );
    }
    let defaults = ClaimMapping::default();
    let path = |name: &str, default: ClaimPath| var(name).map_or(default, |p| ClaimPath::new(&p));
    let default_role = match var("JWT_DEFAULT_ROLE") {
        None => None,
        Some(role) => Some(Role::parse(&role.to_ascii_lowercase()).with_context(|| {
            format!("JWT_DEFAULT_ROLE must be one of admin, staff, partner, customer (not {role})")
        })?),
    };
    let customer_match = match var("JWT_CUSTOMER_MATCH") {
        None => CustomerMatch::Id,
        Some(text) => CustomerMatch::parse(&text).with_context(|| {
            format!("JWT_CUSTOMER_MATCH must be id or externalRef (not {text})")
        })?,
    };
    let mapping = ClaimMapping {
        role: path("JWT_ROLE_CLAIM", defaults.role),
        default_role,
        scope: path("JWT_SCOPE_CLAIM", defaults.scope),
        customer: path("JWT_CUSTOMER_CLAIM", defaults.customer),
        customer_match,
    };
    Ok(Some((
        std::sync::Arc::new(crate::auth::jwks::Jwks::new(url)),
        mapping,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider_from(
        pairs: &[(&str, &str)],
    ) -> anyhow::Result<Option<crate::auth::mapping::ClaimMapping>> {
        let var = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        Ok(identity_provider(&var)?.map(|(_, mapping)| mapping))
    }

    #[test]
    fn identity_provider_settings_are_checked() {
        use crate::auth::mapping::{ClaimPath, CustomerMatch};
        assert!(provider_from(&[]).unwrap().is_none());
        assert!(
            provider_from(&[("JWT_ROLE_CLAIM", "roles")]).is_err(),
            "a mapping without a provider"
        );
        assert!(
            provider_from(&[("JWT_JWKS_URL", "ftp://idp/certs"), ("JWT_AUDIENCE", "a")]).is_err()
        );
        let url = ("JWT_JWKS_URL", "https://sso.example.com/certs");
        assert!(provider_from(&[url]).is_err(), "an audience is required");
        let audience = ("JWT_AUDIENCE", "tierwise");
        assert!(provider_from(&[url, audience]).unwrap().is_some());
        assert!(provider_from(&[url, audience, ("JWT_DEFAULT_ROLE", "root")]).is_err());
        assert!(provider_from(&[url, audience, ("JWT_CUSTOMER_MATCH", "email")]).is_err());
        let mapping = provider_from(&[
            url,
            audience,
            ("JWT_ROLE_CLAIM", "realm_access.roles"),
            ("JWT_DEFAULT_ROLE", "Customer"),
            ("JWT_CUSTOMER_CLAIM", "sub"),
            ("JWT_CUSTOMER_MATCH", "externalRef"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(mapping.role, ClaimPath::new("realm_access.roles"));
        assert_eq!(mapping.default_role, Some(crate::auth::Role::Customer));
        assert_eq!(mapping.scope, ClaimPath::new("scope"));
        assert_eq!(mapping.customer_match, CustomerMatch::ExternalRef);
    }

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite://./tierwise.db"),
            Some(PathBuf::from("./tierwise.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            secret_path(Path::new("./tierwise.db")),
            PathBuf::from("./tierwise.db.secret")
        );
    }
}
