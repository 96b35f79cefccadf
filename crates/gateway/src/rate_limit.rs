//! Rate limiting: a token bucket per key (a user, or a client address for failed
//! sign-ins), refilled continuously. A request over the limit gets 429 with `Retry-After`.

use airlock_core::ErrorCode;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long to wait.
    pub fn check(&self, key: K) -> Result<(), ApiError> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        // Full buckets carry no information: drop them now and then to bound memory.
        if buckets.len() > 100_000 {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64;
        crate::metrics::rate_limited();
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!("too many requests; retry in {wait} s"),
        )
        .with_retry_after(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::UserId;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let limiter = RateLimiter::new(60, 2);
        let user = UserId::new();
        assert!(limiter.check(user).is_ok());
        assert!(limiter.check(user).is_ok());
        let refused = limiter.check(user).expect_err("over the burst");
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        assert!(
            limiter.check(UserId::new()).is_ok(),
            "users have separate buckets"
        );
    }
}
