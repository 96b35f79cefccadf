//! The orchestrator: any number of replicas consume run requests as competing consumers,
//! each within its own capacity; PostgreSQL decides who starts each attempt and whether
//! global limits allow it (a claim, see `airlock_db::claims`). Each attempt runs in a
//! sandbox (see [`runtime`]) whose output and status are followed from outside and
//! reported to the result-processor through RabbitMQ.
//!
//! Each replica holds a lease (`airlock_service::ReplicaLease`); a replica that loses it
//! exits at once, and survivors take over its claims ([`takeover`]). Singletons (the
//! Kubernetes reaper, forgetting long-ended replicas) run on the holder of a leader lease
//! ([`singletons`]). In PostgreSQL an orchestrator writes its own `replicas` row, its
//! claims and leader leases; it reads runs only to skip cancelled and finished ones.

mod broker;
pub mod config;
mod dispatcher;
mod execute;
mod follower;
mod metrics;
mod report_stream;
mod reports;
mod retry;
pub mod runtime;
pub mod scheduler;
mod singletons;
mod takeover;

pub use config::{Cli, Config};

use airlock_core::replica::ReplicaService;
use airlock_db::{Db, OrchestratorDb, ReplicaInfo};
use airlock_service::{Readiness, ReplicaLease};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::execute::ExecutionEnv;
use crate::reports::ReportSink;
use crate::runtime::SandboxRuntime;
use crate::runtime::kubernetes::KubernetesRuntime;
use crate::runtime::local::{LocalConfig, LocalRuntime, ReplicaDir};

pub struct Orchestrator {
    listener: TcpListener,
    config: Config,
    db: Db,
    replica_id: String,
    runtime: Arc<dyn SandboxRuntime>,
    /// The local runtime's directory lock, held for the life of the process.
    _replica_dir: Option<ReplicaDir>,
    /// Replicas that died on this host (their sandboxes were taken over at start).
    dead_on_host: Vec<String>,
    /// Stops the runtime's own tasks (the pod watcher) at the very end.
    runtime_stop: CancellationToken,
    shutdown: CancellationToken,
}

impl Orchestrator {
    /// Checks the configuration, the database schema, the other replicas and the sandbox
    /// runtime; fails with a clear message when this replica cannot work here.
    pub async fn build(
        config: Config,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let db = Db::connect_lazy(
            config.common.database_url.expose(),
            config.common.db_max_connections.min(4),
        )?;
        db.require_current_schema("orchestrator").await?;
        let replica_id = config.replica.id(ReplicaService::Orchestrator);
        check_peers(&db, &config).await?;
        let runtime_stop = CancellationToken::new();
        let mut replica_dir = None;
        let mut dead_on_host = Vec::new();
        let runtime: Arc<dyn SandboxRuntime> = match config.runtime.as_str() {
            "local" => {
                let dir = ReplicaDir::take(&config.sandbox_dir, &replica_id)?;
                dead_on_host = dir.take_over_dead(&config.sandbox_dir);
                let mut local = LocalConfig::new(config.worker_path()?, dir.state_dir());
                local.bwrap_path = config.bwrap_path.clone();
                local.uid_base = config.sandbox_uid_base;
                local.uid_lock_dir = config.sandbox_uid_lock_dir.clone();
                local.slots = config.sandbox_uid_count;
                replica_dir = Some(dir);
                Arc::new(LocalRuntime::new(local)?)
            }
            "kubernetes" => {
                KubernetesRuntime::connect(&config.kubernetes, runtime_stop.clone()).await?
            }
            other => {
                anyhow::bail!("unknown AIRLOCK_RUNTIME `{other}`; supported: local, kubernetes")
            }
        };
        metrics::init(runtime.kind(), &db, &replica_id)
            .map_err(|e| anyhow::anyhow!("cannot register the orchestrator's metrics: {e}"))?;
        Ok(Self {
            listener,
            config,
            db,
            replica_id,
            runtime,
            _replica_dir: replica_dir,
            dead_on_host,
            runtime_stop,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until shutdown. Then it stops taking new runs, lets running attempts finish
    /// within the grace period (reporting their end), stops what is left and reports
    /// it, withdraws the replica and closes the broker connection last.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            listener,
            config,
            db,
            replica_id,
            runtime,
            _replica_dir,
            dead_on_host,
            runtime_stop,
            shutdown,
        } = self;
        let info = ReplicaInfo {
            id: replica_id,
            service: ReplicaService::Orchestrator,
            host: airlock_service::replica::host_name(),
            runtime: Some(runtime.kind().to_owned()),
            capacity: Some(u32::try_from(config.capacity()).unwrap_or(u32::MAX)),
        };
        let lease = ReplicaLease::register(db.clone(), info, config.replica.lease()).await?;
        // The newest replica's limits hold for all (a rolling update changes them).
        let limits = config.global_limits();
        match OrchestratorDb::new(db.clone())
            .set_global_limits(limits, lease.id())
            .await?
        {
            Some(previous) if previous != limits => tracing::warn!(
                ?previous,
                ?limits,
                "global limits changed by this replica's configuration; every orchestrator enforces them from now on"
            ),
            _ => {}
        }
        for dead in &dead_on_host {
            // Known dead (its host lock was free): its claims need not wait for expiry.
            if let Ok(true) = db.mark_replica_lost(dead).await {
                tracing::warn!(replica = %dead, "orchestrator replica lost: it died on this host");
            }
        }
        let readiness = Readiness::new(&["rabbitmq", "postgres", "sandbox-runtime"]);
        let (publisher_tx, publisher_rx) = watch::channel(None);
        let (commands_tx, commands_rx) = mpsc::channel(1024);
        let closing = CancellationToken::new();
        let executions = TaskTracker::new();
        let env = Arc::new(ExecutionEnv {
            runtime: runtime.clone(),
            sink: ReportSink::new(publisher_rx, lease.clone()),
            db: OrchestratorDb::new(db.clone()),
            lease: lease.clone(),
            worker_env: config.worker_env(),
            retry: config.retry_policy(),
        });

        tokio::spawn(lease.clone().run(closing.clone()));
        // Its local sandboxes die with it; survivors retry or adopt its runs.
        tokio::spawn(
            lease
                .clone()
                .exit_when_lost(airlock_service::replica::EXIT_LEASE_LOST),
        );
        let probe_db = db.clone();
        let probe = readiness.spawn_probe(
            "postgres",
            Duration::from_secs(2),
            closing.clone(),
            move || {
                let db = probe_db.clone();
                async move { db.ping().await }
            },
        );
        let runtime_probe = runtime.clone();
        let runtime_health = readiness.spawn_probe(
            "sandbox-runtime",
            Duration::from_secs(2),
            closing.clone(),
            move || {
                let runtime = runtime_probe.clone();
                async move {
                    match runtime.health().await {
                        Ok(()) => true,
                        Err(error) => {
                            tracing::warn!(%error, "sandbox runtime unavailable");
                            false
                        }
                    }
                }
            },
        );
        if !runtime.survives_restart() {
            // Before anything new starts: a sandbox listed now is a leftover.
            clean_up_leftovers(runtime.clone()).await;
        }
        tokio::spawn(
            takeover::Takeover {
                env: env.clone(),
                commands: commands_tx.clone(),
                batch: u32::try_from(config.capacity()).unwrap_or(u32::MAX).max(1),
                stop: closing.clone(),
            }
            .run(),
        );
        tokio::spawn(singletons::claim_releases(
            db.clone(),
            commands_tx.clone(),
            closing.clone(),
        ));
        singletons::spawn(&env, &config, closing.clone());
        let broker = tokio::spawn(
            broker::BrokerTask {
                url: config.common.amqp_url.expose().to_owned(),
                prefetch: config.prefetch(),
                readiness: readiness.clone(),
                publisher: publisher_tx,
                dispatcher: commands_tx.clone(),
            }
            .run(shutdown.clone(), closing.clone()),
        );
        let dispatcher = tokio::spawn(
            dispatcher::Dispatcher {
                env: env.clone(),
                capacity: config.capacity(),
                commands: commands_rx,
                completions: commands_tx,
                executions: executions.clone(),
            }
            .run(shutdown.clone(), closing.clone()),
        );
        let router = airlock_service::ops_router(readiness)
            .layer(axum::middleware::from_fn(airlock_service::http_metrics));
        tracing::info!(
            addr = %listener.local_addr()?,
            runtime = runtime.kind(),
            capacity = config.capacity(),
            replica = %lease.id(),
            "orchestrator listening"
        );
        airlock_service::serve(listener, router, shutdown.clone()).await?;

        executions.close();
        let grace = Duration::from_secs(config.common.shutdown_grace_secs);
        if runtime.survives_restart() {
            // Sandboxes run on without this process; another replica adopts them as
            // soon as this one has withdrawn.
            tracing::info!("leaving running sandboxes to the other replicas");
        } else if airlock_service::drain("running sandboxes", grace, executions.wait())
            .await
            .is_none()
        {
            for sandbox in runtime.list().await.unwrap_or_default() {
                let _ = runtime.stop(&sandbox.name).await;
            }
            airlock_service::drain(
                "stopped sandboxes",
                Duration::from_secs(5),
                executions.wait(),
            )
            .await;
        }
        closing.cancel();
        airlock_service::drain("dispatcher", Duration::from_secs(5), dispatcher).await;
        airlock_service::drain("broker connection", Duration::from_secs(5), broker).await;
        probe.abort();
        runtime_health.abort();
        runtime_stop.cancel();
        tracing::info!("orchestrator stopped");
        Ok(())
    }
}

/// Refuses to join replicas that run another runtime: one database serves one kind of
/// sandbox. (Global limits need no check: the newest replica's are everyone's.)
async fn check_peers(db: &Db, config: &Config) -> anyhow::Result<()> {
    let peers = db.live_replicas(ReplicaService::Orchestrator).await?;
    for peer in peers {
        if peer.runtime.as_deref() != Some(config.runtime.as_str()) {
            anyhow::bail!(
                "orchestrator replica {} on {} runs the {} runtime, this one would run {}: \
                 replicas sharing a database must share the runtime (AIRLOCK_RUNTIME)",
                peer.id,
                peer.host,
                peer.runtime.as_deref().unwrap_or("unknown"),
                config.runtime
            );
        }
    }
    Ok(())
}

/// Sandboxes left on this host by an earlier process of this replica or by replicas that
/// died here cannot be followed (their output pipe died with their orchestrator): stop
/// and remove them. Their runs are retried by whichever replica takes over the dead
/// replica's claims.
async fn clean_up_leftovers(runtime: Arc<dyn SandboxRuntime>) {
    let leftovers = match runtime.list().await {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(%error, "cannot list leftover sandboxes");
            return;
        }
    };
    for sandbox in leftovers {
        tracing::warn!(sandbox = %sandbox.name, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "cleaning up a sandbox left by a replica that died");
        let _ = runtime.stop(&sandbox.name).await;
        let _ = runtime.remove(&sandbox.name).await;
    }
}
