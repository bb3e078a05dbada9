//! Subscriptions shared between sockets. A fan-out is mostly many clients holding the
//! same subscription (thousands of dashboards on one query): each distinct subscription
//! — the same query, operation and variables, asked with the same rights — is resolved
//! and serialised once per event, by one task, and its answers go as the same bytes to
//! every socket that holds it.
//!
//! A socket joins a feed by taking a place on the feed's bounded channel; one that
//! falls `EVENT_BUFFER` answers behind is told `SLOW_CONSUMER` and leaves, without
//! delaying the feed or the other sockets. The feed's task stops when its last socket
//! leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_graphql::Request;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::auth::Principal;
use crate::graphql::AppSchema;
use crate::live::EventBus;
use crate::live::bus::TakenPlace;
use crate::store::Db;

/// One answer of a feed, serialised once for all its sockets.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A result: the JSON of the GraphQL response.
    Next(Arc<str>),
    /// The subscription was refused, or ended in error: the JSON list of errors.
    Failed(Arc<str>),
    /// The subscription ended.
    Done,
}

/// The feeds of this server, by what makes two subscriptions the same.
#[derive(Clone)]
pub struct Feeds {
    registry: Arc<Mutex<HashMap<String, Weak<Feed>>>>,
    schema: AppSchema,
    db: Db,
    bus: EventBus,
}

/// A socket's place on a feed; the feed lives while a place does.
pub struct Place {
    pub answers: broadcast::Receiver<Answer>,
    _feed: Arc<Feed>,
    _active: ActiveSubscription,
}

struct Feed {
    key: String,
    sender: broadcast::Sender<Answer>,
    task: tokio::task::AbortHandle,
    registry: Weak<Mutex<HashMap<String, Weak<Feed>>>>,
}

impl Feeds {
    pub fn new(schema: AppSchema, db: Db, bus: EventBus) -> Self {
        Self {
            registry: Arc::default(),
            schema,
            db,
            bus,
        }
    }

    /// A place on the feed of `request` asked by `caller`, started if there is none.
    /// Answers count from now: events that commit after this returns are delivered.
    pub fn join(&self, caller: &Principal, mut request: Request) -> Place {
        let key = feed_key(caller, &mut request);
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = registry.get(&key).and_then(Weak::upgrade) {
            return Place {
                answers: feed.sender.subscribe(),
                _feed: feed,
                _active: ActiveSubscription::start(),
            };
        }
        let (sender, answers) = broadcast::channel(self.bus.capacity());
        let request = request
            .data(caller.clone())
            .data(operation_loader(&self.db))
            .data(TakenPlace::on(&self.bus));
        let task = tokio::spawn(drive(
            self.schema.clone(),
            request,
            key.clone(),
            sender.clone(),
            Arc::downgrade(&self.registry),
        ));
        let feed = Arc::new(Feed {
            key: key.clone(),
            sender,
            task: task.abort_handle(),
            registry: Arc::downgrade(&self.registry),
        });
        registry.insert(key, Arc::downgrade(&feed));
        metrics::gauge!("tierwise_subscription_feeds_active").increment(1.0);
        Place {
            answers,
            _feed: feed,
            _active: ActiveSubscription::start(),
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
        metrics::gauge!("tierwise_subscription_feeds_active").decrement(1.0);
        if let Some(registry) = self.registry.upgrade() {
            forget(&registry, &self.key);
        }
    }
}

/// Removes `key`'s feed from the registry if nobody holds it any more (a socket may
/// have started a new feed for the same key meanwhile: that one stays).
fn forget(registry: &Mutex<HashMap<String, Weak<Feed>>>, key: &str) {
    let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
    if registry
        .get(key)
        .is_some_and(|feed| feed.strong_count() == 0)
    {
        registry.remove(key);
    }
}

/// Runs the subscription operation and sends each answer, serialised, to the feed.
async fn drive(
    schema: AppSchema,
    request: Request,
    key: String,
    sender: broadcast::Sender<Answer>,
    registry: Weak<Mutex<HashMap<String, Weak<Feed>>>>,
) {
    let mut responses = schema.execute_stream(request);
    let last = loop {
        let Some(mut response) = responses.next().await else {
            break Answer::Done;
        };
        crate::graphql::error::ensure_codes(&mut response);
        // An operation refused before it produced anything (a bad query, a forbidden
        // subscription), or dropped for falling behind the bus, ends with its errors:
        // they stand at the root field or above it. An event whose payload has a field
        // the caller may not read (a `FORBIDDEN` deeper down, which may null the whole
        // payload) is an answer like any other, and the subscription goes on.
        let refused = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|error| error.path.len() <= 1);
        if refused {
            let errors = serde_json::to_string(&response.errors).unwrap_or_else(|_| "[]".into());
            break Answer::Failed(errors.into());
        }
        let json = serde_json::to_string(&response).unwrap_or_else(|_| "null".into());
        // Nobody listening is not an error: the last place is being let go.
        let _ = sender.send(Answer::Next(json.into()));
    };
    // Out of the registry first, then the last answer, under the registry's lock: a
    // socket joining meanwhile either receives that answer or starts a new feed.
    let Some(registry) = registry.upgrade() else {
        return;
    };
    let mut entries = registry.lock().unwrap_or_else(|e| e.into_inner());
    let ours = entries
        .get(&key)
        .and_then(Weak::upgrade)
        .filter(|feed| feed.sender.same_channel(&sender));
    if ours.is_some() {
        entries.remove(&key);
    }
    let _ = sender.send(last);
    // Unlocked before the feed may be dropped: dropping it takes the lock.
    drop(entries);
    drop(ours);
}

/// What makes two subscriptions answer alike: the request and the caller's rights
/// (role, scopes, and for a customer token the customer), not who the caller is or when
/// its token expires (each socket checks its own expiry). No field a subscription can
/// select depends on the caller beyond those rights (`viewer` is not reachable from an
/// event). Queries and mutations sent over the socket are never shared: they run once per
/// message, as the caller who sent it, so each gets a key no other operation has.
fn feed_key(caller: &Principal, request: &mut Request) -> String {
    let subscription = crate::graphql::operation_type(request)
        == Some(async_graphql::parser::types::OperationType::Subscription);
    if !subscription {
        return format!("once\u{0}{}", uuid::Uuid::now_v7());
    }
    let mut scopes = caller.scopes.clone();
    scopes.sort_by_key(|scope| format!("{scope:?}"));
    let variables = serde_json::to_string(&request.variables).unwrap_or_default();
    format!(
        "{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{}",
        caller.role, caller.customer_id, scopes, request.operation_name, variables, request.query
    )
}

/// The loader of one feed. A subscription lives for hours, so it keeps no cache: each
/// event's answer reads fresh data, except the customer and tiers the event brings (see
/// `graphql::subscription`).
fn operation_loader(db: &Db) -> crate::graphql::loaders::RequestLoader {
    let loader = crate::graphql::loaders::per_request(db);
    loader.enable_all_cache(false);
    loader
}

/// Counts open subscriptions (one per socket and id) in `/metrics` for as long as it
/// lives.
struct ActiveSubscription;

impl ActiveSubscription {
    fn start() -> Self {
        metrics::gauge!("tierwise_subscriptions_active").increment(1.0);
        Self
    }
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!("tierwise_subscriptions_active").decrement(1.0);
    }
}
