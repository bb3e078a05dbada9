//! Logging to stderr (stdout carries what commands print): `RUST_LOG` filters (default
//! `info`); tests stay silent unless `TEST_LOG` is set.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Ignore "already initialised": tests start many apps in one process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
