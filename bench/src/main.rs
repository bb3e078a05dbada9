//! The parts of the benchmarks that need code (`bench/run.sh` runs them all and
//! BENCHMARKS.md has the results):
//!
//! - `generate`: a synthetic customer base as CSV files for `tierwise import`;
//! - `evaluate` and `scan`: an evaluation run, or its population scan alone, in process;
//! - `segment-count`: a segment's `memberCount` query;
//! - `fanout`: one tier change reaching thousands of WebSocket subscribers;
//! - `churn-fit`: the churn and spend model fit over a simulated population.

mod dataset;

use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use tierwise_api::auth::{Claims, JwtKeys};
use tierwise_api::jobs::evaluation::{self, Quiet, RunRequest};
use tierwise_api::store::{Db, program};

use dataset::Shopper;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic customer base as CSV files for `tierwise import`: customers.csv,
    /// interactions.csv and points.csv.
    Generate {
        #[arg(long, default_value = "bench/data")]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        /// Interactions in all (about: the simulation is tuned to it).
        #[arg(long, default_value_t = 10_000_000)]
        interactions: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Time one evaluation run over the whole database.
    Evaluate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Time the evaluation's population scan alone (no writes).
    Scan {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Print the query plan (EXPLAIN ANALYZE) instead.
        #[arg(long)]
        explain: bool,
    },
    /// Time `memberCount` of a segment rule (median of several runs), or print its plan.
    SegmentCount {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The rule as JSON; the default has three conditions.
        #[arg(long, default_value = THREE_CONDITIONS)]
        rule: String,
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Print the query plan (EXPLAIN ANALYZE) instead.
        #[arg(long)]
        explain: bool,
    },
    /// Open many subscriptions to one server, then time how long one tier change takes to
    /// reach all of them; with `--server-pid`, also the server's memory per connection.
    Fanout {
        /// The server's GraphQL endpoint (its WebSocket is `<url>/ws`).
        #[arg(long, default_value = "http://127.0.0.1:8000/graphql")]
        url: String,
        /// The server's HS256 secret (JWT_SECRET), to sign a staff token.
        #[arg(long, env = "JWT_SECRET")]
        secret: String,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// The server's process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Fit the churn and spend models to a simulated population (no database): the
    /// CPU an evaluation run spends on them.
    ChurnFit {
        #[arg(long, default_value_t = 1_000_000)]
        customers: u32,
        /// Days the simulated customers are observed for.
        #[arg(long, default_value_t = 547)]
        days: i32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            dir,
            customers,
            interactions,
            seed,
        } => dataset::write(&dir, customers, interactions, seed),
        Command::Evaluate { database_url } => evaluate(&database_url).await,
        Command::Scan {
            database_url,
            explain,
        } => scan(&database_url, explain).await,
        Command::SegmentCount {
            database_url,
            rule,
            runs,
            explain,
        } => segment_count(&database_url, &rule, runs, explain).await,
        Command::Fanout {
            url,
            secret,
            subscribers,
            server_pid,
        } => fanout(&url, &secret, subscribers, server_pid).await,
        Command::ChurnFit { customers, days } => churn_fit(customers, days),
    }
}

/// Simulates `customers` histories the BG/NBD way (a purchase rate and a drop-out
/// chance per customer, first purchases spread over the observation period), then
/// groups them and fits both models, timing each step.
fn churn_fit(customers: u32, days: i32) -> anyhow::Result<()> {
    use rand::SeedableRng;
    use tierwise_api::domain::analytics::churn::{History, Population};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut population = Population::sampling(u64::from(customers));
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..customers {
        let shopper = Shopper::draw(&mut rng, days, 1.0, 0.02..0.6);
        let purchases = shopper.purchase_days(&mut rng, days);
        let first = shopper.first_day;
        let (mut last, mut repeats, mut spend) = (first, 0, 0i64);
        for day in purchases.into_iter().skip(1).map(|day| day as i32) {
            // Purchases on one day are one repeat day, as the scan counts them.
            if day > last {
                repeats += 1;
                spend += shopper.basket_e4(&mut rng);
                last = day;
            }
        }
        let history = History {
            repeat_days: repeats,
            first_day: first,
            last_day: last,
            repeat_spend_e4: spend,
        };
        distinct.insert((repeats, last - first, days - first));
        population.add(&history, days);
    }
    println!(
        "{customers} customers, {} distinct histories, simulated and grouped in {:.2?}",
        distinct.len(),
        started.elapsed()
    );
    let started = Instant::now();
    let fitted = population.fit(chrono::Utc::now());
    println!("fitted in {:.2?}", started.elapsed());
    match fitted.model {
        Some(model) => println!(
            "r {:.4}, alpha {:.4}, a {:.4}, b {:.4}, spend {:?}",
            model.purchases.r,
            model.purchases.alpha,
            model.purchases.a,
            model.purchases.b,
            model.spend
        ),
        None => println!("no model: {:?}", fitted.note),
    }
    Ok(())
}

async fn connect(database_url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    db.write(|txn| Box::pin(async move { program::install_default(txn, "CNY").await }))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(db)
}

async fn evaluate(database_url: &str) -> anyhow::Result<()> {
    // The run logs how long its phases took (the churn fit, the stage revision).
    tierwise_api::telemetry::init();
    let db = connect(database_url).await?;
    let started = Instant::now();
    let run = evaluation::run(
        &db,
        RunRequest {
            as_of: None,
            customer_ids: None,
            requested_by: "bench".into(),
        },
        &Quiet,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "evaluation run {}: {} customers, {} upgrades, {} downgrades in {:.2?}",
        run.status.as_str(),
        run.customers_evaluated,
        run.upgrades,
        run.downgrades,
        started.elapsed()
    );
    match tierwise_api::store::evaluation_runs::churn_model_of(&run) {
        Some(model) => println!(
            "churn model: r {:.4}, alpha {:.4}, a {:.4}, b {:.4} over {} customers; spend model: {:?}",
            model.purchases.r,
            model.purchases.alpha,
            model.purchases.a,
            model.purchases.b,
            model.purchases.customers,
            model.spend
        ),
        None => println!("no churn model: {:?}", run.churn_model_note),
    }
    Ok(())
}

async fn scan(database_url: &str, explain: bool) -> anyhow::Result<()> {
    use futures_util::TryStreamExt;
    let db = connect(database_url).await?;
    if explain {
        let statement = tierwise_api::store::evaluation_scan::scan_statement(
            sea_orm::DbBackend::Postgres,
            chrono::Utc::now(),
            365,
            None,
        );
        let statement = sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN (ANALYZE, BUFFERS) {}", statement.sql),
            statement.values.map(|v| v.0).unwrap_or_default(),
        );
        let reader = evaluation::scan_reader(&db)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for row in reader.query_all_raw(statement).await? {
            println!("{}", row.try_get_by_index::<String>(0)?);
        }
        return Ok(());
    }
    let started = Instant::now();
    let reader = evaluation::scan_reader(&db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows = tierwise_api::store::evaluation_scan::scan(&reader, chrono::Utc::now(), 365, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    futures_util::pin_mut!(rows);
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        tierwise_api::store::evaluation_scan::read_row(&row).map_err(|e| anyhow::anyhow!("{e}"))?;
        count += 1;
    }
    println!("scanned {count} customers in {:.2?}", started.elapsed());
    Ok(())
}

/// "VIPs in Shanghai who have not bought for 90 days".
const THREE_CONDITIONS: &str = r#"{"all": [
    {"field": "tier", "op": "eq", "value": "vip"},
    {"field": "region", "op": "eq", "value": "Shanghai"},
    {"field": "recencyDays", "op": "gt", "value": 90}
]}"#;

async fn segment_count(
    database_url: &str,
    rule: &str,
    runs: usize,
    explain: bool,
) -> anyhow::Result<()> {
    use tierwise_api::domain::segment_rule::Rule;
    use tierwise_api::store::{segment_sql, segments};
    let db = connect(database_url).await?;
    let json: serde_json::Value = serde_json::from_str(rule).context("--rule is not JSON")?;
    let parsed = Rule::parse(&json, "rule", &|_| true).map_err(|e| anyhow::anyhow!("{e}"))?;
    if explain {
        let backend = db.conn().get_database_backend();
        let context = segments::RuleContext::load(db.conn())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let condition = segment_sql::compile(
            &parsed,
            backend,
            chrono::Utc::now(),
            &context.tiers,
            context.churn.as_ref(),
        );
        let query = sea_orm::sea_query::Query::select()
            .expr(sea_orm::sea_query::Expr::cust("count(*)"))
            .from(entity::customer::Entity)
            .and_where(condition)
            .to_owned();
        let (sql, values) = query.build(sea_orm::sea_query::PostgresQueryBuilder);
        let statement = sea_orm::Statement::from_sql_and_values(
            backend,
            format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
            values.0,
        );
        for row in db.conn().query_all_raw(statement).await? {
            println!("{}", row.try_get_by_index::<String>(0)?);
        }
        return Ok(());
    }
    // The same path `Segment.memberCount` takes, for a segment that is never saved.
    let segment = entity::segment::Model {
        id: uuid::Uuid::now_v7(),
        name: "bench".into(),
        description: None,
        kind: entity::enums::SegmentKind::Dynamic,
        rule: Some(json),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let mut timings = Vec::with_capacity(runs);
    let mut members = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let counts = segments::member_counts(db.conn(), std::slice::from_ref(&segment))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        timings.push(started.elapsed());
        members = counts.get(&segment.id).copied().unwrap_or(0);
    }
    timings.sort();
    println!(
        "memberCount = {members}: median {:.1?}, fastest {:.1?}, slowest {:.1?} over {runs} runs",
        timings[timings.len() / 2],
        timings[0],
        timings[timings.len() - 1]
    );
    Ok(())
}

fn staff_token(secret: &str) -> anyhow::Result<String> {
    let keys = JwtKeys::hs256(secret.as_bytes(), None, None);
    let now = chrono::Utc::now().timestamp();
    keys.sign(&Claims {
        sub: "bench".into(),
        role: "staff".into(),
        exp: now + 3600,
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
        customer_id: None,
        scope: None,
    })
    .context("signing a token")
}

/// Resident memory of a process, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn fanout(
    url: &str,
    secret: &str,
    subscribers: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use std::sync::{Arc, OnceLock};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let token = staff_token(secret)?;
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: serde_json::Value| {
        let request = client
            .post(url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        async move {
            let body: serde_json::Value = request.send().await?.json().await?;
            anyhow::ensure!(body.get("errors").is_none(), "{body}");
            Ok::<_, anyhow::Error>(body["data"].clone())
        }
    };
    let created = post(
        "mutation { createCustomer(input: { name: \"Fan-out\" }) { id } }",
        serde_json::json!({}),
    )
    .await?;
    let customer = created["createCustomer"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let websocket = format!("{}/ws", url.replacen("http", "ws", 1));
    let before = server_pid.and_then(resident_kib);

    let started: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers);
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (websocket, token, customer) = (websocket.clone(), token.clone(), customer.clone());
        let (started, connecting, ready) = (started.clone(), connecting.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.ok()?;
            let mut request = websocket.into_client_request().ok()?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().ok()?);
            let (mut socket, _) = tokio_tungstenite::connect_async(request).await.ok()?;
            let init = serde_json::json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
            socket.send(Message::text(init.to_string())).await.ok()?;
            socket.next().await?.ok()?;
            let subscribe = serde_json::json!({"type": "subscribe", "id": "1", "payload": {
                "query": "subscription($id: ID) { tierChanged(customerId: $id) { reason to { key } } }",
                "variables": { "id": customer }}});
            socket.send(Message::text(subscribe.to_string())).await.ok()?;
            drop(permit);
            // Counted, then let go: the counting loop ends when every task has reported.
            ready.send(()).await.ok()?;
            drop(ready);
            while let Some(Ok(message)) = socket.next().await {
                match message {
                    Message::Text(text) if text.contains("\"next\"") => {
                        // An event before the measured change is one the relay was still
                        // delivering (an earlier workload moved this customer): said so,
                        // rather than dropped from the count.
                        return Some(match started.get() {
                            Some(started) => Ok(started.elapsed()),
                            None => Err(format!("an earlier change, before the measured one: {text}")),
                        });
                    }
                    // Anything else the server says instead is why this one missed it.
                    Message::Text(text) if !text.contains("\"ping\"") => {
                        return Some(Err(text.to_string()));
                    }
                    Message::Close(frame) => return Some(Err(format!("closed: {frame:?}"))),
                    _ => {}
                }
            }
            Some(Err("the connection ended".into()))
        }));
    }
    drop(ready_tx);
    let mut connected = 0;
    while ready_rx.recv().await.is_some() {
        connected += 1;
    }
    // Let the server start every subscription it was sent.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = server_pid.and_then(resident_kib);
    let _ = started.set(Instant::now());
    post(
        "mutation($id: ID!) { setCustomerTier(customerId: $id, tierKey: \"vip\", note: \"fan-out\") { id } }",
        serde_json::json!({ "id": customer }),
    )
    .await?;
    let outcomes: Vec<Result<std::time::Duration, String>> = join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    let mut missed: std::collections::BTreeMap<String, usize> = Default::default();
    let mut latencies = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok(latency) => latencies.push(latency),
            Err(why) => *missed.entry(why.chars().take(160).collect()).or_default() += 1,
        }
    }
    for (why, count) in &missed {
        println!("{count} subscribers missed the change: {why}");
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    anyhow::ensure!(!latencies.is_empty(), "no subscriber received the change");
    println!(
        "{} of {subscribers} subscribers connected, {} received the change: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        connected,
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "server memory: {} MiB before, {} MiB with the subscribers: {:.1} KiB per connection",
            before / 1024,
            after / 1024,
            (after.saturating_sub(before)) as f64 / connected.max(1) as f64
        );
    }
    Ok(())
}
