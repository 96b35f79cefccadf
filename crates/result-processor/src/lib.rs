//! The result-processor: consumes what the orchestrator reports about runs, persists it
//! in batches (idempotent by run and worker seq), applies the run state machine, keeps
//! evaluation status and score aggregates current, and publishes each committed change
//! to every gateway replica — only after its transaction commits.
//!
//! Any number of replicas run side by side: each holds a lease and consumes the report
//! partitions assigned to it (a partition has one active consumer at a time, so a run's
//! reports are applied in order), standing by for the others.

mod config;
mod consumer;
mod metrics;
mod partitions;

pub use config::{Cli, Config};

use airlock_core::replica::ReplicaService;
use airlock_db::{Db, ReplicaInfo, ResultsDb};
use airlock_service::{Readiness, ReplicaLease};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct ResultProcessor {
    listener: TcpListener,
    db: Db,
    readiness: Readiness,
    config: Config,
    shutdown: CancellationToken,
}

impl ResultProcessor {
    pub async fn build(
        config: Config,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let db = Db::connect_lazy(
            config.common.database_url.expose(),
            config.common.db_max_connections,
        )?;
        db.require_current_schema("result-processor").await?;
        metrics::init(&db)
            .map_err(|e| anyhow::anyhow!("cannot register the result-processor's metrics: {e}"))?;
        Ok(Self {
            listener,
            db,
            readiness: Readiness::new(&["postgres", "rabbitmq"]),
            config,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until shutdown: stops consuming, finishes the batch in flight (acking or
    /// returning every message), then closes the connection.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            listener,
            db,
            readiness,
            config,
            shutdown,
        } = self;
        let info = ReplicaInfo {
            id: config.replica.id(ReplicaService::ResultProcessor),
            service: ReplicaService::ResultProcessor,
            host: airlock_service::replica::host_name(),
            runtime: None,
            capacity: None,
        };
        let lease = ReplicaLease::register(db.clone(), info, config.replica.lease()).await?;
        let closing = CancellationToken::new();
        let lease_task = tokio::spawn(lease.clone().run(closing.clone()));
        tokio::spawn(
            lease
                .clone()
                .exit_when_lost(airlock_service::replica::EXIT_LEASE_LOST),
        );
        let probe_db = db.clone();
        let probe = readiness.spawn_probe(
            "postgres",
            Duration::from_secs(2),
            shutdown.clone(),
            move || {
                let db = probe_db.clone();
                async move { db.ping().await }
            },
        );
        let gauges = tokio::spawn(metrics::refresh_runs(
            ResultsDb::new(db.clone()),
            shutdown.clone(),
        ));
        let consumer = tokio::spawn(
            consumer::Consumer {
                url: config.common.amqp_url.expose().to_owned(),
                db: ResultsDb::new(db),
                lease,
                readiness: readiness.clone(),
                batch_size: config.batch_size,
                batch_wait: Duration::from_millis(config.batch_wait_ms),
            }
            .run(shutdown.clone()),
        );
        let router = airlock_service::ops_router(readiness)
            .layer(axum::middleware::from_fn(airlock_service::http_metrics));
        tracing::info!(addr = %listener.local_addr()?, "result-processor listening");
        airlock_service::serve(listener, router, shutdown.clone()).await?;
        airlock_service::drain(
            "report consumer",
            Duration::from_secs(config.common.shutdown_grace_secs),
            consumer,
        )
        .await;
        closing.cancel();
        airlock_service::drain("replica lease", Duration::from_secs(5), lease_task).await;
        probe.abort();
        gauges.abort();
        tracing::info!("result-processor stopped");
        Ok(())
    }
}
