//! Orchestrator metrics.

use prometheus::{IntCounterVec, IntGauge};
use std::sync::LazyLock;

use crate::runtime::{Created, RuntimeError};

struct Metrics {
    running: IntGauge,
    waiting: IntGauge,
    sandboxes: IntCounterVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    Some(Metrics {
        running: prometheus::register_int_gauge!(
            "airlock_sandboxes_running",
            "Sandboxes holding a slot."
        )
        .ok()?,
        waiting: prometheus::register_int_gauge!(
            "airlock_runs_waiting",
            "Runs received and waiting for a slot."
        )
        .ok()?,
        sandboxes: prometheus::register_int_counter_vec!(
            "airlock_sandbox_creations_total",
            "Sandbox creations by outcome (new, existing, refused, failed).",
            &["outcome"]
        )
        .ok()?,
    })
});

pub fn scheduler(running: usize, waiting: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.running.set(running as i64);
        m.waiting.set(waiting as i64);
    }
}

pub fn sandbox_created(result: &Result<Created, RuntimeError>) {
    let outcome = match result {
        Ok(Created::New) => "new",
        Ok(Created::Existing) => "existing",
        Err(RuntimeError::Refused(_)) => "refused",
        Err(_) => "failed",
    };
    if let Some(m) = METRICS.as_ref() {
        m.sandboxes.with_label_values(&[outcome]).inc();
    }
}
