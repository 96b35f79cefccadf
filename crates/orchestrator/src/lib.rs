//! The orchestrator: consumes run requests, enforces capacity and per-team limits in
//! priority then first-come order, runs each attempt in a sandbox (see [`runtime`]),
//! follows its output and status from outside, and reports everything to the
//! result-processor through RabbitMQ. In PostgreSQL it writes only its own row of
//! `orchestrators` (runtime and capacity, see `heartbeat`); it reads runs only to skip
//! those of cancelled evaluations and finished attempts.

mod broker;
pub mod config;
mod dispatcher;
mod execute;
mod follower;
mod heartbeat;
mod metrics;
mod reports;
mod retry;
pub mod runtime;
pub mod scheduler;

pub use config::{Cli, Config};

use airlock_core::RunState;
use airlock_db::Db;
use airlock_service::Readiness;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::reports::{Attempt, ReportSink};
use crate::retry::RetryPolicy;
use crate::runtime::SandboxRuntime;
use crate::runtime::kubernetes::KubernetesRuntime;
use crate::runtime::local::{LocalConfig, LocalRuntime};

pub struct Orchestrator {
    listener: TcpListener,
    config: Config,
    db: Db,
    runtime: Arc<dyn SandboxRuntime>,
    /// Stops the runtime's own tasks (the pod watcher, the reaper) at the very end.
    runtime_stop: CancellationToken,
    shutdown: CancellationToken,
}

impl Orchestrator {
    /// Checks the configuration and the sandbox runtime; fails with a clear message when
    /// sandboxes cannot be made here.
    pub async fn build(
        config: Config,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let db = Db::connect_lazy(
            config.common.database_url.expose(),
            config.common.db_max_connections.min(4),
        )?;
        let runtime_stop = CancellationToken::new();
        let runtime: Arc<dyn SandboxRuntime> = match config.runtime.as_str() {
            "local" => {
                let mut local = LocalConfig::new(config.worker_path()?, config.sandbox_dir.clone());
                local.bwrap_path = config.bwrap_path.clone();
                local.uid_base = config.sandbox_uid_base;
                local.slots = u32::try_from(config.capacity()).unwrap_or(u32::MAX);
                Arc::new(LocalRuntime::new(local)?)
            }
            "kubernetes" => {
                KubernetesRuntime::connect(&config.kubernetes, runtime_stop.clone()).await?
            }
            other => {
                anyhow::bail!("unknown AIRLOCK_RUNTIME `{other}`; supported: local, kubernetes")
            }
        };
        metrics::init(runtime.kind(), &db);
        Ok(Self {
            listener,
            config,
            db,
            runtime,
            runtime_stop,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until shutdown. Then it stops taking new runs, lets running attempts finish
    /// within the grace period (reporting their end), stops what is left and reports
    /// it, and closes the broker connection last.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            listener,
            config,
            db,
            runtime,
            runtime_stop,
            shutdown,
        } = self;
        let readiness = Readiness::new(&["rabbitmq", "postgres", "sandbox-runtime"]);
        let (publisher_tx, publisher_rx) = watch::channel(None);
        let sink = ReportSink::new(publisher_rx);
        let (commands_tx, commands_rx) = mpsc::channel(1024);
        let closing = CancellationToken::new();
        let executions = TaskTracker::new();

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
        let heartbeat = tokio::spawn(
            heartbeat::Heartbeat {
                db: db.clone(),
                runtime: runtime.kind(),
                max_concurrent_runs: config.capacity(),
                team_max_concurrent_runs: config.team_max_concurrent_runs,
            }
            .run(closing.clone()),
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
        if runtime.survives_restart() {
            tokio::spawn(resume_sandboxes(
                runtime.clone(),
                db.clone(),
                commands_tx.clone(),
            ));
        } else {
            tokio::spawn(recover_leftovers(
                runtime.clone(),
                db.clone(),
                sink.clone(),
                config.retry_policy(),
            ));
        }
        let broker = tokio::spawn(
            broker::BrokerTask {
                url: config.common.amqp_url.expose().to_owned(),
                prefetch: config.prefetch,
                readiness: readiness.clone(),
                publisher: publisher_tx,
                dispatcher: commands_tx.clone(),
            }
            .run(shutdown.clone(), closing.clone()),
        );
        let dispatcher = tokio::spawn(
            dispatcher::Dispatcher {
                runtime: runtime.clone(),
                db,
                sink,
                limits: scheduler::Limits {
                    capacity: config.capacity(),
                    per_team: config.team_quota(),
                },
                commands: commands_rx,
                completions: commands_tx,
                executions: executions.clone(),
                worker_env: Arc::new(config.worker_env()),
                retry: config.retry_policy(),
            }
            .run(shutdown.clone(), closing.clone()),
        );
        let router = airlock_service::ops_router(readiness)
            .layer(axum::middleware::from_fn(airlock_service::http_metrics));
        tracing::info!(addr = %listener.local_addr()?, runtime = runtime.kind(), capacity = config.capacity(), "orchestrator listening");
        airlock_service::serve(listener, router, shutdown.clone()).await?;

        executions.close();
        let grace = Duration::from_secs(config.common.shutdown_grace_secs);
        if runtime.survives_restart() {
            // Sandboxes run on without this process; the next one resumes following them.
            tracing::info!("leaving running sandboxes to the next orchestrator");
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
        airlock_service::drain("heartbeat", Duration::from_secs(5), heartbeat).await;
        airlock_service::drain("broker connection", Duration::from_secs(5), broker).await;
        probe.abort();
        runtime_health.abort();
        runtime_stop.cancel();
        tracing::info!("orchestrator stopped");
        Ok(())
    }
}

/// Sandboxes left by an earlier orchestrator process cannot be followed any more (their
/// output pipe died with it): stop them, clean up, and retry their runs (or end them as
/// errors after the last attempt).
async fn recover_leftovers(
    runtime: Arc<dyn SandboxRuntime>,
    db: Db,
    sink: ReportSink,
    retry: RetryPolicy,
) {
    let leftovers = match runtime.list().await {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(%error, "cannot list leftover sandboxes");
            return;
        }
    };
    for sandbox in leftovers {
        tracing::warn!(sandbox = %sandbox.name, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "cleaning up a sandbox left by an earlier orchestrator");
        let _ = runtime.stop(&sandbox.name).await;
        let _ = runtime.remove(&sandbox.name).await;
        let cause = "sandbox lost: the orchestrator restarted while it ran".to_owned();
        match db.run_request(sandbox.run_id).await {
            // The database may lag behind the sandbox's attempt, never run ahead of it
            // unless the run has moved on to a later attempt elsewhere.
            Ok(Some(mut request)) if request.attempt <= sandbox.attempt => {
                request.attempt = sandbox.attempt;
                let trace = airlock_core::TraceContext::new_root();
                retry::retry_or_fail(&sink, retry, &request, trace, cause).await;
            }
            Ok(_) => {
                tracing::info!(sandbox = %sandbox.name, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "its run has moved on; nothing to report")
            }
            Err(error) => {
                tracing::error!(%error, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "cannot read the lost run; reporting it as an error");
                let attempt = Attempt {
                    run_id: sandbox.run_id,
                    evaluation_id: sandbox.evaluation_id,
                    attempt: sandbox.attempt,
                    trace: airlock_core::TraceContext::new_root(),
                };
                sink.status(attempt, RunState::Error, Some(cause), None)
                    .await;
            }
        }
    }
}

/// Sandboxes that outlive the orchestrator and belong to live runs are followed again
/// (their output is re-read from the start; downstream de-duplication by (run_id, seq)
/// absorbs what was read before). The rest are left to the reaper: finished ones for
/// their retention, live ones of finished runs as orphans.
async fn resume_sandboxes(
    runtime: Arc<dyn SandboxRuntime>,
    db: Db,
    commands: mpsc::Sender<dispatcher::Command>,
) {
    let sandboxes = match runtime.list().await {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(%error, "cannot list sandboxes to resume");
            runtime.recovered(&[]);
            return;
        }
    };
    let mut resumed = Vec::new();
    for sandbox in sandboxes {
        let (admission, request) = loop {
            match (
                db.run_admission(sandbox.run_id).await,
                db.run_request(sandbox.run_id).await,
            ) {
                (Ok(admission), Ok(request)) => break (admission, request),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "cannot read a run to resume; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        match (admission, request) {
            (Some((state, attempt, cancelled)), Some(mut request))
                if !state.is_terminal() && attempt <= sandbox.attempt =>
            {
                tracing::info!(sandbox = %sandbox.name, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "resuming a sandbox");
                request.attempt = sandbox.attempt;
                resumed.push(sandbox.name.clone());
                let command = dispatcher::Command::Resume {
                    request: Box::new(request),
                    cancelled,
                };
                if commands.send(command).await.is_err() {
                    break;
                }
            }
            _ => {
                tracing::info!(sandbox = %sandbox.name, run_id = %sandbox.run_id, evaluation_id = %sandbox.evaluation_id, "its run has finished or moved on; left to the reaper")
            }
        }
    }
    runtime.recovered(&resumed);
}
