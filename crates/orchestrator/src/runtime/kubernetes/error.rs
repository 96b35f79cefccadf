//! Kubernetes API errors as the runtime treats them: answers that will not change on a
//! retry (4xx: refused, not found, already exists) and failures that may (5xx, 429,
//! connection errors), retried with exponential backoff and jitter.

use rand::Rng;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server answered, and a retry would get the same answer.
    #[error("the Kubernetes API refused the request ({code} {reason}): {message}")]
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    /// The API server is unreachable or failing.
    #[error("the Kubernetes API is unavailable: {0}")]
    Unavailable(String),
}

impl KubeError {
    /// A label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "refused",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<kube::Error> for KubeError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
                Self::Unavailable(format!(
                    "{} {}: {}",
                    status.code, status.reason, status.message
                ))
            }
            kube::Error::Api(status) => Self::Refused {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// How long and how often a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Backoff {
    pub const API: Self = Self {
        first: Duration::from_millis(100),
        max: Duration::from_secs(5),
        attempts: 8,
    };

    /// The wait before retry `n` (1-based): doubling, capped, with ±50% jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
            .min(self.max);
        let jitter = rand::rng().random_range(0.5..1.5);
        base.mul_f64(jitter)
    }
}

/// Runs `call` until it succeeds, is refused, or `backoff.attempts` unavailable answers.
pub async fn retrying<T, F, Fut>(what: &str, backoff: Backoff, mut call: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await.map_err(KubeError::from) {
            Ok(value) => return Ok(value),
            Err(error @ KubeError::Refused { .. }) => return Err(error),
            Err(error) if attempt >= backoff.attempts => return Err(error),
            Err(error) => {
                crate::metrics::kube_error(what, &error);
                let delay = backoff.delay(attempt);
                tracing::warn!(%error, what, attempt, ?delay, "Kubernetes API call failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let b = Backoff::API;
        for n in 1..20 {
            let d = b.delay(n);
            let base = (b.first * 2u32.pow((n - 1).min(16))).min(b.max);
            assert!(
                d >= base.mul_f64(0.5) && d <= base.mul_f64(1.5),
                "{n}: {d:?}"
            );
        }
    }
}
