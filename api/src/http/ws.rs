//! `GET /graphql/ws`: GraphQL over WebSocket, in the `graphql-transport-ws` protocol and
//! the legacy `graphql-ws` (subscriptions-transport-ws) one.
//!
//! The token is in the `connection_init` payload (`{"Authorization": "Bearer …"}`).
//! Closing codes follow graphql-transport-ws: 4400 a message that is not the protocol's,
//! 4401 a subscribe before the connection was acknowledged, 4403 a refused token (and a
//! token that expires while connected), 4408 no `connection_init` within 10 seconds,
//! 4409 a second subscription with a live id, 4429 a second `connection_init`. The
//! legacy protocol gets `connection_error` first, then the same close.
//!
//! Subscriptions are served by shared feeds (`feeds`): each distinct subscription is
//! resolved once per event, and its bytes written to every socket that holds it. Each
//! connection is one task that sends one message at a time: a client that stops
//! reading stalls only its own task, whose subscriptions then fall behind their feeds
//! and end with `SLOW_CONSUMER`; a send that cannot complete within 10 seconds closes
//! the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Request;
use async_graphql::http::WebSocketProtocols;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response as HttpResponse;
use futures_util::StreamExt;
use futures_util::stream::{self, AbortHandle, Abortable, BoxStream, SelectAll};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::auth::Principal;
use crate::auth::authenticate;
use crate::domain::DomainError;
use crate::live::feeds::Answer;
use crate::service::persisted::{self, Refusal};

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings (graphql-transport-ws) or sends `ka` (legacy).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 4 * 1024;
/// The largest message a client may send by default (`MAX_WS_MESSAGE_BYTES`): a
/// subscription's query and variables.
pub const MAX_CLIENT_MESSAGE: usize = 256 * 1024;
/// How long one message may take to send before the client counts as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    slot: Option<axum::Extension<super::server::ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    // The client's choice; graphql-transport-ws when it offers both or names neither.
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .collect::<Vec<_>>();
    let protocol = if offered.contains(&"graphql-ws") && !offered.contains(&"graphql-transport-ws")
    {
        WebSocketProtocols::SubscriptionsTransportWS
    } else {
        WebSocketProtocols::GraphQLWS
    };
    upgrade
        .protocols(["graphql-transport-ws", "graphql-ws"])
        // Clients send small messages and servers hold many sockets: small buffers
        // (the defaults read 128 KiB per socket) keep a connection to a few KiB.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(state.limits.max_ws_message_bytes)
        .on_upgrade(move |socket| async move {
            // The socket keeps its place among MAX_CONNECTIONS until it closes.
            let _slot = slot;
            Connection::new(socket, state, protocol).run().await;
        })
}

/// The close codes of graphql-transport-ws.
mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The caller's rate limit (`http::rate_limit`), with the code graphql-transport-ws
    /// uses for too many initialisations.
    pub const TOO_MANY_REQUESTS: u16 = 4429;
}

/// What a client may send, in either protocol.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        payload: Option<Value>,
    },
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: Box<Request>,
    },
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    Ping {
        payload: Option<Value>,
    },
    Pong {},
    ConnectionTerminate,
}

/// Why a connection ends.
struct Closing(u16, String);

/// A subscription's next answer, or its end.
enum Outgoing {
    Next(String, Arc<str>),
    Failed(String, Arc<str>),
    Done(String),
}

struct Connection {
    socket: WebSocket,
    state: AppState,
    protocol: WebSocketProtocols,
    /// Set by `connection_init`: the caller.
    session: Option<Principal>,
    streams: SelectAll<BoxStream<'static, Outgoing>>,
    live: HashMap<String, AbortHandle>,
    /// This socket's place among its caller's (`MAX_SOCKETS_PER_CALLER`), from
    /// `connection_init` until it closes.
    _place: Option<super::quota::Held>,
}

impl Connection {
    fn new(socket: WebSocket, state: AppState, protocol: WebSocketProtocols) -> Self {
        Self {
            socket,
            state,
            protocol,
            session: None,
            streams: SelectAll::new(),
            live: HashMap::new(),
            _place: None,
        }
    }

    fn legacy(&self) -> bool {
        self.protocol == WebSocketProtocols::SubscriptionsTransportWS
    }

    async fn run(mut self) {
        let closing = self.serve().await;
        for (_, handle) in self.live.drain() {
            handle.abort();
        }
        if let Err(Closing(code, reason)) = closing {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(close_reason(reason)),
            };
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame))))
                    .await;
        }
    }

    /// Serves until the client leaves (`Ok`) or the connection must close (`Err`).
    async fn serve(&mut self) -> Result<(), Closing> {
        let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(init_deadline);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let expiry = self.token_expiry();
            tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(Message::Text(text))) => self.receive(text.as_str()).await?,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => {}
                },
                Some(outgoing) = self.streams.next(), if !self.streams.is_empty() => {
                    self.forward(outgoing).await?;
                }
                _ = &mut init_deadline, if self.session.is_none() => {
                    return Err(Closing(close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
                }
                _ = keep_alive.tick() => {
                    let ping = if self.legacy() { json!({"type": "ka"}) } else { json!({"type": "ping"}) };
                    self.send(ping).await?;
                }
                _ = tokio::time::sleep(expiry), if self.session.is_some() => {
                    return Err(Closing(close::FORBIDDEN, "Forbidden: the token has expired".into()));
                }
            }
        }
    }

    /// How long until the caller's token expires.
    fn token_expiry(&self) -> Duration {
        let Some(principal) = &self.session else {
            return Duration::MAX;
        };
        let left = principal.expires_at - chrono::Utc::now().timestamp();
        Duration::from_secs(left.max(0) as u64)
    }

    async fn receive(&mut self, text: &str) -> Result<(), Closing> {
        let message: ClientMessage = serde_json::from_str(text).map_err(|error| {
            Closing(close::INVALID_MESSAGE, format!("Invalid message: {error}"))
        })?;
        match message {
            ClientMessage::ConnectionInit { payload } => self.initialise(payload).await,
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, *payload).await,
            ClientMessage::Complete { id } => {
                if let Some(handle) = self.live.remove(&id) {
                    handle.abort();
                    if self.legacy() {
                        self.send(json!({"type": "complete", "id": id})).await?;
                    }
                }
                Ok(())
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({"type": "pong"});
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                self.send(pong).await
            }
            ClientMessage::Pong {} => Ok(()),
            ClientMessage::ConnectionTerminate => Err(Closing(1000, "Normal closure".into())),
        }
    }

    async fn initialise(&mut self, payload: Option<Value>) -> Result<(), Closing> {
        if self.session.is_some() {
            return Err(Closing(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            ));
        }
        let payload = payload.unwrap_or_default();
        let authorization = payload
            .get("Authorization")
            .or_else(|| payload.get("authorization"))
            .and_then(Value::as_str);
        let principal = match authenticate(&self.state.keys, &self.state.db, authorization).await {
            Ok(principal) => principal,
            Err(error) => {
                let reason = format!("Forbidden: {error}");
                if self.legacy() {
                    self.send(json!({"type": "connection_error", "payload": {"message": reason}}))
                        .await?;
                }
                return Err(Closing(close::FORBIDDEN, reason));
            }
        };
        // One caller's sockets may not take every connection the server has.
        let Some(place) = self.state.sockets.take(&principal.key_owner) else {
            return Err(Closing(
                close::TOO_MANY_REQUESTS,
                format!(
                    "Too many connections for this caller (at most {})",
                    self.state.sockets.max()
                ),
            ));
        };
        self._place = Some(place);
        self.session = Some(principal);
        self.send(json!({"type": "connection_ack"})).await
    }

    async fn subscribe(&mut self, id: String, mut request: Request) -> Result<(), Closing> {
        let Some(principal) = self.session.clone() else {
            return Err(Closing(close::UNAUTHORIZED, "Unauthorized".into()));
        };
        if self.state.rate_limiter.take(&principal).is_err() {
            return Err(Closing(
                close::TOO_MANY_REQUESTS,
                "Too many requests".into(),
            ));
        }
        if self.live.contains_key(&id) {
            return Err(Closing(
                close::SUBSCRIBER_EXISTS,
                format!("Subscriber for {id} already exists"),
            ));
        }
        let refuse = |error: DomainError| {
            let errors = json!([{
                "message": error.to_string(),
                "extensions": { "code": error.code() }
            }]);
            json!({"type": "error", "id": id, "payload": errors})
        };
        let persisted = match persisted::resolve(&self.state.db, &mut request).await {
            Ok(resolved) => resolved,
            Err(Refusal::NotFound) => {
                let errors = json!([{
                    "message": persisted::NOT_FOUND,
                    "extensions": { "code": persisted::NOT_FOUND_CODE }
                }]);
                return self
                    .send(json!({"type": "error", "id": id, "payload": errors}))
                    .await;
            }
            Err(Refusal::Invalid(error)) => return self.send(refuse(error)).await,
        };
        if let Err(error) = self.state.limits.check_request(&mut request) {
            return self.send(refuse(error)).await;
        }
        // Documents sent with their hash are kept from HTTP requests only.
        if let Err(error) = persisted::admit(
            &self.state.db,
            self.state.limits.trusted_documents,
            &principal,
            &request,
            persisted,
        )
        .await
        {
            return self.send(refuse(error)).await;
        }
        let per_socket = self.state.limits.subscriptions_per_socket;
        if self.live.len() >= per_socket {
            let error = DomainError::bad_input(
                "subscribe",
                format!("at most {per_socket} operations may run on one connection"),
            );
            return self.send(refuse(error)).await;
        }
        let Some(held) = self.state.subscriptions.take(&principal.key_owner) else {
            let error = DomainError::bad_input(
                "subscribe",
                format!(
                    "at most {} operations may run for one caller on this server",
                    self.state.subscriptions.max()
                ),
            );
            return self.send(refuse(error)).await;
        };
        let place = self.state.feeds.join(&principal, request);
        let answers = stream::unfold(Some((place, held)), {
            let id = id.clone();
            move |state| {
                let id = id.clone();
                async move {
                    // The quota is held for as long as the place is.
                    let (mut place, held) = state?;
                    match place.answers.recv().await {
                        Ok(Answer::Next(json)) => {
                            Some((Outgoing::Next(id, json), Some((place, held))))
                        }
                        Ok(Answer::Failed(errors)) => Some((Outgoing::Failed(id, errors), None)),
                        Ok(Answer::Done) | Err(RecvError::Closed) => {
                            Some((Outgoing::Done(id), None))
                        }
                        Err(RecvError::Lagged(missed)) => {
                            Some((Outgoing::Failed(id, slow_consumer(missed)), None))
                        }
                    }
                }
            }
        });
        let (handle, registration) = AbortHandle::new_pair();
        self.live.insert(id, handle);
        self.streams
            .push(Abortable::new(answers, registration).boxed());
        Ok(())
    }

    async fn forward(&mut self, outgoing: Outgoing) -> Result<(), Closing> {
        match outgoing {
            Outgoing::Next(id, json) => {
                if !self.live.contains_key(&id) {
                    return Ok(());
                }
                // The feed's bytes, spliced into this socket's message.
                let kind = if self.legacy() { "data" } else { "next" };
                let text = format!(
                    r#"{{"type":"{kind}","id":{},"payload":{json}}}"#,
                    Value::String(id)
                );
                metrics::counter!("tierwise_events_delivered_total").increment(1);
                self.send_text(text).await
            }
            // Refused before it produced anything (a bad query, a forbidden
            // subscription), or dropped for falling behind: an `error` message, and the
            // id is free for the client to use again.
            Outgoing::Failed(id, errors) => {
                if self.live.remove(&id).is_none() {
                    return Ok(());
                }
                let text = format!(
                    r#"{{"type":"error","id":{},"payload":{errors}}}"#,
                    Value::String(id)
                );
                self.send_text(text).await
            }
            Outgoing::Done(id) => {
                if self.live.remove(&id).is_some() {
                    self.send(json!({"type": "complete", "id": id})).await?;
                }
                Ok(())
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), Closing> {
        self.send_text(message.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Closing> {
        let text = Message::Text(Utf8Bytes::from(text));
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(text)).await {
            Ok(Ok(())) => Ok(()),
            // The client is gone, or not reading: there is nobody to tell.
            _ => Err(Closing(1001, "Going away".into())),
        }
    }
}

/// The errors of a socket that fell `missed` answers behind its feed.
fn slow_consumer(missed: u64) -> Arc<str> {
    json!([{
        "message": format!(
            "this subscriber fell {missed} events behind and was dropped; subscribe again and reload"
        ),
        "extensions": { "code": "SLOW_CONSUMER" },
    }])
    .to_string()
    .into()
}

/// A close frame's reason: at most 123 bytes (the frame holds 125 with the code), cut at
/// a character boundary.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let cut = super::close_reason(long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
        assert_eq!(super::close_reason("short".into()), "short");
    }
}
