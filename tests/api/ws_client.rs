//! A WebSocket client for `/graphql/ws` tests: both protocols, keep-alives skipped,
//! `sync` (ping/pong) to know the server has taken a subscription in, and helpers that
//! wait with timeouts, never with fixed sleeps.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub const TRANSPORT: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";

/// How long a test waits for any one message.
pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// A WebSocket client

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the server sent: a protocol message, the end of the connection (with the close
/// frame's code and reason when there was one), or a broken connection.
#[derive(Debug)]
pub enum Received {
    Message(Value),
    Closed(Option<(u16, String)>),
    Failed(String),
}

pub struct Ws {
    pub socket: Socket,
    pub legacy: bool,
    /// Messages read while waiting for something else (a `pong`), in order.
    pub pending: VecDeque<Value>,
}

impl Ws {
    /// Opens `/graphql/ws` offering `protocol`, and checks the server chose it.
    pub async fn connect(app: &TestApp, protocol: &str) -> Ws {
        Ws::connect_to(&format!("ws://{}/graphql/ws", app.address), protocol).await
    }

    /// Opens the WebSocket endpoint at `url` (another server process's) offering
    /// `protocol`, and checks the server chose it.
    pub async fn connect_to(url: &str, protocol: &str) -> Ws {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the WebSocket upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        Ws {
            socket,
            legacy: protocol == LEGACY,
            pending: VecDeque::new(),
        }
    }

    /// Connects and initialises with `token`.
    pub async fn open(app: &TestApp, protocol: &str, token: &str) -> Ws {
        let mut ws = Ws::connect(app, protocol).await;
        ws.init(token).await;
        ws
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_owned()))
            .await
            .expect("sent");
    }

    pub fn init_message(token: &str) -> Value {
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })
    }

    /// `connection_init` with `token`; expects `connection_ack`.
    pub async fn init(&mut self, token: &str) {
        self.send(Self::init_message(token)).await;
        let ack = self.next_message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// The next message, skipping the server's keep-alives (`ping`, `ka`); `None` when
    /// nothing came within `wait`.
    pub async fn receive_within(&mut self, wait: Duration) -> Option<Received> {
        if let Some(message) = self.pending.pop_front() {
            return Some(Received::Message(message));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("the server sent non-JSON {text:?}: {e}"));
                    if message["type"] == "ping" || message["type"] == "ka" {
                        continue;
                    }
                    return Some(Received::Message(message));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(Received::Failed(e.to_string())),
                None => return Some(Received::Closed(None)),
            }
        }
    }

    pub async fn receive(&mut self) -> Received {
        self.receive_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing received within {WAIT:?} (until {})", Utc::now()))
    }

    /// The next message; fails the test if the connection ends instead.
    pub async fn next_message(&mut self) -> Value {
        match self.receive().await {
            Received::Message(message) => message,
            other => panic!("the connection ended: {other:?}"),
        }
    }

    /// Expects the connection to close; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        self.try_close()
            .await
            .unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// The close code and reason, or what happened instead.
    pub async fn try_close(&mut self) -> Result<(u16, String), String> {
        match self.receive().await {
            Received::Closed(Some(frame)) => Ok(frame),
            Received::Closed(None) => Err("the connection ended without a close frame".into()),
            Received::Failed(error) => Err(format!(
                "the connection failed instead of closing cleanly: {error}"
            )),
            Received::Message(message) => {
                Err(format!("expected the connection to close, got {message}"))
            }
        }
    }

    pub async fn expect_close_with(&mut self, code: u16) -> String {
        let (got, reason) = self.expect_close().await;
        assert_eq!(got, code, "closed with {got} {reason:?}, expected {code}");
        reason
    }

    /// A `ping` answered by a `pong`. Whatever else arrives first is kept for later.
    pub async fn sync(&mut self) {
        self.send(json!({ "type": "ping" })).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a pong in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    match message["type"].as_str() {
                        Some("pong") => return,
                        Some("ping" | "ka") => {}
                        _ => self.pending.push_back(message),
                    }
                }
                Some(Ok(Message::Close(frame))) => panic!("closed while syncing: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection failed while syncing: {e}"),
                None => panic!("connection ended while syncing"),
            }
        }
    }

    /// Sends `subscribe` (`start` in the legacy protocol) without waiting.
    pub async fn send_subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        self.send(json!({ "type": kind, "id": id, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Subscribes, and makes sure the server has taken the subscription in.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send_subscribe(id, query, variables).await;
        self.sync().await;
    }

    /// Ends a subscription from the client (`complete`, or `stop` in the legacy protocol).
    pub async fn complete(&mut self, id: &str) {
        let kind = if self.legacy { "stop" } else { "complete" };
        self.send(json!({ "type": kind, "id": id })).await;
    }

    /// Expects a result (`next`, or `data`) of subscription `id` without errors; returns
    /// its `data`.
    pub async fn next_data(&mut self, id: &str) -> Value {
        let message = self.next_message().await;
        assert_data(&message, self.legacy, id)
    }

    /// Expects an `error` message for `id`; returns its payload (a list of errors).
    pub async fn expect_error(&mut self, id: &str) -> Value {
        let message = self.next_message().await;
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert!(message["payload"].is_array(), "{message}");
        message["payload"].clone()
    }

    /// Collects results until subscription `id` has had `counts[id]` of them, for every
    /// id in `counts`; each list in the order received. Any other message fails the test.
    pub async fn collect(&mut self, counts: &[(&str, usize)]) -> HashMap<String, Vec<Value>> {
        let mut got: HashMap<String, Vec<Value>> = counts
            .iter()
            .map(|(id, _)| (id.to_string(), Vec::new()))
            .collect();
        let done =
            |got: &HashMap<String, Vec<Value>>| counts.iter().all(|(id, n)| got[*id].len() >= *n);
        while !done(&got) {
            let message = self.next_message().await;
            let id = message["id"].as_str().unwrap_or_default().to_owned();
            let Some(list) = got.get_mut(&id) else {
                panic!("a message for an unexpected subscription: {message}");
            };
            list.push(assert_data(&message, self.legacy, &id));
            let wanted = counts.iter().find(|(i, _)| *i == id).unwrap().1;
            assert!(
                list.len() <= wanted,
                "more results for {id} than expected: {list:#?}"
            );
        }
        got
    }
}

#[track_caller]
pub fn assert_data(message: &Value, legacy: bool, id: &str) -> Value {
    let kind = if legacy { "data" } else { "next" };
    assert_eq!(message["type"], kind, "{message}");
    assert_eq!(message["id"], id, "{message}");
    assert!(message["payload"].get("errors").is_none(), "{message}");
    message["payload"]["data"].clone()
}

/// The `extensions.code` of the first error of an `error` payload.
pub fn code(errors: &Value) -> &str {
    errors[0]["extensions"]["code"].as_str().unwrap_or_default()
}
