//! Gateway metrics beyond HTTP: submissions, WebSocket sessions, the outbox.

use airlock_db::Db;
use prometheus::{Gauge, IntCounter, IntGauge};
use std::sync::LazyLock;

struct Metrics {
    evaluations: IntCounter,
    runs: IntCounter,
    websockets: IntGauge,
    outbox_published: IntCounter,
    outbox_backlog: IntGauge,
    outbox_age: Gauge,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    Some(Metrics {
        evaluations: prometheus::register_int_counter!(
            "airlock_evaluations_submitted_total",
            "Evaluations accepted."
        )
        .ok()?,
        runs: prometheus::register_int_counter!(
            "airlock_runs_submitted_total",
            "Runs created by accepted evaluations."
        )
        .ok()?,
        websockets: prometheus::register_int_gauge!(
            "airlock_websocket_connections",
            "Open WebSocket stream sessions."
        )
        .ok()?,
        outbox_published: prometheus::register_int_counter!(
            "airlock_outbox_published_total",
            "Outbox messages published and confirmed."
        )
        .ok()?,
        outbox_backlog: prometheus::register_int_gauge!(
            "airlock_outbox_backlog",
            "Outbox messages waiting to be published."
        )
        .ok()?,
        outbox_age: prometheus::register_gauge!(
            "airlock_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox message."
        )
        .ok()?,
    })
});

pub fn evaluation_submitted(runs: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.evaluations.inc();
        m.runs.inc_by(runs as u64);
    }
}

pub fn websocket_opened() {
    if let Some(m) = METRICS.as_ref() {
        m.websockets.inc();
    }
}

pub fn websocket_closed() {
    if let Some(m) = METRICS.as_ref() {
        m.websockets.dec();
    }
}

pub fn outbox_published(n: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.outbox_published.inc_by(n as u64);
    }
}

pub async fn outbox_backlog(db: &Db) {
    if let (Some(m), Ok((count, age))) = (METRICS.as_ref(), db.outbox_backlog().await) {
        m.outbox_backlog.set(count);
        m.outbox_age.set(age);
    }
}
