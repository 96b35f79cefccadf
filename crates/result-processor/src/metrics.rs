//! Result-processor metrics.

use prometheus::{Histogram, IntCounter, IntCounterVec};
use std::sync::LazyLock;

struct Metrics {
    events: IntCounter,
    duplicates: IntCounter,
    rejected: IntCounter,
    batch_size: Histogram,
    batch_seconds: Histogram,
    transitions: IntCounterVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| {
    Some(Metrics {
        events: prometheus::register_int_counter!(
            "airlock_events_ingested_total",
            "Run events persisted."
        )
        .ok()?,
        duplicates: prometheus::register_int_counter!(
            "airlock_events_duplicate_total",
            "Run events ignored as already persisted."
        )
        .ok()?,
        rejected: prometheus::register_int_counter!(
            "airlock_run_transitions_rejected_total",
            "Run state changes refused by the state machine."
        )
        .ok()?,
        batch_size: prometheus::register_histogram!(
            "airlock_ingest_batch_size",
            "Reports applied per database transaction.",
            vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0]
        )
        .ok()?,
        batch_seconds: prometheus::register_histogram!(
            "airlock_ingest_batch_duration_seconds",
            "Time to apply and commit one batch.",
            vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
        )
        .ok()?,
        transitions: prometheus::register_int_counter_vec!(
            "airlock_run_transitions_total",
            "Run state changes applied, by new state.",
            &["state"]
        )
        .ok()?,
    })
});

pub fn batch(reports: usize, seconds: f64, applied: &airlock_db::results::Applied) {
    if let Some(m) = METRICS.as_ref() {
        m.batch_size.observe(reports as f64);
        m.batch_seconds.observe(seconds);
        m.events.inc_by(applied.events_stored as u64);
        m.duplicates.inc_by(applied.duplicates as u64);
        m.rejected.inc_by(applied.rejected.len() as u64);
        for update in &applied.updates {
            for run in &update.runs {
                m.transitions.with_label_values(&[run.state.as_str()]).inc();
            }
        }
    }
}
