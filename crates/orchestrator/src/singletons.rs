//! Work that must happen once however many replicas run, each on the holder of its
//! leader lease (`leader_leases`): the Kubernetes reaper, and forgetting replicas that
//! ended long ago. Also the listener that wakes the dispatcher when any replica releases
//! a claim (so runs waiting for a global quota ask again at once).

use airlock_core::RunId;
use airlock_db::Db;
use airlock_service::LeaderLease;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::dispatcher::Command;
use crate::execute::ExecutionEnv;

/// The Kubernetes reaper's role.
pub const REAPER: &str = "kubernetes-reaper";
/// The role that removes replicas ended a day ago.
pub const REPLICA_CLEANUP: &str = "replica-cleanup";

const FORGET_REPLICAS_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Starts the singleton roles this replica competes for.
pub fn spawn(env: &Arc<ExecutionEnv>, config: &Config, stop: CancellationToken) {
    let leader = |role| {
        LeaderLease {
            db: env.db.shared().clone(),
            role,
            holder: env.lease.id().to_owned(),
            length: env.lease.length(),
        }
        .spawn(stop.clone())
    };
    if env.runtime.survives_restart() {
        let interval = Duration::from_secs(config.kubernetes.reaper_interval_secs.max(1));
        let env = env.clone();
        tokio::spawn(while_leader(
            leader(REAPER),
            interval,
            stop.clone(),
            move || {
                let env = env.clone();
                async move { reap(&env).await }
            },
        ));
    }
    let db = env.db.clone();
    tokio::spawn(while_leader(
        leader(REPLICA_CLEANUP),
        Duration::from_secs(600),
        stop,
        move || {
            let db = db.clone();
            async move {
                match db.forget_ended_replicas(FORGET_REPLICAS_AFTER).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "forgot replicas that ended a day ago"),
                    Err(error) => tracing::warn!(%error, "cannot forget ended replicas"),
                }
            }
        },
    ));
}

/// Runs `work` every `interval` while this replica holds the role.
async fn while_leader<F, Fut>(
    mut leader: watch::Receiver<bool>,
    interval: Duration,
    stop: CancellationToken,
    work: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = leader.wait_for(|held| *held) => if changed.is_err() { return },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if *leader.borrow() {
            work().await;
        }
    }
}

/// One reaper sweep: sandboxes whose attempt nobody holds a claim of are orphans. The
/// claims of finished sandboxes are read too: a finished pod whose attempt is still
/// claimed is being read to its end (by its replica, or by a survivor adopting it).
async fn reap(env: &ExecutionEnv) {
    let sandboxes = match env.runtime.list().await {
        Ok(list) => list,
        Err(error) => {
            tracing::warn!(%error, "reaper cannot list sandboxes");
            return;
        }
    };
    let attempts: Vec<(RunId, u32)> = sandboxes.iter().map(|s| (s.run_id, s.attempt)).collect();
    let claimed: HashSet<(RunId, u32)> = match env.db.claimed_attempts(&attempts).await {
        Ok(claimed) => claimed.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "reaper cannot read claims; skipping this sweep");
            return;
        }
    };
    let names: HashSet<String> = sandboxes
        .into_iter()
        .filter(|s| claimed.contains(&(s.run_id, s.attempt)))
        .map(|s| s.name)
        .collect();
    env.runtime.reap(&names).await;
}

/// Wakes the dispatcher whenever a claim is released anywhere (PostgreSQL
/// LISTEN/NOTIFY); reconnects with backoff.
pub async fn claim_releases(db: Db, commands: mpsc::Sender<Command>, stop: CancellationToken) {
    let mut backoff = airlock_mq::Backoff::default();
    loop {
        match db.listen("airlock_claim_released").await {
            Ok(mut listener) => {
                backoff = airlock_mq::Backoff::default();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        notification = listener.recv() => match notification {
                            Ok(_) => {
                                // One pending wake-up is enough.
                                let _ = commands.try_send(Command::ClaimReleased);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "claim release listener lost; reconnecting");
                                break;
                            }
                        },
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot listen for claim releases"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
