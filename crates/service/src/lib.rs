//! What every Airlock service shares as a process: logging set-up, the shutdown signal,
//! readiness tracking, and the operations endpoints `/healthz`, `/readyz` and
//! `/metrics`.

mod metrics;
mod readiness;
pub mod replica;
mod secret;
mod shutdown;

pub use metrics::{PoolSample, http_metrics, init_metrics, observe_db_pool, render_metrics};
pub use readiness::Readiness;
pub use replica::{LeaderLease, ReplicaConfig, ReplicaLease};
pub use secret::Secret;
pub use shutdown::{drain, shutdown_token};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Logs to stderr: JSON when stderr is not a terminal, human-readable otherwise. The
/// filter comes from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
    // A second initialisation (several services in one test process) is harmless.
    drop(result);
}

/// `/healthz` (the process is alive), `/readyz` (its dependencies answer) and
/// `/metrics` (Prometheus text format).
pub fn ops_router(readiness: Readiness) -> Router {
    init_metrics();
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readiness::handler))
        .route("/metrics", get(metrics::handler))
        .with_state(readiness)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Settings every service reads, flattened into each binary's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    /// Address the HTTP server (API or operations endpoints) listens on.
    #[arg(long, env = "AIRLOCK_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: std::net::SocketAddr,
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "AIRLOCK_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/airlock"
    )]
    pub database_url: Secret,
    /// RabbitMQ connection URL.
    #[arg(
        long,
        env = "AIRLOCK_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: Secret,
    /// Most PostgreSQL connections this process opens.
    #[arg(long, env = "AIRLOCK_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Longest wait for in-flight work at shutdown, in seconds.
    #[arg(long, env = "AIRLOCK_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
}

impl CommonConfig {
    /// Defaults, as if no flag or variable were given (for tests and tools).
    pub fn defaults() -> Self {
        Self {
            http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/airlock"),
            amqp_url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            db_max_connections: 10,
            shutdown_grace_secs: 20,
        }
    }
}

/// The body of every long-running service's `main`: logging, the shutdown token, the
/// listener on `addr`, then `start` until it returns. Failures print one line and exit 1.
pub async fn run_service<F, Fut, E>(
    name: &str,
    addr: std::net::SocketAddr,
    start: F,
) -> std::process::ExitCode
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    init_tracing();
    let shutdown = shutdown_token();
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot listen on {addr}: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match start(listener, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{name} failed");
            eprintln!("{name}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
