//! The `tierwise` binary: the embedded first run, tokens, migrations, and refusing to run
//! Postgres without a key.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tierwise_api::auth::JwtKeys;

fn tierwise(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tierwise"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("JWT_PUBLIC_KEY_FILE")
        .env_remove("JWT_ISSUER")
        .env_remove("JWT_AUDIENCE")
        .env_remove("DEMO_DATA")
        .env("RUST_LOG", "info");
    command
}

struct Server {
    child: Child,
    url: String,
    /// The admin token printed on the first start of a new database only.
    token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tierwise` with no arguments in `dir` and reads the address and admin token it
/// prints.
fn start(dir: &std::path::Path) -> Server {
    let mut child = tierwise(dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.split_whitespace().last().unwrap().to_owned();
    assert!(
        first.starts_with("Tierwise is serving GraphiQL at http://127.0.0.1:"),
        "{first}"
    );
    let heading = lines.next().unwrap().unwrap();
    let token = if heading.starts_with("Admin token") {
        Some(lines.next().unwrap().unwrap())
    } else {
        assert!(heading.contains("tierwise token"), "{heading}");
        None
    };
    Server { child, url, token }
}

async fn customers_total(server: &Server) -> Value {
    let body: Value = reqwest::Client::new()
        .post(&server.url)
        .bearer_auth(server.token.as_deref().expect("a token"))
        .json(&json!({ "query": "{ viewer { role } customers { totalCount } tiers { key } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body
}

#[tokio::test]
async fn the_first_run_creates_a_demo_database_and_prints_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = customers_total(&server).await;
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN", "{body}");
    assert_eq!(
        body["data"]["customers"]["totalCount"], 300,
        "the demo data set"
    );
    assert_eq!(
        body["data"]["tiers"].as_array().unwrap().len(),
        3,
        "the default program"
    );
    assert!(dir.path().join("tierwise.db").exists());
    let secret = dir.path().join("tierwise.db.secret");
    assert!(secret.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(
            mode(&dir.path().join("tierwise.db")),
            0o600,
            "customers' data"
        );
        // Loosened by hand: corrected on the next start.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let old_token = server.token.clone();
    drop(server);

    // A restart keeps the secret (old tokens work), prints no token into whatever
    // collects its output, and does not load the demo again.
    let mut server = start(dir.path());
    assert_eq!(server.token, None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    server.token = old_token;
    let body = customers_total(&server).await;
    assert_eq!(body["data"]["customers"]["totalCount"], 300, "{body}");
}

#[test]
fn token_mints_verifiable_tokens_for_each_role() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-secret-cli-secret-cli-secret-012345";
    let keys = JwtKeys::hs256(secret.as_bytes(), Some("issuer.test".into()), None);
    let customer_id = uuid::Uuid::now_v7().to_string();
    for args in [
        vec!["--role", "admin"],
        vec![
            "--role",
            "partner",
            "--sub",
            "pos-17",
            "--scope",
            "customers:read interactions:write",
            "--ttl",
            "30m",
        ],
        vec!["--role", "customer", "--customer-id", &customer_id],
    ] {
        let output = tierwise(dir.path())
            .env("JWT_SECRET", secret)
            .env("JWT_ISSUER", "issuer.test")
            .arg("token")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let token = String::from_utf8(output.stdout).unwrap();
        let principal = keys.verify(token.trim()).unwrap();
        assert_eq!(principal.role.as_str(), args[1]);
        if args[1] == "customer" {
            // Each customer's token names it as its subject: two customers' tokens
            // never share a `sub` (nor, with it, anything keyed by the caller).
            assert_eq!(principal.subject, customer_id);
        }
    }
    let refused = tierwise(dir.path())
        .env("JWT_SECRET", secret)
        .args(["token", "--role", "customer"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--customer-id"));
    let refused = tierwise(dir.path())
        .env("JWT_SECRET", secret)
        .args(["token", "--role", "root"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn postgres_without_a_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = tierwise(dir.path())
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("JWT_PUBLIC_KEY_FILE"),
        "{stderr}"
    );
}

/// `tierwise evaluate | head -1` closes the pipe before the command prints its last
/// lines: the command's work is done, and it ends quietly instead of panicking.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tierwise(dir.path())
        .arg("migrate")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let again = tierwise(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(
        String::from_utf8(again.stdout).unwrap().trim(),
        "database up to date"
    );
}

#[test]
fn migrate_creates_then_reports_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let output = tierwise(dir.path()).arg("migrate").output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run().trim(), "database created");
    assert_eq!(run().trim(), "database up to date");
}

#[test]
fn import_loads_csv_files_then_evaluates_or_refuses_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "customers.csv",
        "external_ref,name,referred_by\nP-1,Chen Jing,\nP-2,Liu Yang,P-1\n",
    );
    write(
        "interactions.csv",
        "customer_ref,kind,occurred_at,amount\nP-1,PURCHASE,2025-01-10,99.90\n\
         P-1,PURCHASE,2025-02-10,20\nP-2,VISIT,2025-02-11,\n",
    );
    write("points.csv", "customer_ref,points\nP-1,120\n");
    write(
        "more.csv",
        "customer_ref,kind,occurred_at\nP-2,VISIT,2025-03-01\nX-9,VISIT,2025-03-02\n",
    );
    let import = |args: &[&str]| {
        tierwise(dir.path())
            .args(["import", "--quiet"])
            .args(args)
            .output()
            .unwrap()
    };

    let output = import(&[
        "--customers",
        "customers.csv",
        "--interactions",
        "interactions.csv",
        "--points",
        "points.csv",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with(
            "imported 2 customers (1 referrals), 3 interactions and 1 points entries in "
        ),
        "{stdout}"
    );
    assert!(stdout.contains("tierwise evaluate"), "{stdout}");

    // A bad line refuses the whole file, says where, and exits non-zero.
    let output = import(&["--interactions", "more.csv", "--evaluate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "nothing was imported: more.csv: customer_ref names no customer: line 3 (\"X-9\")"
        ),
        "{stderr}"
    );

    // --evaluate runs an evaluation over what came in.
    write(
        "more.csv",
        "customer_ref,kind,occurred_at\nP-2,VISIT,2025-03-01\n",
    );
    let output = import(&["--interactions", "more.csv", "--evaluate"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("imported 0 customers (0 referrals), 1 interactions and 0 points entries"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SUCCEEDED: as of ") && stdout.contains("2 customers evaluated"),
        "{stdout}"
    );
}
