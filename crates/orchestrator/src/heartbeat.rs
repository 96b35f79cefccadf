//! The orchestrator's report of itself in PostgreSQL: its runtime and capacity, renewed
//! every few seconds, so the gateway's system view can say what the platform can run and
//! whether anything is running it. Withdrawn at shutdown.

use airlock_db::{Db, OrchestratorStatus};
use chrono::{TimeDelta, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the report is renewed; the gateway calls an orchestrator offline after
/// three missed renewals.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Reports older than this are deleted (their orchestrator died without withdrawing).
const FORGET_AFTER: TimeDelta = TimeDelta::minutes(10);

pub struct Heartbeat {
    pub db: Db,
    pub runtime: &'static str,
    pub max_concurrent_runs: usize,
    pub team_max_concurrent_runs: Option<usize>,
}

impl Heartbeat {
    pub async fn run(self, stop: CancellationToken) {
        let instance = instance_name();
        let started_at = Utc::now();
        let mut ticks = tokio::time::interval(INTERVAL);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => break,
            }
            let now = Utc::now();
            let status = OrchestratorStatus {
                instance: instance.clone(),
                runtime: self.runtime.to_owned(),
                max_concurrent_runs: u32::try_from(self.max_concurrent_runs).unwrap_or(u32::MAX),
                team_max_concurrent_runs: self
                    .team_max_concurrent_runs
                    .map(|q| u32::try_from(q).unwrap_or(u32::MAX)),
                started_at,
                seen_at: now,
            };
            if let Err(error) = self.db.report_orchestrator(&status).await {
                tracing::warn!(%error, "could not report this orchestrator's capacity");
                continue;
            }
            if let Err(error) = self.db.forget_orchestrators(now - FORGET_AFTER).await {
                tracing::debug!(%error, "could not forget stale orchestrators");
            }
        }
        if let Err(error) = self.db.withdraw_orchestrator(&instance).await {
            tracing::debug!(%error, "could not withdraw this orchestrator's report");
        }
    }
}

/// Host name and process id: unique among live orchestrators.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "orchestrator".into());
    format!("{host}-{}", std::process::id())
}
