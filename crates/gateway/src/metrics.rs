//! Gateway metrics beyond HTTP: submissions, WebSocket sessions, the outbox, refused
//! credentials, rate limiting and the database pool. Every metric is listed in
//! docs/metrics.md.

use airlock_db::{Db, GatewayDb};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the outbox gauges are read from PostgreSQL besides after each drain (the
/// relay does not drain while RabbitMQ is unreachable, which is when they matter).
const OUTBOX_REFRESH: Duration = Duration::from_secs(5);

struct Metrics {
    evaluations: IntCounter,
    runs: IntCounter,
    websockets: IntGauge,
    outbox_published: IntCounter,
    outbox_backlog: IntGauge,
    outbox_age: Gauge,
    auth_failures: IntCounterVec,
    rate_limited: IntCounter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn register() -> prometheus::Result<Metrics> {
    Ok(Metrics {
        evaluations: prometheus::register_int_counter!(
            "airlock_evaluations_submitted_total",
            "Evaluations accepted."
        )?,
        runs: prometheus::register_int_counter!(
            "airlock_runs_submitted_total",
            "Runs created by accepted evaluations."
        )?,
        websockets: prometheus::register_int_gauge!(
            "airlock_websocket_connections",
            "Open WebSocket stream sessions."
        )?,
        outbox_published: prometheus::register_int_counter!(
            "airlock_outbox_published_total",
            "Outbox messages published and confirmed."
        )?,
        outbox_backlog: prometheus::register_int_gauge!(
            "airlock_outbox_backlog",
            "Outbox messages waiting to be published."
        )?,
        outbox_age: prometheus::register_gauge!(
            "airlock_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox message."
        )?,
        auth_failures: prometheus::register_int_counter_vec!(
            "airlock_auth_failures_total",
            "Refused credentials, by method (api_token, jwt, bearer, oidc, dev_login).",
            &["method"]
        )?,
        rate_limited: prometheus::register_int_counter!(
            "airlock_rate_limited_total",
            "Requests answered 429 by a rate limit."
        )?,
    })
}

/// Registers the gateway's metrics and reports `db`'s pool.
/// Registers the gateway's metrics and reports `db`'s pool. Fails when a metric cannot
/// be registered (start-up stops).
pub fn init(db: &Db) -> prometheus::Result<()> {
    if METRICS.get().is_none() {
        let metrics = register()?;
        let _ = METRICS.set(metrics);
    }
    let db = db.clone();
    airlock_service::observe_db_pool(move || {
        let usage = db.pool_usage();
        airlock_service::PoolSample {
            in_use: usage.in_use,
            idle: usage.idle,
            max: usage.max,
        }
    });
    Ok(())
}

pub fn auth_failure(method: &str) {
    if let Some(m) = METRICS.get() {
        m.auth_failures.with_label_values(&[method]).inc();
    }
}

pub fn rate_limited() {
    if let Some(m) = METRICS.get() {
        m.rate_limited.inc();
    }
}

pub fn evaluation_submitted(runs: usize) {
    if let Some(m) = METRICS.get() {
        m.evaluations.inc();
        m.runs.inc_by(runs as u64);
    }
}

pub fn websocket_opened() {
    if let Some(m) = METRICS.get() {
        m.websockets.inc();
    }
}

pub fn websocket_closed() {
    if let Some(m) = METRICS.get() {
        m.websockets.dec();
    }
}

pub fn outbox_published(n: usize) {
    if let Some(m) = METRICS.get() {
        m.outbox_published.inc_by(n as u64);
    }
}

pub async fn outbox_backlog(db: &GatewayDb) {
    if let (Some(m), Ok((count, age))) = (METRICS.get(), db.outbox_backlog().await) {
        m.outbox_backlog.set(count);
        m.outbox_age.set(age);
    }
}

/// Reads the outbox gauges every [`OUTBOX_REFRESH`] until `stop`.
pub async fn refresh_outbox(db: GatewayDb, stop: CancellationToken) {
    loop {
        outbox_backlog(&db).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(OUTBOX_REFRESH) => {}
        }
    }
}
