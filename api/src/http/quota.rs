//! How many of something one caller may hold on this server at once: live operations
//! over all its WebSockets, and the WebSockets themselves. A client that opens sockets
//! faster than it closes them, or subscribes without end, is refused before it holds the
//! server's memory or every connection. Counted per process: each replica bounds what it
//! holds itself, which is what the limit protects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The counts, by caller (`Principal::key_owner`: a customer token counts for its
/// customer).
#[derive(Clone)]
pub struct Quota {
    max: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One place counted against its caller until dropped.
pub struct Held {
    owner: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Quota {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            held: Arc::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Counts one more place for `owner`, or `None` when it holds `max` already.
    pub fn take(&self, owner: &str) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(owner.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            owner: owner.to_owned(),
            held: self.held.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.owner) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_holds_at_most_max_and_gets_them_back() {
        let quota = Quota::new(2);
        let a = quota.take("a").unwrap();
        let _b = quota.take("a").unwrap();
        assert!(quota.take("a").is_none());
        assert!(quota.take("other").is_some());
        drop(a);
        assert!(quota.take("a").is_some());
        assert!(
            quota.held.lock().unwrap().get("other").is_none(),
            "forgotten at zero"
        );
    }
}
