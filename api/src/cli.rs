//! The `tierwise` command line: `serve` (the default), `migrate`, `token`,
//! `export-schema`, `evaluate` and `demo`.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app::{Application, prepare_database};
use crate::auth::{Claims, Role, Scope};
use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "tierwise",
    version,
    about = "Customer tiering, loyalty points and referrals over GraphQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default): applies pending migrations first.
    Serve,
    /// Apply pending migrations and install the default program, then exit.
    Migrate,
    /// Print a JWT signed with the configured key.
    Token(TokenArgs),
    /// Print the GraphQL schema (SDL); `schema.graphql` is exactly this.
    ExportSchema,
    /// Run an evaluation: recompute metrics, scores, RFM, ABC, lifecycle stages and tiers.
    Evaluate(EvaluateArgs),
    /// Import customers, their history and their points balances from CSV files: all
    /// or nothing (the README describes the columns).
    Import(ImportArgs),
    /// Load the demo data set into the configured database.
    Demo,
    /// Register an app's persisted-operation manifest (graphql-codegen's
    /// `persisted-documents.json` or Apollo's `persisted-query-manifest.json`): its
    /// operations are then trusted (`TRUSTED_DOCUMENTS`) and may be sent by hash.
    Persist {
        /// The manifest file.
        manifest: std::path::PathBuf,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("files").required(true).multiple(true)
    .args(["customers", "interactions", "points"])))]
struct ImportArgs {
    /// Customers: external_ref, name, email, phone, kind, industry, region, birthday,
    /// tags (separated by |), attributes (JSON), referred_by (an external_ref), created_at.
    #[arg(long)]
    customers: Option<std::path::PathBuf>,
    /// Interactions: customer_ref, kind, occurred_at, amount, currency, channel, rating,
    /// note, order_ref.
    #[arg(long)]
    interactions: Option<std::path::PathBuf>,
    /// Points balances: customer_ref, points, reason, expires_at, occurred_at.
    #[arg(long)]
    points: Option<std::path::PathBuf>,
    /// Run an evaluation afterwards, so that metrics, stages and tiers reflect the
    /// imported history at once.
    #[arg(long)]
    evaluate: bool,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct EvaluateArgs {
    /// Evaluate as of this instant (RFC 3339, e.g. 2026-03-01T00:00:00Z); default now.
    #[arg(long)]
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// admin, staff, partner or customer.
    #[arg(long)]
    role: String,
    /// The subject; defaults to the customer's id for a customer token, else the role's
    /// name.
    #[arg(long)]
    sub: Option<String>,
    /// The customer a customer token speaks for.
    #[arg(long)]
    customer_id: Option<uuid::Uuid>,
    /// A partner's scopes, space-separated, e.g. "customers:read interactions:write".
    #[arg(long)]
    scope: Option<String>,
    /// How long the token is valid, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

pub fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// `println!` that ignores a failed write instead of panicking on it: what a command
/// prints is information, and a reader that stopped early (`tierwise evaluate | head -1`,
/// a closed pipe) must not stop the command's work or hide its failure.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::ExportSchema) = cli.command {
        let _ = write!(std::io::stdout().lock(), "{}", crate::graphql::sdl());
        return Ok(());
    }
    crate::telemetry::init();
    let config = Config::from_env()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(config)),
        Command::Migrate => runtime.block_on(async {
            let (_, new) = prepare_database(&config).await?;
            say!(
                "{}",
                if new {
                    "database created"
                } else {
                    "database up to date"
                }
            );
            Ok(())
        }),
        Command::Token(args) => {
            say!("{}", mint(&config, args)?);
            Ok(())
        }
        Command::Demo => runtime.block_on(async {
            let (db, _) = prepare_database(&Config {
                demo_data: false,
                evaluation_schedule: None,
                event_buffer: crate::config::DEFAULT_EVENT_BUFFER,
                ..config
            })
            .await?;
            let created = crate::demo::load(&db)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            say!("loaded {created} demo customers");
            Ok(())
        }),
        Command::Evaluate(args) => runtime.block_on(evaluate(config, args)),
        Command::Import(args) => runtime.block_on(import(config, args)),
        Command::Persist { manifest } => runtime.block_on(persist(config, manifest)),
        Command::ExportSchema => unreachable!("handled above"),
    }
}

async fn persist(config: Config, manifest: std::path::PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let documents = crate::service::persisted::manifest_documents(&json).with_context(|| {
        format!(
            "{} is not a persisted-operation manifest",
            manifest.display()
        )
    })?;
    let (db, _) = prepare_database(&Config {
        demo_data: false,
        evaluation_schedule: None,
        ..config
    })
    .await?;
    let added = db
        .write(move |txn| {
            Box::pin(async move {
                crate::store::persisted::trust(txn, &documents)
                    .await
                    .map(|n| (n, documents.len()))
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (added, documents) = (added.0, added.1);
    say!(
        "{documents} operations registered ({added} new) from {}",
        manifest.display()
    );
    Ok(())
}

async fn import(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    use crate::service::import::{self, Files, Progress, Quiet, Source};

    /// Draws a bar per file (by bytes read) and a spinner for the steps after it.
    struct Bar(indicatif::ProgressBar);

    impl Progress for Bar {
        fn reading(&self, file: &str, bytes: u64) {
            self.0.reset();
            self.0.set_length(bytes);
            self.0.set_message(format!("reading {file}"));
        }
        fn advanced(&self, bytes: u64) {
            self.0.inc(bytes);
        }
        fn step(&self, what: &str) {
            self.0.set_message(what.to_owned());
        }
    }

    fn open(path: Option<std::path::PathBuf>) -> anyhow::Result<Option<Source>> {
        path.map(|path| {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Source {
                name: path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                ),
                len: file.metadata().map(|m| m.len()).unwrap_or(0),
                reader: Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
            })
        })
        .transpose()
    }

    let files = Files {
        customers: open(args.customers)?,
        interactions: open(args.interactions)?,
        points: open(args.points)?,
    };
    let base_currency = config.base_currency.clone();
    let (db, _) = prepare_database(&Config {
        demo_data: false,
        ..config
    })
    .await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let imported = if args.quiet {
        import::import(&db, files, &base_currency, &Quiet).await
    } else {
        import::import(&db, files, &base_currency, &Bar(bar.clone())).await
    };
    bar.finish_and_clear();
    let summary = imported.map_err(|error| match error {
        crate::domain::DomainError::Internal(inner) => inner,
        other => anyhow::anyhow!("nothing was imported: {other}"),
    })?;
    say!(
        "imported {} customers ({} referrals), {} interactions and {} points entries in {:.1?}",
        summary.customers,
        summary.referrals,
        summary.interactions,
        summary.points_entries,
        started.elapsed()
    );
    if args.evaluate {
        run_evaluation(&db, None, args.quiet).await
    } else {
        say!("metrics, stages and tiers follow at the next evaluation run (`tierwise evaluate`)");
        Ok(())
    }
}

async fn evaluate(config: Config, args: EvaluateArgs) -> anyhow::Result<()> {
    let (db, _) = prepare_database(&Config {
        demo_data: false,
        ..config
    })
    .await?;
    run_evaluation(&db, args.as_of, args.quiet).await
}

/// Runs an evaluation with a progress bar and prints its outcome and churn model.
async fn run_evaluation(
    db: &crate::store::Db,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    quiet: bool,
) -> anyhow::Result<()> {
    use crate::jobs::evaluation::{self, Progress, Quiet, RunRequest};

    /// Draws the run's progress on stderr.
    struct Bar(indicatif::ProgressBar);

    impl Progress for Bar {
        fn started(&self, customers: u64) {
            self.0.set_length(customers);
        }
        fn advanced(&self, customers: u64) {
            self.0.inc(customers);
        }
    }

    let request = RunRequest {
        as_of,
        customer_ids: None,
        requested_by: "cli".into(),
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} evaluating [{bar:40}] {pos}/{len} customers ({per_sec}, {eta} left)",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let run = if quiet {
        evaluation::run(db, request, &Quiet).await
    } else {
        evaluation::run(db, request, &Bar(bar.clone())).await
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    say!(
        "evaluation run {} {}: as of {}, {} customers evaluated, {} upgrades, {} downgrades",
        run.id,
        run.status.as_str(),
        run.as_of.to_rfc3339(),
        run.customers_evaluated,
        run.upgrades,
        run.downgrades,
    );
    match crate::store::evaluation_runs::churn_model_of(&run) {
        Some(model) => {
            say!(
                "churn model (BG/NBD, weeks): r {:.4}, alpha {:.4}, a {:.4}, b {:.4}, \
                 log-likelihood {:.2}, {} customers",
                model.purchases.r,
                model.purchases.alpha,
                model.purchases.a,
                model.purchases.b,
                model.purchases.log_likelihood,
                model.purchases.customers
            );
            match model.spend {
                Some(spend) => say!(
                    "spend model (Gamma-Gamma): p {:.4}, q {:.4}, gamma {:.4}, {} repeat buyers",
                    spend.p,
                    spend.q,
                    spend.gamma,
                    spend.customers
                ),
                None => say!("spend model: none"),
            }
        }
        None => say!("churn model: none fitted"),
    }
    if let Some(note) = &run.churn_model_note {
        say!("{note}");
    }
    if let Some(error) = run.error {
        anyhow::bail!("the run failed: {error}");
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let application = Application::build(&config).await?;
    let address = application.local_addr()?;
    say!("Tierwise is serving GraphiQL at http://{address}/graphql");
    // Standard output is often collected into logs: a token is printed only on the first
    // start of an embedded database, when nobody can have minted one yet.
    if config.new_secret {
        let admin = TokenArgs {
            role: "admin".into(),
            sub: None,
            customer_id: None,
            scope: None,
            ttl: Duration::from_secs(86_400),
        };
        let token = mint(&config, admin)?;
        say!(
            "Admin token (24 h, printed this once; send as \"Authorization: Bearer <token>\"):\n{token}"
        );
    } else {
        say!("Mint tokens with `tierwise token --role admin` (see `tierwise token --help`)");
    }
    let stopped = application.run_until_stopped().await;
    // What traces are left go to the collector before the process ends.
    tokio::task::spawn_blocking(crate::telemetry::shutdown)
        .await
        .ok();
    stopped
}

fn mint(config: &Config, args: TokenArgs) -> anyhow::Result<String> {
    let role =
        Role::parse(&args.role).context("--role must be admin, staff, partner or customer")?;
    if role == Role::Customer && args.customer_id.is_none() {
        anyhow::bail!("a customer token needs --customer-id");
    }
    if let Some(scope) = &args.scope
        && let Some(unknown) = scope.split_whitespace().find(|s| Scope::parse(s).is_none())
    {
        anyhow::bail!("unknown scope {unknown:?}");
    }
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(args.ttl.as_secs()).context("--ttl is too long")?;
    if ttl > config.keys.max_ttl_seconds() {
        anyhow::bail!(
            "--ttl is longer than the {} seconds the server accepts (JWT_MAX_TTL)",
            config.keys.max_ttl_seconds()
        );
    }
    let claims = Claims {
        sub: args.sub.unwrap_or_else(|| match args.customer_id {
            Some(id) if role == Role::Customer => id.to_string(),
            _ => role.as_str().to_owned(),
        }),
        role: role.as_str().to_owned(),
        exp: now + ttl,
        nbf: None,
        iat: Some(now),
        iss: config.keys.issuer().map(str::to_owned),
        aud: config.keys.audience().map(str::to_owned),
        customer_id: args.customer_id.map(|id| id.to_string()),
        scope: args.scope,
    };
    config.keys.sign(&claims)
}
