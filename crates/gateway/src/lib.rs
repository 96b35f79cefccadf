//! The API gateway: the REST and WebSocket API, sign-in (OpenID Connect sessions, API
//! tokens, provider access tokens), team administration and the audit log, the outbox
//! relay that hands accepted work to RabbitMQ, the consumer of committed updates, and
//! the web UI's static files.
//!
//! `build` binds nothing itself: it takes an already-bound listener, so tests can pass
//! port 0 and read the port back.

mod auth;
mod broker;
pub mod config;
mod dto;
mod error;
mod housekeeping;
mod hub;
mod metrics;
pub mod openapi;
mod rate_limit;
mod relay;
mod request_context;
mod routes;
mod static_files;
pub mod tokens;

pub use config::Config;

use airlock_db::{Db, GatewayDb};
use airlock_service::Readiness;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

/// Users of provider access tokens, by subject, with when they were looked up.
type JwtUsers = std::sync::Mutex<
    std::collections::HashMap<String, (airlock_db::Principal, std::time::Instant)>,
>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: GatewayDb,
    hub: hub::Hub,
    config: Arc<Config>,
    limiter: Arc<rate_limit::RateLimiter<airlock_core::UserId>>,
    /// Refused credentials per client address.
    failures: Arc<rate_limit::RateLimiter<std::net::IpAddr>>,
    oidc: Option<Arc<auth::oidc::Oidc>>,
    jwt_users: Arc<JwtUsers>,
    /// Where the provider sends the browser back to after login.
    redirect_uri: Arc<str>,
    shutdown: CancellationToken,
}

/// A gateway ready to run.
pub struct Gateway {
    listener: TcpListener,
    router: Router,
    db: GatewayDb,
    readiness: Readiness,
    broker: broker::BrokerTask,
    publisher: broker::PublisherSlot,
    config: Arc<Config>,
    shutdown: CancellationToken,
}

impl Gateway {
    /// Connects to PostgreSQL (applying pending migrations) and prepares every task.
    pub async fn build(
        config: Config,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let listen = listener.local_addr()?;
        config
            .identity
            .check(listen)
            .map_err(|problem| anyhow::anyhow!(problem))?;
        let oidc = auth::oidc::Oidc::from_config(&config.identity)?.map(Arc::new);
        let public_url = config
            .identity
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let redirect_uri: Arc<str> =
            format!("{}/auth/callback", public_url.trim_end_matches('/')).into();
        let db = GatewayDb::new(Db::connect_lazy(
            config.common.database_url.expose(),
            config.common.db_max_connections,
        )?);
        db.require_current_schema("gateway").await?;
        metrics::init(&db)
            .map_err(|e| anyhow::anyhow!("cannot register the gateway's metrics: {e}"))?;
        let readiness = Readiness::new(&["postgres", "rabbitmq"]);
        let hub = hub::Hub::new(4096);
        let (publisher_tx, publisher_rx) = watch::channel(None);
        let config = Arc::new(config);
        let state = AppState {
            db: db.clone(),
            hub: hub.clone(),
            config: config.clone(),
            limiter: Arc::new(rate_limit::RateLimiter::new(
                config.rate_limit_per_minute,
                config.rate_limit_burst,
            )),
            failures: Arc::new(rate_limit::RateLimiter::new(
                config.identity.auth_failures_per_minute,
                config.identity.auth_failures_per_minute,
            )),
            oidc,
            jwt_users: Arc::default(),
            redirect_uri,
            shutdown: shutdown.clone(),
        };
        let api = routes::api_router()
            .route(
                "/api/v1/openapi.json",
                axum::routing::get(|| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        openapi::document(),
                    )
                }),
            )
            // Unknown API paths answer JSON, never the web UI's index.html.
            .route(
                "/api/{*rest}",
                axum::routing::any(|| async { error::ApiError::not_found("API route") }),
            )
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            .with_state(state);
        let router = Router::new()
            .merge(api)
            .merge(airlock_service::ops_router(readiness.clone()))
            .fallback_service(static_files::router(&config.static_dir))
            .layer(axum::middleware::from_fn(airlock_service::http_metrics))
            .layer(axum::middleware::from_fn(request_context::middleware))
            .layer(request_context::propagate_request_id())
            .layer(request_context::set_request_id())
            .layer(CompressionLayer::new());
        let broker = broker::BrokerTask {
            url: config.common.amqp_url.expose().to_owned(),
            hub,
            readiness: readiness.clone(),
            publisher: publisher_tx,
        };
        Ok(Self {
            listener,
            router,
            db,
            readiness,
            broker,
            publisher: publisher_rx,
            config,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token is cancelled, then drains in a fixed order:
    /// HTTP (in-flight requests finish), the relay, the broker connection.
    pub async fn run(self) -> anyhow::Result<()> {
        let Gateway {
            listener,
            router,
            db,
            readiness,
            broker,
            publisher,
            config,
            shutdown,
        } = self;
        let tasks = CancellationToken::new();
        let probe_db = db.clone();
        let probe = readiness.spawn_probe(
            "postgres",
            Duration::from_secs(2),
            tasks.clone(),
            move || {
                let db = probe_db.clone();
                async move { db.ping().await }
            },
        );
        let broker = tokio::spawn(broker.run(tasks.clone()));
        let gauges = tokio::spawn(metrics::refresh_outbox(db.clone(), tasks.clone()));
        let housekeeping = tokio::spawn(housekeeping::run(
            db.clone(),
            config.identity.session_idle_secs as i64,
            config.identity.audit_retention_days,
            tasks.clone(),
        ));
        let relay = tokio::spawn(relay::Relay { db, publisher }.run(tasks.clone()));
        tracing::info!(addr = %listener.local_addr()?, "gateway listening");
        airlock_service::serve(listener, router, shutdown.clone()).await?;
        tracing::info!("HTTP server stopped");
        tasks.cancel();
        let grace = Duration::from_secs(config.common.shutdown_grace_secs);
        airlock_service::drain("outbox relay", grace, relay).await;
        airlock_service::drain("broker connection", grace, broker).await;
        probe.abort();
        gauges.abort();
        housekeeping.abort();
        tracing::info!("gateway stopped");
        Ok(())
    }
}
