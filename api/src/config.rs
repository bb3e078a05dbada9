//! Configuration from the environment (and a `.env` file), validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::auth::JwtKeys;
use crate::jobs::schedule::Schedule;

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
        let issuer = var("JWT_ISSUER");
        let audience = var("JWT_AUDIENCE");
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
        } else if sqlite {
            let secret = embedded_secret(&database_url)?;
            JwtKeys::hs256(secret.as_bytes(), issuer, audience)
        } else {
            bail!(
                "no JWT key is configured: on Postgres set JWT_SECRET (HS256, at least 32 characters) \
                 or JWT_PUBLIC_KEY_FILE (RS256 or EdDSA public key in PEM)"
            );
        };
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
        let event_buffer = match var("EVENT_BUFFER") {
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!("EVENT_BUFFER must be a number from 1 to 1000000")
                })?,
            None => crate::events::bus::DEFAULT_CAPACITY,
        };
        Ok(Self {
            database_url,
            listen_addr,
            keys,
            base_currency,
            demo_data,
            evaluation_schedule,
            event_buffer,
        })
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
fn embedded_secret(url: &str) -> anyhow::Result<String> {
    use rand::Rng;
    let generate = || {
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let Some(database) = sqlite_file(url) else {
        return Ok(generate());
    };
    let path = secret_path(&database);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    let secret = generate();
    write_private(&path, &secret)
        .with_context(|| format!("writing the JWT secret to {}", path.display()))?;
    Ok(secret)
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

#[cfg(test)]
mod tests {
    use super::*;

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
