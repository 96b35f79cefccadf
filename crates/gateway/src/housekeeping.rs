//! Clearing what has outlived its use, once at start and then hourly: ended sessions,
//! unanswered login requests, and audit entries older than the retention period. Every
//! replica may do it; the deletes are idempotent.

use airlock_db::Db;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(3600);

pub async fn run(db: Db, idle_secs: i64, audit_retention_days: u32, stop: CancellationToken) {
    loop {
        match db.purge(idle_secs, audit_retention_days).await {
            Ok(purged) if purged.any() => tracing::info!(
                sessions = purged.sessions,
                login_requests = purged.login_requests,
                audit_entries = purged.audit_entries,
                "housekeeping removed expired records"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "housekeeping failed; retrying in an hour"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
