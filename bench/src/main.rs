//! Benchmarks for Tierwise (see BENCHMARKS.md for the commands and the results):
//!
//! - `seed`: fills a Postgres database with a synthetic population, generated in SQL;
//! - `evaluate`: times an evaluation run over it, in process;
//! - `record`: measures `recordInteraction` latency against a running server with many
//!   concurrent clients.

mod dataset;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use rand::Rng;
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
    /// Create N customers with M interactions in all (Postgres; generated in SQL).
    Seed {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        customers: i64,
        /// Interactions per customer.
        #[arg(long, default_value_t = 10)]
        per_customer: i64,
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
    /// Record purchases for random seeded customers from many clients at once.
    Record {
        /// The server's GraphQL endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8000/graphql")]
        url: String,
        /// The server's HS256 secret (JWT_SECRET), to sign a staff token.
        #[arg(long, env = "JWT_SECRET")]
        secret: String,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 200)]
        requests_per_client: usize,
        /// Seeded customers are `BENCH-1` … `BENCH-<customers>`.
        #[arg(long, default_value_t = 1_000_000)]
        customers: i64,
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
        Command::Seed {
            database_url,
            customers,
            per_customer,
        } => seed(&database_url, customers, per_customer).await,
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
        Command::Record {
            url,
            secret,
            clients,
            requests_per_client,
            customers,
        } => record(&url, &secret, clients, requests_per_client, customers).await,
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

async fn seed(database_url: &str, customers: i64, per_customer: i64) -> anyhow::Result<()> {
    if !database_url.starts_with("postgres") {
        bail!("seed generates data with Postgres SQL; give a postgres:// URL");
    }
    let db = connect(database_url).await?;
    let conn = db.conn();
    let started = Instant::now();
    let chunk = 100_000;
    let mut from = 1;
    while from <= customers {
        let to = (from + chunk - 1).min(customers);
        // Customers start in the lowest tier, like real new customers.
        conn.execute_unprepared(&format!(
            "INSERT INTO customer (id, external_ref, name, kind, region, attributes,
                 lifecycle_stage, tier_id, referral_code, metrics_as_of, created_at, updated_at)
             SELECT gen_random_uuid(), 'BENCH-' || i, 'Bench customer ' || i,
                 CASE WHEN i % 5 = 0 THEN 'BUSINESS' ELSE 'INDIVIDUAL' END,
                 -- 20 regions, the first ones the biggest, as in a real customer base.
                 (ARRAY['Shanghai','Beijing','Guangzhou','Shenzhen','Hangzhou','Chengdu',
                   'Wuhan','Nanjing','Xi''an','Chongqing','Tianjin','Suzhou','Qingdao',
                   'Dalian','Xiamen','Changsha','Kunming','Harbin','Shenyang','Ningbo'])
                   [1 + floor(power(random(), 2) * 20)::int],
                 jsonb_build_object('companySize', (ARRAY[10, 50, 200, 1000])[1 + floor(random() * 4)::int]),
                 'PROSPECT', (SELECT id FROM tier ORDER BY rank LIMIT 1), 'B' || i, now(), now(), now()
             FROM generate_series({from}, {to}) AS i"
        ))
        .await?;
        // Purchases dominate; amounts and dates spread over a year and a half.
        conn.execute_unprepared(&format!(
            "INSERT INTO interaction (id, customer_id, kind, occurred_at, amount_e4, rating,
                 recorded_by, recorded_at)
             SELECT gen_random_uuid(), c.id, k.kind,
                 now() - (random() * 540) * interval '1 day',
                 CASE WHEN k.kind IN ('PURCHASE', 'REFUND', 'SHIPMENT', 'PAYMENT')
                      THEN (10000 + floor(random() * 20000000))::bigint END,
                 CASE WHEN k.kind = 'SURVEY' THEN floor(random() * 11)::int END,
                 'bench', now()
             FROM customer c
             CROSS JOIN generate_series(1, {per_customer}) AS n
             CROSS JOIN LATERAL (SELECT (ARRAY['PURCHASE','PURCHASE','PURCHASE','PURCHASE',
                 'PURCHASE','VISIT','SERVICE_CONTACT','SURVEY','REFUND','CAMPAIGN_RESPONSE'])
                 [1 + floor(random() * 10)::int + (n * 0)] AS kind) k
             WHERE c.external_ref IN (SELECT 'BENCH-' || i FROM generate_series({from}, {to}) AS i)"
        ))
        .await?;
        println!(
            "seeded customers {from}..={to} ({:.0?} so far)",
            started.elapsed()
        );
        from = to + 1;
    }
    conn.execute_unprepared("ANALYZE customer; ANALYZE interaction")
        .await?;
    println!(
        "seeded {customers} customers and {} interactions in {:.1?}",
        customers * per_customer,
        started.elapsed()
    );
    Ok(())
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
                if let Message::Text(text) = message
                    && text.contains("\"next\"")
                {
                    return Some(started.get()?.elapsed());
                }
            }
            None
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
    let mut latencies: Vec<std::time::Duration> = join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
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

async fn record(
    url: &str,
    secret: &str,
    clients: usize,
    requests_per_client: usize,
    customers: i64,
) -> anyhow::Result<()> {
    let token = staff_token(secret)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let query = "mutation($in: RecordInteractionInput!) { recordInteraction(input: $in) { pointsEarned duplicate } }";
    let started = Instant::now();
    let workers = (0..clients).map(|_| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let mut latencies = Vec::with_capacity(requests_per_client);
            for _ in 0..requests_per_client {
                let (customer, cents) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=customers),
                        rng.random_range(100..100_000),
                    )
                };
                let body = serde_json::json!({ "query": query, "variables": { "in": {
                    "customerExternalRef": format!("BENCH-{customer}"),
                    "kind": "PURCHASE",
                    "amount": format!("{}.{:02}", cents / 100, cents % 100),
                } } });
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?;
                let reply: serde_json::Value = response.json().await?;
                latencies.push(sent.elapsed());
                if reply.get("errors").is_some() {
                    bail!("request failed: {reply}");
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }
    });
    let mut latencies: Vec<Duration> = Vec::new();
    for result in join_all(workers).await {
        latencies.extend(result?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "{} recordInteraction calls from {clients} clients in {elapsed:.1?} ({:.0}/s): p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    );
    Ok(())
}
