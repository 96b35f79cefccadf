//! One cancellation token for the whole process, cancelled by SIGTERM or SIGINT.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A token that is cancelled when the process receives SIGTERM or SIGINT.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
        trigger.cancel();
    });
    token
}

/// Waits for `work` to finish, at most `limit`; warns when the drain is cut short.
pub async fn drain<F: Future>(what: &str, limit: Duration, work: F) -> Option<F::Output> {
    match tokio::time::timeout(limit, work).await {
        Ok(output) => {
            tracing::info!(what, "drained");
            Some(output)
        }
        Err(_) => {
            tracing::warn!(
                what,
                limit_secs = limit.as_secs(),
                "drain timed out; stopping anyway"
            );
            None
        }
    }
}
