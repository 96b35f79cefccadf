//! Result-processor metrics. Every metric is listed in docs/metrics.md.

use airlock_db::results::Applied;
use airlock_db::{Db, ResultsDb};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often `airlock_runs{state}` is read from PostgreSQL.
const RUNS_REFRESH: Duration = Duration::from_secs(10);

struct Metrics {
    events: IntCounter,
    duplicates: IntCounter,
    rejected: IntCounter,
    batch_size: Histogram,
    batch_seconds: Histogram,
    transitions: IntCounterVec,
    run_seconds: HistogramVec,
    queue_wait: Histogram,
    runs: IntGaugeVec,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn register() -> prometheus::Result<Metrics> {
    Ok(Metrics {
        events: prometheus::register_int_counter!(
            "airlock_events_ingested_total",
            "Run events persisted."
        )?,
        duplicates: prometheus::register_int_counter!(
            "airlock_events_duplicate_total",
            "Run events ignored as already persisted."
        )?,
        rejected: prometheus::register_int_counter!(
            "airlock_run_transitions_rejected_total",
            "Run state changes refused by the state machine."
        )?,
        batch_size: prometheus::register_histogram!(
            "airlock_ingest_batch_size",
            "Reports applied per database transaction.",
            vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0]
        )?,
        batch_seconds: prometheus::register_histogram!(
            "airlock_ingest_batch_duration_seconds",
            "Time to apply and commit one batch of reports and publish its updates.",
            vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
        )?,
        transitions: prometheus::register_int_counter_vec!(
            "airlock_run_transitions_total",
            "Run state changes applied, by new state.",
            &["state"]
        )?,
        run_seconds: prometheus::register_histogram_vec!(
            "airlock_run_duration_seconds",
            "Time from a run's start to its final state, by final state (from its submission when it never started).",
            &["state"],
            vec![
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                21600.0, 86400.0
            ]
        )?,
        queue_wait: prometheus::register_histogram!(
            "airlock_run_queue_wait_seconds",
            "Time from a run's submission to its start (first running).",
            vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                3600.0
            ]
        )?,
        runs: prometheus::register_int_gauge_vec!(
            "airlock_runs",
            "Runs by state, as stored in PostgreSQL.",
            &["state"]
        )?,
    })
}

/// Registers the result-processor's metrics and reports `db`'s pool. Fails when a
/// metric cannot be registered (start-up stops).
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

pub fn batch(reports: usize, seconds: f64, applied: &Applied) {
    if let Some(m) = METRICS.get() {
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
        for run in &applied.started {
            m.queue_wait.observe(run.seconds);
        }
        for run in &applied.finished {
            m.run_seconds
                .with_label_values(&[run.state.as_str()])
                .observe(run.seconds);
        }
    }
}

/// Sets `airlock_runs{state}` from PostgreSQL every [`RUNS_REFRESH`] until `stop`.
pub async fn refresh_runs(db: ResultsDb, stop: CancellationToken) {
    loop {
        match db.runs_by_state().await {
            Ok(counts) => {
                if let Some(m) = METRICS.get() {
                    for (state, count) in counts {
                        m.runs.with_label_values(&[state.as_str()]).set(count);
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cannot count runs by state"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RUNS_REFRESH) => {}
        }
    }
}
