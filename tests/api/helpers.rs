//! `spawn_app()` and `TestApp`: a running server on a fresh database, and ways to talk
//! to it.

use std::net::SocketAddr;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tierwise_api::app::Application;
use tierwise_api::auth::{Claims, JwtKeys};
use tierwise_api::config::{Config, Limits};
use tierwise_api::store::Db;
use tokio::sync::oneshot;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const ISSUER: &str = "https://auth.tierwise.test";
pub const AUDIENCE: &str = "tierwise-api";
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares, for each async fn `name(app: TestApp)`, the tests `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.expect("SQLite is always there");
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    )*};
}
pub(crate) use on_both;

/// Like `on_both!`, for each async fn `name(backend: Backend)` that starts its own
/// server (with its own configuration): the tests `name::sqlite` and `name::postgres`.
/// The function returns early when Postgres is skipped.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use on_both_backends;

/// A fresh database: a temporary SQLite file, or a new Postgres database dropped when
/// the test ends.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// `None` when Postgres is unreachable outside CI (the test is skipped).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}/tierwise.db", dir.path().display());
                Some(Self {
                    url,
                    _dir: Some(dir),
                    postgres_name: None,
                })
            }
            Backend::Postgres => {
                let admin = match Database::connect(POSTGRES_ADMIN_URL).await {
                    Ok(admin) => admin,
                    Err(error) if std::env::var_os("CI").is_none() => {
                        eprintln!(
                            "skipped: Postgres is unreachable at {POSTGRES_ADMIN_URL}: {error}"
                        );
                        return None;
                    }
                    Err(error) => panic!(
                        "CI is set and Postgres is unreachable at {POSTGRES_ADMIN_URL}: {error}"
                    ),
                };
                let name = format!("tierwise_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                Some(Self {
                    url,
                    _dir: None,
                    postgres_name: Some(name),
                })
            }
        }
    }
}

impl TestDatabase {
    /// A database the test made itself (a private Postgres instance): nothing to drop.
    pub fn existing(url: String) -> Self {
        Self {
            url,
            _dir: None,
            postgres_name: None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.postgres_name.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on: a thread
            // with a runtime of its own removes the database.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let admin = Database::connect(POSTGRES_ADMIN_URL).await.ok()?;
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub keys: JwtKeys,
    pub db: Db,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last: dropped after the server has been told to stop.
    _database: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn test_keys() -> JwtKeys {
    JwtKeys::hs256(
        SECRET.as_bytes(),
        Some(ISSUER.into()),
        Some(AUDIENCE.into()),
    )
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with_keys(backend, test_keys()).await
}

pub async fn spawn_app_with_keys(backend: Backend, keys: JwtKeys) -> Option<TestApp> {
    spawn_app_with(backend, |config| Config { keys, ..config }).await
}

/// A server with the test configuration as `tweak` changes it.
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(Config) -> Config,
) -> Option<TestApp> {
    let database = TestDatabase::new(backend).await?;
    Some(spawn_on(database, tweak).await)
}

/// Production's limits, but for the rate limits: a test sends as fast as it can with
/// one token, which no real caller does (`abuse` tests the rate limits themselves).
pub fn test_limits() -> Limits {
    use tierwise_api::http::rate_limit::{Budget, Budgets};
    let unlimited = Budget::per_second(0);
    Limits {
        rates: Budgets {
            admin: unlimited,
            staff: unlimited,
            partner: unlimited,
            customer: unlimited,
        },
        ..Limits::default()
    }
}

/// A server whose subscribers are dropped once `batches` batches of events behind.
pub async fn spawn_app_with_event_buffer(backend: Backend, batches: usize) -> Option<TestApp> {
    spawn_app_with(backend, |config| Config {
        event_buffer: batches,
        ..config
    })
    .await
}

/// A server with these limits on what clients may hold and ask for.
pub async fn spawn_app_with_limits(backend: Backend, limits: Limits) -> Option<TestApp> {
    spawn_app_with(backend, |config| Config { limits, ..config }).await
}

/// A server on a database the test provides.
pub async fn spawn_app_on(database: TestDatabase) -> TestApp {
    spawn_on(database, |config| config).await
}

async fn spawn_on(database: TestDatabase, tweak: impl FnOnce(Config) -> Config) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        tierwise_api::telemetry::init();
    }
    let config = tweak(test_config(&database.url));
    let keys = config.keys.clone();
    // The production builder: everything `app.rs` wires (the relay, the supervisor,
    // the schedule when configured) runs under test too.
    let application = Application::build(&config)
        .await
        .expect("application built");
    let db = application.db().clone();
    let address = application.local_addr().expect("address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        keys,
        db,
        shutdown: Some(shutdown),
        _database: database,
    }
}

/// The configuration tests run with: the given database, any free port, the test keys,
/// no demo data, no schedule, production's limits.
pub fn test_config(database_url: &str) -> Config {
    Config {
        database_url: database_url.to_owned(),
        listen_addr: "127.0.0.1:0".parse().expect("address"),
        keys: test_keys(),
        base_currency: "CNY".into(),
        demo_data: false,
        evaluation_schedule: None,
        event_buffer: tierwise_api::config::DEFAULT_EVENT_BUFFER,
        webhooks: test_webhooks(),
        limits: test_limits(),
        new_secret: false,
    }
}

/// Webhook settings for tests: receivers on this machine (plain http, loopback) allowed,
/// and retries and timeouts in seconds.
pub fn test_webhooks() -> tierwise_api::webhooks::Settings {
    use std::time::Duration;
    tierwise_api::webhooks::Settings {
        allow_http: true,
        allow_private: true,
        retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(1)],
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(200),
        ..Default::default()
    }
}

/// Claims valid for the test server, for `role`.
pub fn claims(role: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: format!("{role}-tester"),
        role: role.into(),
        exp: now + 600,
        nbf: None,
        iat: Some(now),
        iss: Some(ISSUER.into()),
        aud: Some(AUDIENCE.into()),
        customer_id: None,
        scope: None,
    }
}

/// Signs arbitrary claims with the test secret, bypassing `JwtKeys`.
pub fn sign_raw(claims: &Value, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

impl TestApp {
    /// Which database this server runs on.
    pub fn backend(&self) -> Backend {
        match self._database.postgres_name {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn sign(&self, claims: &Claims) -> String {
        self.keys.sign(claims).expect("sign")
    }

    pub fn admin(&self) -> String {
        self.sign(&claims("admin"))
    }

    pub fn staff(&self) -> String {
        self.sign(&claims("staff"))
    }

    pub fn partner(&self, scope: &str) -> String {
        self.sign(&Claims {
            scope: Some(scope.into()),
            ..claims("partner")
        })
    }

    pub fn customer_token(&self, customer_id: &str) -> String {
        self.sign(&Claims {
            customer_id: Some(customer_id.into()),
            ..claims("customer")
        })
    }

    /// POSTs a GraphQL request and returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        response.json().await.expect("a JSON body")
    }

    /// As `gql`, as admin, and fails the test on any error.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let token = self.admin();
        self.ok_as(&token, query, variables).await
    }

    pub async fn ok_as(&self, token: &str, query: &str, variables: Value) -> Value {
        data_of(&self.gql(Some(token), query, variables).await).clone()
    }

    /// How many customers `filter` matches (`totalCount`).
    pub async fn count_customers(&self, filter: Value) -> i64 {
        self.ok(
            "query($filter: CustomerFilter) { customers(filter: $filter) { totalCount } }",
            json!({ "filter": filter }),
        )
        .await["customers"]["totalCount"]
            .as_i64()
            .expect("a count")
    }

    /// The text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The database this server runs on, for a second process's view of it.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    /// Creates a customer as admin and returns its id.
    pub async fn create_customer(&self, input: Value) -> String {
        let data = self
            .ok(
                "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
                json!({ "input": input }),
            )
            .await;
        data["createCustomer"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// Asserts that `body` failed with `code`, and returns its message.
#[track_caller]
pub fn assert_error(body: &Value, code: &str) -> String {
    assert_eq!(error_code(body), Some(code), "expected {code}: {body:#}");
    error_message(body).to_owned()
}

/// How the server writes an instant.
pub fn ts(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An instant as the server wrote it.
pub fn instant(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a DateTime"))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// A `tierwise serve` process of the binary under test (replicas, kills, schedules across
/// processes): the test keys, any free port, no demo data, no schedule unless `env` sets
/// one. Killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>/graphql`, as the server printed it.
    pub graphql: String,
}

impl ServerProcess {
    /// Starts the binary on `database_url`, with `env` set after the defaults.
    /// Two replicas on one database, ready: one after the other, so that the first
    /// applies the migrations.
    pub async fn pair(database_url: &str, env: &[(&str, &str)]) -> (Self, Self) {
        let first = Self::start(database_url, env);
        first.wait_until_ready().await;
        let second = Self::start(database_url, env);
        second.wait_until_ready().await;
        (first, second)
    }

    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut command = Command::new(env!("CARGO_BIN_EXE_tierwise"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", SECRET)
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("DEMO_DATA", "false")
            .env_remove("JWT_PUBLIC_KEY_FILE")
            .env_remove("EVALUATION_SCHEDULE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("tierwise starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a line").expect("readable");
        let graphql = first
            .split_whitespace()
            .last()
            .expect("the address")
            .to_owned();
        assert!(graphql.starts_with("http://127.0.0.1:"), "{first}");
        // Keep reading what it prints, so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, graphql }
    }

    pub fn websocket(&self) -> String {
        format!("{}/ws", self.graphql.replacen("http://", "ws://", 1))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_until_ready(&self) {
        wait_until_ready(&self.graphql.replace("/graphql", "/readyz")).await;
    }

    /// POSTs a GraphQL request with `token`; the whole response body, or the transport
    /// error (the process may have been killed).
    pub async fn post(&self, token: &str, query: &str, variables: Value) -> reqwest::Result<Value> {
        post_graphql(&self.graphql, token, query, variables).await
    }

    /// `post`'s data; fails the test on any error.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.post(token, query, variables).await.expect("an answer");
        data_of(&body).clone()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A token of the test keys for `role`.
pub fn token(role: &str) -> String {
    test_keys().sign(&claims(role)).expect("token")
}

/// Waits until `ready` (a `/readyz` address) answers 200; fails the test after 10 s.
pub async fn wait_until_ready(ready: &str) {
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(ready).await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{ready} never became ready");
}

/// The data of a successful response; fails the test on any error.
#[track_caller]
pub fn data_of(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
    &body["data"]
}

/// The field `name` of a successful response's data; fails the test on any error.
#[track_caller]
pub fn data<'a>(body: &'a Value, name: &str) -> &'a Value {
    &data_of(body)[name]
}

/// POSTs a GraphQL request to `url` with `token`; the whole response body, or the
/// transport error.
pub async fn post_graphql(
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> reqwest::Result<Value> {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await
}
