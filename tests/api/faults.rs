//! Fault tests: the promises that must hold when the database or the process fails.
//!
//! - Postgres restarted under load: a private instance (`initdb` into a temporary
//!   directory, its own port, never the shared cluster other tests use) is stopped and
//!   started while writers record purchases with idempotency keys and retry until they
//!   succeed. `/readyz` says 503 while it is down, the server recovers by itself, every
//!   write is recorded exactly once, and the live subscriber receives every committed
//!   change.
//! - The server killed with SIGKILL in the middle of a 1,000-interaction batch: the batch
//!   is all or nothing and every balance equals its ledger's sum after a restart.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase, spawn_app_on};
use crate::ws_client::{TRANSPORT, Ws};

/// The installed Postgres's programs (`initdb`, `pg_ctl`), newest version first.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A Postgres instance of this test's own, stopped and removed when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// `None` where Postgres is not installed (outside CI only).
    fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs Postgres installed"
            );
            eprintln!("skipped: no Postgres installation to start a private instance from");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // Postgres refuses to run as root: the instance belongs to `postgres` when the
        // tests run as root (as CI does).
        let as_root = is_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let instance = Self { bin, dir, port };
        let data = instance.data();
        instance.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        instance.pg_ctl_start();
        Some(instance)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        let _ = command
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// Whether the tests run as root (the effective user id is 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

async fn ready(app: &TestApp) -> u16 {
    match app.client.get(app.url("/readyz")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Waits until `/readyz` answers `status`.
async fn wait_ready(app: &TestApp, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if ready(app).await == status {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz never said {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const RECORD: &str = "mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { duplicate interaction { id } } }";

/// Records a purchase with `key`, retrying until it is recorded; whether the call that
/// succeeded found it already recorded.
async fn record_until_done(app: &TestApp, token: &str, customer: &str, key: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    let input =
        json!({ "customerId": customer, "kind": "PURCHASE", "amount": "1", "idempotencyKey": key });
    loop {
        let sent = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": RECORD, "variables": { "input": input } }))
            .timeout(Duration::from_secs(40))
            .send()
            .await;
        if let Ok(response) = sent
            && let Ok(body) = response.json::<Value>().await
            && body.get("errors").is_none()
        {
            return body["data"]["recordInteraction"]["duplicate"] == true;
        }
        assert!(Instant::now() < deadline, "{key} was never recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_and_doubles_nothing() {
    let Some(postgres) = PrivatePostgres::start() else {
        return;
    };
    let app = spawn_app_on(TestDatabase::existing(postgres.url())).await;
    let customer = app.create_customer(json!({ "name": "Wang Fang" })).await;
    let token = app.admin();
    let mut live = Ws::open(&app, TRANSPORT, &token).await;
    live.subscribe(
        "p",
        "subscription($id: ID) { pointsChanged(customerId: $id) { delta kind } }",
        json!({ "id": customer }),
    )
    .await;

    const WRITERS: usize = 4;
    const WRITES: usize = 10;
    let writers = (0..WRITERS).map(|w| {
        let (app, token, customer) = (&app, &token, &customer);
        async move {
            let mut replays = 0;
            for i in 0..WRITES {
                if record_until_done(app, token, customer, &format!("till-{w}-receipt-{i}")).await {
                    replays += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            replays
        }
    });
    let outage = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        postgres.stop();
        wait_ready(&app, 503, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        postgres.pg_ctl_start();
        wait_ready(&app, 200, Duration::from_secs(30)).await;
    };
    let (replays, ()) = tokio::join!(join_all(writers), outage);
    eprintln!(
        "writes found already recorded when retried: {}",
        replays.iter().sum::<usize>()
    );

    // Every write exactly once, and the balance is the ledger's sum.
    let data = app
        .ok(
            "query($id: ID!) { customer(id: $id) { pointsBalance
               interactions(kinds: [PURCHASE]) { totalCount }
               pointsLedger(first: 100) { totalCount nodes { delta } } } }",
            json!({ "id": customer }),
        )
        .await;
    let c = &data["customer"];
    assert_eq!(
        c["interactions"]["totalCount"],
        WRITERS * WRITES,
        "{data:#}"
    );
    let entries = c["pointsLedger"]["nodes"].as_array().unwrap();
    let sum: i64 = entries.iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    assert_eq!(c["pointsBalance"].as_i64().unwrap(), sum);
    assert_eq!(
        c["pointsLedger"]["totalCount"].as_u64().unwrap() as usize,
        entries.len()
    );

    // The subscriber received every committed change, across the outage.
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received < entries.len() {
        assert!(
            Instant::now() < deadline,
            "{received} of {} events arrived",
            entries.len()
        );
        let message = live.next_message().await;
        assert_eq!(message["type"], "next", "{message}");
        received += 1;
    }
}

// ---------------------------------------------------------------------------------------
// SIGKILL

/// `tierwise serve` on `database_url`, admins not rate-limited (the test sends batches as
/// fast as it can).
fn serve(database_url: &str) -> ServerProcess {
    ServerProcess::start(database_url, &[("RATE_LIMIT_ADMIN", "0")])
}

async fn post(url: &str, query: &str, variables: Value) -> reqwest::Result<Value> {
    crate::helpers::post_graphql(url, &crate::helpers::token("admin"), query, variables).await
}

async fn a_kill_mid_batch_leaves_all_or_nothing(database: TestDatabase) {
    let mut server = serve(&database.url);
    let url = server.graphql.clone();
    let created = post(
        &url,
        "mutation { createCustomer(input: { name: \"Wang Fang\" }) { id } }",
        json!({}),
    )
    .await
    .unwrap();
    let customer = created["data"]["createCustomer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch_of = |customer: &str| -> Vec<Value> {
        (0..1000)
            .map(|i| json!({ "customerId": customer, "kind": "PURCHASE", "amount": "2", "orderRef": format!("B-{i}") }))
            .collect()
    };
    // How long a whole batch takes here, measured on another customer: the kill lands
    // halfway through the next one.
    let other = post(
        &url,
        "mutation { createCustomer(input: { name: \"Li Lei\" }) { id } }",
        json!({}),
    )
    .await
    .unwrap()["data"]["createCustomer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let full = post(
        &url,
        "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { pointsEarned } }",
        json!({ "inputs": batch_of(&other) }),
    )
    .await
    .unwrap();
    assert!(full.get("errors").is_none(), "{full}");
    let whole = started.elapsed();
    let inputs = batch_of(&customer);
    let batch = tokio::spawn({
        let url = url.clone();
        async move {
            post(
                &url,
                "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) { pointsEarned } }",
                json!({ "inputs": inputs }),
            )
            .await
        }
    });
    tokio::time::sleep(whole / 2).await;
    server.kill();
    let answered = batch.await.unwrap();
    let mut server = serve(&database.url);
    let url = server.graphql.clone();
    let after = post(
        &url,
        "query($id: ID!, $other: ID!) { customer(id: $id) { pointsBalance interactions { totalCount } }
           other: customer(id: $other) { pointsBalance } }",
        json!({ "id": customer, "other": other }),
    )
    .await
    .unwrap();
    server.kill();
    let recorded = after["data"]["customer"]["interactions"]["totalCount"]
        .as_u64()
        .unwrap();
    let balance = after["data"]["customer"]["pointsBalance"].as_i64().unwrap();
    assert!(
        recorded == 0 || recorded == 1000,
        "half a batch: {recorded} of 1000"
    );
    eprintln!("a batch takes {whole:?}; killed halfway: {recorded} recorded");
    if answered.is_err() {
        assert_eq!(recorded, 0, "killed before it committed, nothing is kept");
    }
    let db = Database::connect(database.url.clone()).await.unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS total FROM points_entry",
        ))
        .await
        .unwrap()
        .unwrap();
    let total: i64 = row.try_get("", "total").unwrap();
    let other_balance = after["data"]["other"]["pointsBalance"].as_i64().unwrap();
    assert_eq!(
        total,
        balance + other_balance,
        "every balance is its ledger's sum"
    );
    assert_eq!(balance > 0, recorded == 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_batch_leaves_all_or_nothing_sqlite() {
    let database = TestDatabase::new(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    a_kill_mid_batch_leaves_all_or_nothing(database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_batch_leaves_all_or_nothing_postgres() {
    if let Some(database) = TestDatabase::new(crate::helpers::Backend::Postgres).await {
        a_kill_mid_batch_leaves_all_or_nothing(database).await;
    }
}
