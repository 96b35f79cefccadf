//! Clearing what has outlived its use, hourly: ended sessions, unanswered login requests,
//! and audit entries older than the retention period. One gateway replica does it at a
//! time, the holder of the `gateway-housekeeping` leader lease (the deletes are
//! idempotent, so a change of holder at the wrong moment costs one repeated query).

use airlock_db::GatewayDb;
use airlock_service::LeaderLease;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(3600);

/// The singleton role, and how long its lease lasts.
pub const ROLE: &str = "gateway-housekeeping";
const LEASE: Duration = Duration::from_secs(30);

pub async fn run(
    db: GatewayDb,
    idle_secs: i64,
    audit_retention_days: u32,
    stop: CancellationToken,
) {
    let random = uuid::Uuid::new_v4().as_u128() & 0xffff_ffff;
    let holder = format!(
        "gateway-{}-{random:08x}",
        airlock_service::replica::host_name()
    );
    let mut leader = LeaderLease {
        db: db.shared().clone(),
        role: ROLE,
        holder,
        length: LEASE,
    }
    .spawn(stop.clone());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            held = leader.wait_for(|held| *held) => if held.is_err() { return },
        }
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
