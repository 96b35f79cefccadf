//! Prometheus metrics: the default registry rendered as text, HTTP request metrics as a
//! middleware, the process's resident memory and its database pool. Every metric is
//! listed in docs/metrics.md.

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder};
use std::sync::LazyLock;
use std::time::Instant;

struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

static HTTP: LazyLock<Option<HttpMetrics>> = LazyLock::new(|| {
    let requests = prometheus::register_int_counter_vec!(
        "airlock_http_requests_total",
        "HTTP requests by route, method and status.",
        &["route", "method", "status"]
    )
    .ok()?;
    let duration = prometheus::register_histogram_vec!(
        "airlock_http_request_duration_seconds",
        "HTTP request latency by route.",
        &["route", "method"],
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .ok()?;
    Some(HttpMetrics { requests, duration })
});

static RESIDENT: LazyLock<Option<IntGauge>> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "airlock_process_resident_memory_bytes",
        "Resident memory of this process."
    )
    .ok()
});

/// Registers the metrics of this module (they exist, at zero, before anything happens).
pub fn init_metrics() {
    LazyLock::force(&HTTP);
    LazyLock::force(&RESIDENT);
}

/// The database pool as metrics read it: connections in use, idle, and the most the
/// pool opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSample {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Reports a connection pool as `airlock_db_pool_connections{state}` and
/// `airlock_db_pool_max_connections`, read from `sample` at every scrape. One pool per
/// process: a second registration is ignored.
pub fn observe_db_pool(sample: impl Fn() -> PoolSample + Send + Sync + 'static) {
    let collector = || -> prometheus::Result<PoolCollector> {
        Ok(PoolCollector {
            sample: Box::new(sample),
            connections: IntGaugeVec::new(
                Opts::new(
                    "airlock_db_pool_connections",
                    "Database pool connections by state (idle, in_use).",
                ),
                &["state"],
            )?,
            max: IntGauge::new(
                "airlock_db_pool_max_connections",
                "Most connections the database pool opens.",
            )?,
        })
    };
    match collector().and_then(|c| prometheus::register(Box::new(c))) {
        Ok(()) => {}
        Err(prometheus::Error::AlreadyReg) => {}
        Err(error) => tracing::warn!(%error, "cannot register the database pool metrics"),
    }
}

struct PoolCollector {
    sample: Box<dyn Fn() -> PoolSample + Send + Sync>,
    connections: IntGaugeVec,
    max: IntGauge,
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.connections.desc();
        descs.extend(self.max.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let sample = (self.sample)();
        self.connections
            .with_label_values(&["in_use"])
            .set(i64::from(sample.in_use));
        self.connections
            .with_label_values(&["idle"])
            .set(i64::from(sample.idle));
        self.max.set(i64::from(sample.max));
        let mut families = self.connections.collect();
        families.extend(self.max.collect());
        families
    }
}

/// Records every request's route (the matched pattern, never the raw path), status and
/// latency.
pub async fn http_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(http) = HTTP.as_ref() {
        http.requests
            .with_label_values(&[&route, &method, response.status().as_str()])
            .inc();
        http.duration
            .with_label_values(&[&route, &method])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// The default registry in Prometheus text format.
pub fn render_metrics() -> String {
    if let Some(gauge) = RESIDENT.as_ref() {
        gauge.set(resident_bytes());
    }
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&prometheus::gather(), &mut buffer) {
        tracing::error!(%error, "cannot encode metrics");
    }
    String::from_utf8(buffer).unwrap_or_default()
}

pub(crate) async fn handler() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(),
    )
}

fn resident_bytes() -> i64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_read_at_every_scrape() {
        let in_use = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(3));
        let reading = in_use.clone();
        observe_db_pool(move || PoolSample {
            in_use: reading.load(std::sync::atomic::Ordering::SeqCst),
            idle: 2,
            max: 10,
        });
        let text = render_metrics();
        assert!(
            text.contains("airlock_db_pool_connections{state=\"in_use\"} 3"),
            "{text}"
        );
        assert!(text.contains("airlock_db_pool_connections{state=\"idle\"} 2"));
        assert!(text.contains("airlock_db_pool_max_connections 10"));
        in_use.store(7, std::sync::atomic::Ordering::SeqCst);
        assert!(render_metrics().contains("airlock_db_pool_connections{state=\"in_use\"} 7"));
    }
}
