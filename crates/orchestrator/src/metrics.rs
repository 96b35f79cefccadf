//! Orchestrator metrics. Every metric is listed in docs/metrics.md.

use airlock_db::Db;
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge};
use std::sync::OnceLock;
use std::time::Duration;

use crate::runtime::{Created, RuntimeError};

struct Metrics {
    running: IntGauge,
    waiting: IntGauge,
    sandboxes: IntCounterVec,
    create_seconds: HistogramVec,
    create_failures: IntCounterVec,
    kube_errors: IntCounterVec,
    watch_errors: IntCounter,
    log_resumes: IntCounter,
    reaped: IntCounterVec,
    live_pods: IntGauge,
    replicas_lost: IntCounter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn register(replica: &str) -> prometheus::Result<Metrics> {
    let per_replica =
        |name: &str, help: &str| prometheus::Opts::new(name, help).const_label("replica", replica);
    Ok(Metrics {
        running: prometheus::register_int_gauge!(per_replica(
            "airlock_sandboxes_running",
            "Sandboxes holding a slot of this replica."
        ))?,
        waiting: prometheus::register_int_gauge!(per_replica(
            "airlock_runs_waiting",
            "Runs this replica received that wait for a slot or a global quota."
        ))?,
        sandboxes: prometheus::register_int_counter_vec!(
            "airlock_sandbox_creations_total",
            "Sandbox creations by outcome (new, existing, refused, failed).",
            &["outcome"]
        )?,
        create_seconds: prometheus::register_histogram_vec!(
            "airlock_sandbox_create_duration_seconds",
            "Time to create a sandbox (until the runtime has it), by runtime.",
            &["runtime"],
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
            ]
        )?,
        create_failures: prometheus::register_int_counter_vec!(
            "airlock_sandbox_create_failures_total",
            "Sandbox creations that failed, by reason (refused: the runtime cannot run the spec; runtime_error: the runtime failed).",
            &["reason"]
        )?,
        kube_errors: prometheus::register_int_counter_vec!(
            "airlock_kubernetes_api_errors_total",
            "Kubernetes API calls that failed and were retried, by call and kind.",
            &["call", "kind"]
        )?,
        watch_errors: prometheus::register_int_counter!(
            "airlock_kubernetes_watch_errors_total",
            "Pod watch failures (each is retried with backoff)."
        )?,
        log_resumes: prometheus::register_int_counter!(
            "airlock_kubernetes_log_follow_resumes_total",
            "Pod log follows that ended early and were resumed."
        )?,
        reaped: prometheus::register_int_counter_vec!(
            "airlock_kubernetes_pods_reaped_total",
            "Pods deleted by the reaper, by why (finished, orphan).",
            &["why"]
        )?,
        live_pods: prometheus::register_int_gauge!(
            "airlock_kubernetes_live_pods",
            "Airlock pods holding resources (not finished), as the pod watcher sees them."
        )?,
        replicas_lost: prometheus::register_int_counter!(
            "airlock_orchestrator_replicas_lost_total",
            "Orchestrator replicas this replica found lost (lease expired) and took over from."
        )?,
    })
}

/// Why a sandbox creation failed, as the `reason` label says it.
const CREATE_FAILURE_REASONS: [&str; 2] = ["refused", "runtime_error"];

/// Registers the orchestrator's metrics (at zero where the label values are known:
/// creation failures, and for the Kubernetes runtime the reaper's deletions) and
/// reports `db`'s pool. Fails when a metric cannot be registered (start-up stops).
pub fn init(runtime: &str, db: &Db, replica: &str) -> prometheus::Result<()> {
    if METRICS.get().is_none() {
        let metrics = register(replica)?;
        let _ = METRICS.set(metrics);
    }
    if let Some(m) = METRICS.get() {
        m.create_seconds.with_label_values(&[runtime]);
        for reason in CREATE_FAILURE_REASONS {
            m.create_failures.with_label_values(&[reason]);
        }
        if runtime == "kubernetes" {
            for why in ["finished", "orphan"] {
                m.reaped.with_label_values(&[why]);
            }
        }
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

pub fn replica_lost() {
    if let Some(m) = METRICS.get() {
        m.replicas_lost.inc();
    }
}

pub fn scheduler(running: usize, waiting: usize) {
    if let Some(m) = METRICS.get() {
        m.running.set(running as i64);
        m.waiting.set(waiting as i64);
    }
}

/// Counts a sandbox creation by outcome, times it, and counts a failure by reason.
pub fn sandbox_created(runtime: &str, took: Duration, result: &Result<Created, RuntimeError>) {
    let (outcome, failure) = match result {
        Ok(Created::New) => ("new", None),
        Ok(Created::Existing) => ("existing", None),
        Err(RuntimeError::Refused(_)) => ("refused", Some(CREATE_FAILURE_REASONS[0])),
        Err(_) => ("failed", Some(CREATE_FAILURE_REASONS[1])),
    };
    if let Some(m) = METRICS.get() {
        m.sandboxes.with_label_values(&[outcome]).inc();
        m.create_seconds
            .with_label_values(&[runtime])
            .observe(took.as_secs_f64());
        if let Some(reason) = failure {
            m.create_failures.with_label_values(&[reason]).inc();
        }
    }
}

pub fn kube_error(call: &str, error: &crate::runtime::kubernetes::error::KubeError) {
    if let Some(m) = METRICS.get() {
        m.kube_errors.with_label_values(&[call, error.kind()]).inc();
    }
}

pub fn watch_error() {
    if let Some(m) = METRICS.get() {
        m.watch_errors.inc();
    }
}

pub fn log_follow_resumed() {
    if let Some(m) = METRICS.get() {
        m.log_resumes.inc();
    }
}

pub fn pod_reaped(why: &str) {
    if let Some(m) = METRICS.get() {
        m.reaped.with_label_values(&[why]).inc();
    }
}

pub fn live_pods(count: usize) {
    if let Some(m) = METRICS.get() {
        m.live_pods.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
