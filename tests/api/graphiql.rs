//! GraphiQL works without the internet: headless Chromium, whose every connection but
//! loopback's fails, loads the console from the server, and a query typed into it runs.
//! Driven over the DevTools protocol. Chromium comes from Debian's packages (`.ci/run`
//! installs it); without it the test is skipped, and fails when `CI` is set.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, on_both};

fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Chromium for the GraphiQL test (Debian: apt-get install chromium; .ci/run installs it)"
        );
        eprintln!("skipped: no Chromium here (Debian: apt-get install chromium)");
    }
    found
}

/// A headless Chromium that reaches only loopback, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_browser(path: &str) -> Browser {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(path)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            // Every host but loopback resolves to nothing, and any connection that is
            // not to loopback goes to a closed port.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Chromium starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("Chromium says where DevTools listen")
            .unwrap();
        if let Some(address) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
            break address.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Browser {
        child,
        _profile: profile,
        port,
    }
}

/// One page, over the DevTools protocol: commands, and the URLs it requested.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    requested: Vec<String>,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", browser.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page")
            .clone();
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Page {
            socket,
            next_id: 0,
            requested: Vec::new(),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::Text(message.into()))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answer")
                .expect("open")
                .unwrap();
            let Message::Text(text) = frame else {
                continue;
            };
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["method"] == "Network.requestWillBeSent" {
                let url = message["params"]["request"]["url"]
                    .as_str()
                    .unwrap_or_default();
                self.requested.push(url.to_owned());
            }
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }
}

async fn graphiql_runs_a_query_without_the_internet(app: TestApp) {
    let Some(path) = chromium() else {
        return;
    };
    let browser = start_browser(path);
    let mut page = Page::open(&browser).await;
    page.call("Network.enable", json!({})).await;
    page.call("Page.enable", json!({})).await;
    let console = format!("http://{}/graphql", app.address);
    page.call("Page.navigate", json!({ "url": console })).await;

    let mut waited = 0;
    while page
        .eval("document.querySelector('.graphiql-execute-button') !== null")
        .await
        != json!(true)
    {
        assert!(waited < 200, "GraphiQL did not render within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }

    // Type a query and the token, press Run, read the result pane.
    let headers = json!({ "Authorization": format!("Bearer {}", app.admin()) }).to_string();
    let script = format!(
        r#"(async () => {{
            const editor = (selector) => document.querySelector(selector).CodeMirror;
            editor('.graphiql-query-editor .CodeMirror').setValue('{{ viewer {{ role }} tiers {{ key }} }}');
            editor('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror').setValue({headers});
            await new Promise((done) => setTimeout(done, 200));
            document.querySelector('.graphiql-execute-button').click();
            for (let i = 0; i < 100; i++) {{
                const result = editor('.result-window .CodeMirror').getValue();
                if (result.includes('viewer')) return result;
                await new Promise((done) => setTimeout(done, 100));
            }}
            return 'no result: ' + editor('.result-window .CodeMirror').getValue();
        }})()"#,
        headers = serde_json::to_string(&headers).unwrap(),
    );
    let result = page.eval(&script).await;
    let result: Value = serde_json::from_str(result.as_str().unwrap_or_default())
        .unwrap_or_else(|_| panic!("a JSON result: {result}"));
    assert_eq!(result["data"]["viewer"]["role"], "ADMIN", "{result}");
    assert_eq!(result["data"]["tiers"][0]["key"], "potential", "{result}");

    // Everything the page loaded came from the server itself.
    assert!(
        page.requested
            .iter()
            .filter(
                |url| url.starts_with(&format!("{console}/")) || url.contains("/graphiql/3.8.3/")
            )
            .count()
            >= 3,
        "the assets were loaded: {:?}",
        page.requested
    );
    let origin = format!("http://{}/", app.address);
    for url in &page.requested {
        assert!(
            url.starts_with(&origin) || url.starts_with("data:"),
            "the page asked for {url}, off the server"
        );
    }
}

on_both!(graphiql_runs_a_query_without_the_internet);
