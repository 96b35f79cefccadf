//! Retrying attempts that the platform, not the program, broke: a sandbox that could not
//! be created, one lost to an orchestrator restart, one stopped at shutdown. The next
//! attempt is published at once with a `not_before` time (so a crash during the backoff
//! loses nothing); the dispatcher holds it until then. After the last attempt the run
//! becomes `error`.

use airlock_core::messages::{RunRequest, RunRequested};
use airlock_core::{RunState, TraceContext};
use chrono::Utc;
use std::time::Duration;

use crate::reports::{Attempt, ReportSink};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles for each further one, at most 5 minutes.
    pub base: Duration,
}

impl RetryPolicy {
    pub fn delay(&self, failed_attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1).min(16));
        (self.base * factor).min(Duration::from_secs(300))
    }
}

/// Schedules the next attempt of `request` (in the same trace), or ends the run as
/// `error` when it had its last one.
pub async fn retry_or_fail(
    sink: &ReportSink,
    policy: RetryPolicy,
    request: &RunRequested,
    trace: TraceContext,
    cause: String,
) {
    let current = Attempt {
        run_id: request.run_id,
        evaluation_id: request.evaluation_id,
        attempt: request.attempt,
        trace,
    };
    if request.attempt >= policy.max_attempts {
        let reason = if policy.max_attempts > 1 {
            format!("{cause} (gave up after {} attempts)", request.attempt)
        } else {
            cause
        };
        sink.status(current, RunState::Error, Some(reason), None)
            .await;
        return;
    }
    let delay = policy.delay(request.attempt);
    let mut next = request.clone();
    next.attempt += 1;
    next.not_before = Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
    let reason = format!(
        "retrying in {}s after: {cause} (attempt {} of {})",
        delay.as_secs(),
        next.attempt,
        policy.max_attempts
    );
    let next_attempt = Attempt {
        attempt: next.attempt,
        ..current
    };
    sink.status(next_attempt, RunState::Scheduling, Some(reason), None)
        .await;
    sink.request(&RunRequest::V1(next), &trace).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(10),
        };
        assert_eq!(policy.delay(1), Duration::from_secs(10));
        assert_eq!(policy.delay(2), Duration::from_secs(20));
        assert_eq!(policy.delay(3), Duration::from_secs(40));
        assert_eq!(policy.delay(9), Duration::from_secs(300));
    }
}
