//! The reconnect loop every service runs around its RabbitMQ session.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::Backoff;

/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

/// Runs `session` again and again until `stop`, waiting a growing, jittered delay after
/// each failure. A session returns `Ok` only when it ended because of `stop`; the caller
/// does its own clean-up (readiness, publisher slot) before returning.
pub async fn reconnecting<F, Fut, E>(stop: &CancellationToken, mut session: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        let started = Instant::now();
        let Err(error) = session().await else { return };
        if started.elapsed() > HEALTHY_SESSION {
            backoff = Backoff::default();
        }
        let delay = backoff.next_delay();
        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "RabbitMQ session ended; reconnecting");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
