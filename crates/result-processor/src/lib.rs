//! The result-processor: consumes what the orchestrator reports about runs, persists it
//! in batches (idempotent by run and worker seq), applies the run state machine, keeps
//! evaluation status and score aggregates current, and publishes each committed change
//! to every gateway replica — only after its transaction commits.

mod config;
mod consumer;
mod metrics;

pub use config::{Cli, Config};

use airlock_db::Db;
use airlock_service::Readiness;
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
        metrics::init(&db);
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
        let gauges = tokio::spawn(metrics::refresh_runs(db.clone(), shutdown.clone()));
        let consumer = tokio::spawn(
            consumer::Consumer {
                url: config.common.amqp_url.expose().to_owned(),
                db,
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
        probe.abort();
        gauges.abort();
        tracing::info!("result-processor stopped");
        Ok(())
    }
}
