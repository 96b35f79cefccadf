//! The two output limits: a token bucket over lines per second and a budget of log bytes.

use std::time::Instant;

/// Token bucket over all program lines (stdout, stderr, events). Holds one second's worth
/// of tokens; lines that find it empty are dropped and counted.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second; 0 means no limit.
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Dropped lines not yet reported in a warning.
    unreported: u64,
    overflowed: u64,
}

impl RateLimiter {
    pub fn new(lines_per_sec: u64, now: Instant) -> Self {
        let rate = lines_per_sec as f64;
        Self {
            rate,
            tokens: rate,
            last: now,
            unreported: 0,
            overflowed: 0,
        }
    }

    /// Takes a token for one line; `false` means the line must be dropped (it is counted).
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.unreported += 1;
            false
        }
    }

    /// Counts lines dropped because the queue to the writer was full: the program wrote
    /// faster than the stream could be read.
    pub fn count_overflow(&mut self, lines: u64) {
        self.overflowed += lines;
    }

    /// Lines the rate limit dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.unreported)
    }

    /// Lines dropped for a full queue since the last call.
    pub fn take_overflowed(&mut self) -> u64 {
        std::mem::take(&mut self.overflowed)
    }
}

/// What to do with a log line under the output budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Emit it.
    Emit,
    /// Drop it; the budget is used up by this line, warn now.
    LimitReached,
    /// Drop it; already warned.
    Drop,
}

/// Limit on the total bytes of log messages emitted.
#[derive(Debug)]
pub struct OutputBudget {
    /// 0 means no limit.
    max: u64,
    used: u64,
    reached: bool,
    dropped: u64,
}

impl OutputBudget {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            used: 0,
            reached: false,
            dropped: 0,
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Lines dropped because the budget was used up.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Accounts for a log message of `bytes` bytes.
    pub fn charge(&mut self, bytes: usize) -> Charge {
        if self.max == 0 {
            return Charge::Emit;
        }
        if self.reached {
            self.dropped += 1;
            return Charge::Drop;
        }
        let after = self.used.saturating_add(bytes as u64);
        if after > self.max {
            self.reached = true;
            self.dropped += 1;
            Charge::LimitReached
        } else {
            self.used = after;
            Charge::Emit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_burst_then_refills_with_time() {
        let t0 = Instant::now();
        let mut rate = RateLimiter::new(10, t0);
        assert_eq!((0..15).filter(|_| rate.admit(t0)).count(), 10);
        assert_eq!(rate.take_dropped(), 5);
        assert_eq!(rate.take_dropped(), 0);
        // Half a second later, five more tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| rate.admit(t1)).count(), 5);
        // A long pause refills at most one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| rate.admit(t2)).count(), 10);
        assert_eq!(rate.take_dropped(), 5 + 90);
    }

    #[test]
    fn time_going_backwards_gives_no_tokens() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut rate = RateLimiter::new(1, t0);
        assert!(rate.admit(t0));
        assert!(!rate.admit(t0 - Duration::from_millis(900)));
        assert!(!rate.admit(t0 + Duration::from_millis(500)));
        assert!(rate.admit(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let t0 = Instant::now();
        let mut rate = RateLimiter::new(0, t0);
        assert!((0..100_000).all(|_| rate.admit(t0)));
        rate.count_overflow(3);
        assert_eq!(rate.take_dropped(), 0);
        assert_eq!(rate.take_overflowed(), 3);
    }

    #[test]
    fn budget_warns_once_then_drops_and_counts() {
        let mut budget = OutputBudget::new(10);
        assert_eq!(budget.charge(4), Charge::Emit);
        assert_eq!(budget.charge(6), Charge::Emit);
        assert_eq!(budget.charge(1), Charge::LimitReached);
        assert_eq!(budget.charge(0), Charge::Drop);
        assert_eq!(budget.charge(5), Charge::Drop);
        assert_eq!(budget.dropped(), 3);
        let mut unlimited = OutputBudget::new(0);
        assert_eq!(unlimited.charge(usize::MAX), Charge::Emit);
        assert_eq!(unlimited.dropped(), 0);
    }
}
