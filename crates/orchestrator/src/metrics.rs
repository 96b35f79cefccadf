//! Orchestrator metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use std::sync::LazyLock;

use crate::runtime::{Created, RuntimeError};

struct Metrics {
    running: IntGauge,
    waiting: IntGauge,
    sandboxes: IntCounterVec,
    kube_errors: IntCounterVec,
    watch_errors: IntCounter,
    log_resumes: IntCounter,
    reaped: IntCounterVec,
    live_pods: IntGauge,
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
        kube_errors: prometheus::register_int_counter_vec!(
            "airlock_kubernetes_api_errors_total",
            "Kubernetes API calls that failed and were retried, by call and kind.",
            &["call", "kind"]
        )
        .ok()?,
        watch_errors: prometheus::register_int_counter!(
            "airlock_kubernetes_watch_errors_total",
            "Pod watch failures (each is retried with backoff)."
        )
        .ok()?,
        log_resumes: prometheus::register_int_counter!(
            "airlock_kubernetes_log_follow_resumes_total",
            "Pod log follows that ended early and were resumed."
        )
        .ok()?,
        reaped: prometheus::register_int_counter_vec!(
            "airlock_kubernetes_pods_reaped_total",
            "Pods deleted by the reaper, by why (finished, orphan).",
            &["why"]
        )
        .ok()?,
        live_pods: prometheus::register_int_gauge!(
            "airlock_kubernetes_live_pods",
            "Airlock pods holding resources (not finished), as the pod watcher sees them."
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

pub fn kube_error(call: &str, error: &crate::runtime::kubernetes::error::KubeError) {
    if let Some(m) = METRICS.as_ref() {
        m.kube_errors.with_label_values(&[call, error.kind()]).inc();
    }
}

pub fn watch_error() {
    if let Some(m) = METRICS.as_ref() {
        m.watch_errors.inc();
    }
}

pub fn log_follow_resumed() {
    if let Some(m) = METRICS.as_ref() {
        m.log_resumes.inc();
    }
}

pub fn pod_reaped(why: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.reaped.with_label_values(&[why]).inc();
    }
}

pub fn live_pods(count: usize) {
    if let Some(m) = METRICS.as_ref() {
        m.live_pods.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
