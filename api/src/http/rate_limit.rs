//! Requests per caller: a token bucket per principal (a customer token counts for its
//! customer), with a budget per role. Over budget, HTTP answers 429 with `Retry-After`
//! and code `RATE_LIMITED`, and a WebSocket is closed with 4429.
//!
//! Buckets live in this process: each replica limits what reaches it, so N replicas
//! behind a balancer let a caller through at up to N times its budget. Sharing them
//! would cost a database round trip per request; the README says so.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{Principal, Role};

/// A role's budget: `per_second` sustained, `burst` at once. `per_second == 0` means
/// no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub per_second: f64,
    pub burst: f64,
}

impl Budget {
    /// `per_second` sustained, with bursts of three seconds' worth.
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_second: per_second.into(),
            burst: (per_second * 3).max(1).into(),
        }
    }
}

/// The budgets of the four roles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    pub admin: Budget,
    pub staff: Budget,
    pub partner: Budget,
    pub customer: Budget,
}

impl Default for Budgets {
    /// A console user clicks, a customer's app loads a screen, a partner's till or shop
    /// sends a stream of purchases: each gets room for that and not for a flood.
    fn default() -> Self {
        Self {
            admin: Budget::per_second(100),
            staff: Budget::per_second(50),
            partner: Budget::per_second(200),
            customer: Budget::per_second(10),
        }
    }
}

impl Budgets {
    fn of(&self, role: Role) -> Budget {
        match role {
            Role::Admin => self.admin,
            Role::Staff => self.staff,
            Role::Partner => self.partner,
            Role::Customer => self.customer,
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of this server.
pub struct RateLimiter {
    budgets: Budgets,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept before full ones are forgotten (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 100_000;

impl RateLimiter {
    pub fn new(budgets: Budgets) -> Self {
        Self {
            budgets,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from the caller's bucket; `Err(wait)` when it is empty, with
    /// how long until a token is back.
    pub fn take(&self, caller: &Principal) -> Result<(), Duration> {
        self.take_at(caller, Instant::now())
    }

    fn take_at(&self, caller: &Principal, now: Instant) -> Result<(), Duration> {
        let budget = self.budgets.of(caller.role);
        if budget.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| {
                let idle = now.saturating_duration_since(bucket.updated).as_secs_f64();
                bucket.tokens + idle * budget.per_second < budget.burst
            });
        }
        let bucket = buckets.entry(caller.key_owner.clone()).or_insert(Bucket {
            tokens: budget.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * budget.per_second).min(budget.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / budget.per_second;
            Err(Duration::from_secs_f64(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, owner: &str) -> Principal {
        Principal {
            subject: owner.into(),
            role,
            customer_id: None,
            scopes: vec![],
            expires_at: i64::MAX,
            key_owner: owner.into(),
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(Budgets {
            customer: Budget {
                per_second: 2.0,
                burst: 3.0,
            },
            ..Budgets::default()
        });
        let me = caller(Role::Customer, "customer:1");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(&me, t0).is_ok());
        }
        let wait = limiter.take_at(&me, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(
            limiter
                .take_at(&caller(Role::Customer, "customer:2"), t0)
                .is_ok()
        );
        assert!(
            limiter
                .take_at(&me, t0 + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            limiter
                .take_at(&me, t0 + Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn a_zero_budget_means_no_limit() {
        let limiter = RateLimiter::new(Budgets {
            admin: Budget::per_second(0),
            ..Budgets::default()
        });
        let admin = caller(Role::Admin, "root");
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.take_at(&admin, t0).is_ok()));
    }
}
