//! Builds the application — database, program, schema, router — and serves it with
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::jobs::supervisor::Supervisor;
use crate::live::EventBus;
use crate::store::{Db, program};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The background tasks (the live relay, the program follower, outbox pruning, the
    /// webhook fan-out, dispatcher and pruning, the evaluation schedule, one-shot runs);
    /// stopped with the server.
    background: std::sync::Arc<Supervisor>,
    /// Fire once the outbox consumers know where they start: the live relay (so that no
    /// subscriber misses a change committed before it was ready) and the webhook fan-out
    /// (so that its first start does not pass over a change).
    consumers_ready: Vec<tokio::sync::oneshot::Receiver<()>>,
}

/// Connects, migrates, and installs the default program (plus the demo data when asked
/// and the database is new). Returns whether the database was new.
pub async fn prepare_database(config: &Config) -> anyhow::Result<(Db, bool)> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await?;
    crate::config::make_sqlite_files_private(&config.database_url)?;
    let currency = config.base_currency.clone();
    let installed = db
        .write(move |txn| Box::pin(async move { program::install_default(txn, &currency).await }))
        .await
        .map_err(|e| anyhow::anyhow!("installing the default program: {e:?}"))?;
    let stored = program::settings(db.conn())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .base_currency;
    if stored != config.base_currency {
        anyhow::bail!(
            "this database keeps its amounts in {stored}, but BASE_CURRENCY is {}; amounts cannot change currency",
            config.base_currency
        );
    }
    if installed && config.demo_data {
        crate::demo::load(&db)
            .await
            .map_err(|e| anyhow::anyhow!("loading the demo data: {e:?}"))?;
    }
    Ok((db, installed))
}

impl Application {
    /// Everything a server needs, from its configuration: the database (migrated), the
    /// listener, the schema, and the background tasks under one supervisor. Tests build
    /// their servers here too, so what is wired here runs under test.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let (db, _) = prepare_database(config).await?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
        // Subscribers are dropped when `event_buffer` batches behind.
        let bus = EventBus::new(config.event_buffer);
        let background = std::sync::Arc::new(Supervisor::new());
        let (relay, relay_ready) =
            crate::outbox::follow(db.clone(), crate::live::relay::LiveRelay::new(bus.clone()));
        background.spawn("live relay", relay);
        background.spawn(
            "program follower",
            crate::jobs::program_follower::follow_program(db.clone()),
        );
        background.spawn(
            "outbox pruning",
            crate::jobs::outbox_pruning::prune_forever(db.clone()),
        );
        let webhooks = std::sync::Arc::new(config.webhooks.clone());
        let wakeup = crate::webhooks::Wakeup::default();
        let (fanout, fanout_ready) = crate::outbox::follow(
            db.clone(),
            crate::webhooks::fanout::Fanout::new(wakeup.clone()),
        );
        background.spawn("webhook fan-out", fanout);
        let (automations, _) = crate::outbox::follow(
            db.clone(),
            crate::jobs::automations::Automations::new(db.clone()),
        );
        background.spawn("automations", automations);
        background.spawn(
            "webhook dispatcher",
            crate::webhooks::dispatcher::dispatch_forever(
                db.clone(),
                webhooks.clone(),
                wakeup.clone(),
            ),
        );
        background.spawn(
            "pending activation",
            crate::jobs::pending_activation::activate_forever(db.clone()),
        );
        background.spawn(
            "reminders",
            crate::jobs::reminders::remind_forever(db.clone()),
        );
        background.spawn(
            "webhook pruning",
            crate::jobs::webhook_pruning::prune_forever(db.clone(), webhooks.retention),
        );
        if let Some(schedule) = config.evaluation_schedule {
            tracing::info!(?schedule, "evaluation runs are scheduled");
            background.spawn(
                "evaluation schedule",
                crate::jobs::schedule::run_forever(db.clone(), schedule),
            );
        }
        let limits = config.limits.clone();
        let schema = crate::graphql::schema(
            db.clone(),
            bus.clone(),
            background.clone(),
            (webhooks, wakeup),
            limits.max_cost,
        );
        let feeds = crate::live::feeds::Feeds::new(schema.clone(), db.clone(), bus);
        Ok(Self {
            listener,
            state: AppState {
                schema,
                db,
                keys: config.keys.clone(),
                feeds,
                subscriptions: http::quota::Quota::new(limits.subscriptions_per_caller),
                sockets: http::quota::Quota::new(limits.sockets_per_caller),
                rate_limiter: std::sync::Arc::new(http::rate_limit::RateLimiter::new(limits.rates)),
                limits,
            },
            background,
            consumers_ready: vec![relay_ready, fanout_ready],
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The names of the background tasks this server runs.
    pub fn background_tasks(&self) -> Vec<&'static str> {
        self.background.names()
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Connections wait in the listen queue until the relay knows where the outbox
        // ends, so that no subscriber misses a change committed in between.
        for ready in self.consumers_ready {
            let _ = ready.await;
        }
        let connections = self.state.limits.connections();
        let router = http::router(self.state);
        let served = http::server::serve(self.listener, router, connections, shutdown).await;
        self.background.shutdown().await;
        Ok(served?)
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
