//! A real Prometheus scrapes the three services while one evaluation runs to the end;
//! then every metric docs/metrics.md lists must have data from every service it names,
//! and no service may expose an `airlock_` metric the document does not list. The list
//! comes from the document's table, so the document and the services cannot drift.
//!
//! Needs Debian's `prometheus` package (`scripts/deps.sh` installs it); without it this
//! test fails and says so.

use airlock_test_support::{Api, Service, Stack, StackOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const PROMETHEUS: &str = "/usr/bin/prometheus";
/// The services as the document names them, and as the scrape jobs are named.
const SERVICES: [(&str, Service); 3] = [
    ("gateway", Service::Gateway),
    ("orchestrator", Service::Orchestrator),
    ("result-processor", Service::ResultProcessor),
];

/// One row of the document's table.
#[derive(Debug)]
struct Documented {
    name: String,
    kind: String,
    services: Vec<&'static str>,
    kubernetes_only: bool,
}

impl Documented {
    /// The series to ask for: a histogram's `_count`.
    fn series(&self) -> String {
        if self.kind == "histogram" {
            format!("{}_count", self.name)
        } else {
            self.name.clone()
        }
    }
}

fn metrics_document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md")
}

/// The rows of the metrics table: `| `name` | type | labels | unit | services | meaning |`.
fn documented_metrics() -> Vec<Documented> {
    let path = metrics_document();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows: Vec<Documented> = text
        .lines()
        .filter(|line| line.starts_with("| `airlock_"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "a row of six cells: {line}");
            let kind = cells[1].to_owned();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "type of {line}"
            );
            let services: Vec<&str> = if cells[4].starts_with("all") {
                SERVICES.iter().map(|(name, _)| *name).collect()
            } else {
                SERVICES
                    .iter()
                    .map(|(name, _)| *name)
                    .filter(|name| cells[4].split([',', ' ']).any(|word| word == *name))
                    .collect()
            };
            assert!(!services.is_empty(), "no known service in {line}");
            Documented {
                name: cells[0].trim_matches('`').to_owned(),
                kind,
                services,
                kubernetes_only: line.contains("kubernetes runtime only"),
            }
        })
        .collect();
    assert!(rows.len() > 20, "the metrics table of {}", path.display());
    rows
}

/// A Prometheus server of the test's own, scraping the stack every second.
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(stack: &Stack) -> Self {
        let dir = stack.log_dir.join("prometheus");
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, service) in SERVICES {
            let target = stack.url(service).replace("http://", "");
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let ready = format!("{}/-/ready", prometheus.url);
        airlock_test_support::eventually("Prometheus ready", Duration::from_secs(60), || {
            let request = prometheus.http.get(&ready).send();
            async move {
                request
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        prometheus
    }

    /// An instant query's result vector (empty when the query fails).
    async fn query(&self, query: &str) -> Vec<Value> {
        let Ok(response) = self
            .http
            .get(format!("{}/api/v1/query?query={}", self.url, encode(query)))
            .send()
            .await
        else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The jobs that have data for `query`.
    async fn jobs_with(&self, query: &str) -> BTreeSet<String> {
        self.query(&format!("count by (job) ({query})"))
            .await
            .iter()
            .filter_map(|sample| sample["metric"]["job"].as_str().map(str::to_owned))
            .collect()
    }

    /// The value of a query returning one sample.
    async fn value(&self, query: &str) -> f64 {
        self.query(query)
            .await
            .first()
            .and_then(|sample| sample["value"][1].as_str()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Every metric name Prometheus holds.
    async fn names(&self) -> Vec<String> {
        let Ok(response) = self
            .http
            .get(format!("{}/api/v1/label/__name__/values", self.url))
            .send()
            .await
        else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls until `missing` finds nothing, failing with what is still missing after
/// `limit`.
async fn until_none_missing<F, Fut>(what: &str, limit: Duration, mut missing: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let still = missing().await;
        if still.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {limit:?}, {what}:\n  {}",
            still.join("\n  ")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The Helm chart's alerts and dashboard query only metrics the document lists.
#[test]
fn the_charts_alerts_and_dashboard_use_documented_metrics() {
    let listed: BTreeSet<String> = documented_metrics().into_iter().map(|m| m.name).collect();
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/airlock/files");
    let mut used = BTreeSet::new();
    for entry in std::fs::read_dir(&files)
        .expect("the chart's files")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (start, _) in text.match_indices("airlock_") {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    assert!(!used.is_empty(), "metrics used in {}", files.display());
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| listed.contains(*base));
            !listed.contains(base.unwrap_or(name))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "the chart uses metrics docs/metrics.md does not list: {unknown:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_metric_has_data_in_prometheus_after_an_evaluation() {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install Debian's `prometheus` package \
         (scripts/deps.sh does) to run the metrics test"
    );
    let documented = documented_metrics();
    let stack = Stack::start(StackOptions::default()).await;
    let prometheus = Prometheus::start(&stack).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);

    // One evaluation to its end, watched live (a WebSocket session).
    let spec = json!({
        "name": "metrics",
        "image": "img",
        "command": ["sh", "-c", "echo working; echo '{\"type\":\"score\",\"name\":\"accuracy\",\"value\":1}' >> \"$AIRLOCK_EVENTS\""],
        "tasks": [{"id": "a"}, {"id": "b"}],
        "epochs": 2,
        "timeout": "60s"
    });
    let id = api.submit_ok(&spec).await;
    let stream = api.stream(&id, None).await;
    let evaluation = api.wait_finished(&id, Duration::from_secs(90)).await;
    assert_eq!(evaluation["status"], "succeeded", "{evaluation}");
    stream.close().await;

    // A sandbox the local runtime refuses to create: a GPU.
    let gpu = json!({
        "name": "needs a gpu",
        "image": "img",
        "command": ["true"],
        "resources": {"gpu": 1},
        "timeout": "60s"
    });
    let refused = api.submit_ok(&gpu).await;
    let refused = api.wait_finished(&refused, Duration::from_secs(90)).await;
    assert_eq!(refused["runs"][0]["state"], "error", "{refused}");

    // A credential the gateway refuses.
    let stranger = Api::new(api.base(), "alk_not-a-token");
    assert_eq!(stranger.get("/api/v1/me").await.status, 401);

    let expected: Vec<&Documented> = documented.iter().filter(|m| !m.kubernetes_only).collect();
    until_none_missing(
        "documented metrics without data (metric: services)",
        Duration::from_secs(60),
        || async {
            let mut missing = Vec::new();
            for metric in &expected {
                let jobs = prometheus.jobs_with(&metric.series()).await;
                let absent: Vec<&str> = metric
                    .services
                    .iter()
                    .copied()
                    .filter(|service| !jobs.contains(*service))
                    .collect();
                if !absent.is_empty() {
                    missing.push(format!("{}: {}", metric.name, absent.join(", ")));
                }
            }
            missing
        },
    )
    .await;

    // The numbers tell what happened.
    let checks: BTreeMap<&str, f64> = BTreeMap::from([
        (
            "sum(airlock_run_duration_seconds_count{state=\"succeeded\"})",
            4.0,
        ),
        (
            "sum(airlock_run_duration_seconds_count{state=\"error\"})",
            1.0,
        ),
        ("sum(airlock_run_queue_wait_seconds_count)", 4.0),
        (
            "sum(airlock_sandbox_create_failures_total{reason=\"refused\"})",
            1.0,
        ),
        (
            "sum(airlock_sandbox_create_duration_seconds_count{runtime=\"local\"})",
            5.0,
        ),
        ("sum(airlock_runs{state=\"succeeded\"})", 4.0),
        ("sum(airlock_runs{state=\"error\"})", 1.0),
        (
            "sum(airlock_messages_total{queue=\"airlock.run-requests\",outcome=\"acked\"})",
            5.0,
        ),
        ("sum(airlock_auth_failures_total)", 1.0),
        ("sum(airlock_evaluations_submitted_total)", 2.0),
    ]);
    until_none_missing(
        "queries below their expected value (query: now, expected)",
        Duration::from_secs(60),
        || async {
            let mut low = Vec::new();
            for (query, at_least) in &checks {
                let value = prometheus.value(query).await;
                if value < *at_least {
                    low.push(format!("{query}: {value}, expected at least {at_least}"));
                }
            }
            low
        },
    )
    .await;

    // Nothing exposed that the document does not list.
    let listed: BTreeSet<&str> = documented.iter().map(|m| m.name.as_str()).collect();
    let histograms: BTreeSet<&str> = documented
        .iter()
        .filter(|m| m.kind == "histogram")
        .map(|m| m.name.as_str())
        .collect();
    let unlisted: Vec<String> = prometheus
        .names()
        .await
        .into_iter()
        .filter(|name| name.starts_with("airlock_"))
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| histograms.contains(base));
            !listed.contains(base.unwrap_or(name))
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "metrics missing from {}: {unlisted:?}",
        metrics_document().display()
    );

    prometheus.stop().await;
    stack.stop().await;
}
