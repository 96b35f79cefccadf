//! A benchmark, not a test: submits 2,000 one-task evaluations (override with
//! `AIRLOCK_BENCH_EVALUATIONS`) to the platform running the Kubernetes runtime against
//! the fake API server, and prints how many runs were dispatched per second (submission
//! of the first to creation of the last pod) and the p50/p99 time from submission (the
//! evaluation's commit) to its pod's creation by the API server. The fake kubelet
//! leaves the pods pending, so only the dispatch path is measured; capacity is set above
//! the number of runs. Submissions go `AIRLOCK_BENCH_IN_FLIGHT` (default 16) at a time.
//!
//! Run: `cargo build --release --bins && cargo bench -p airlock-e2e --bench kube_dispatch`.

use airlock_test_support::kubernetes::{self, NAMESPACE};
use airlock_test_support::{Service, StackOptions, eventually};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("AIRLOCK_BENCH_EVALUATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let in_flight: usize = std::env::var("AIRLOCK_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let unlimited = "1000000000".to_owned();
    let options = StackOptions {
        capacity: n + 100,
        env: vec![
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_PER_MINUTE".into(),
                unlimited.clone(),
            ),
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_BURST".into(),
                unlimited,
            ),
            (
                Service::Orchestrator,
                "RUST_LOG".into(),
                "info,airlock_orchestrator::reports=warn".into(),
            ),
        ],
        ..StackOptions::default()
    };
    let kubelet = kubernetes::KubeletOptions {
        run_pods: false,
        ..kubernetes::kubelet()
    };
    let (cluster, stack) = kubernetes::start(options, kubelet).await;
    let api = stack.api(&stack.token("bench", "bench", "researcher").await);

    let began = Instant::now();
    let submitted: Vec<(String, DateTime<Utc>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let api = &api;
            async move {
                let reply = api
                    .submit(
                        &json!({"name": format!("bench {i}"), "image": "img", "command": ["true"]}),
                    )
                    .await;
                assert_eq!(reply.status, 201, "{}", reply.body);
                let id = reply.body["id"].as_str().expect("id").to_owned();
                let at: DateTime<Utc> = reply.body["created_at"]
                    .as_str()
                    .expect("created_at")
                    .parse()
                    .expect("timestamp");
                (id, at)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let submitting = began.elapsed();
    eventually(
        "every pod to be created",
        Duration::from_secs(900),
        || async { (cluster.pods_created() as usize >= n).then_some(()) },
    )
    .await;

    let created: HashMap<String, DateTime<Utc>> = cluster.creation_times().into_iter().collect();
    let evaluation_of_pod: HashMap<String, String> = cluster
        .pods(NAMESPACE)
        .into_iter()
        .filter_map(|p| {
            Some((
                p["metadata"]["labels"]["airlock.dev/evaluation-id"]
                    .as_str()?
                    .to_owned(),
                p["metadata"]["name"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut latencies: Vec<f64> = submitted
        .iter()
        .map(|(id, at)| {
            let pod = &evaluation_of_pod[id];
            (created[pod] - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let first = submitted
        .iter()
        .map(|(_, at)| *at)
        .min()
        .expect("submissions");
    let last = created.values().max().copied().expect("pods");
    let span = (last - first).num_microseconds().unwrap_or(1) as f64 / 1e6;

    println!("evaluations (one run each)        {n}");
    println!(
        "submitted in                      {:.2}s ({:.0}/s, {in_flight} in flight)",
        submitting.as_secs_f64(),
        n as f64 / submitting.as_secs_f64()
    );
    println!(
        "runs dispatched per second        {:.0} (first submission to last pod created: {span:.2}s)",
        n as f64 / span
    );
    println!(
        "submission -> pod created  p50    {:.1} ms",
        percentile(&latencies, 0.50)
    );
    println!(
        "submission -> pod created  p99    {:.1} ms",
        percentile(&latencies, 0.99)
    );
    println!(
        "submission -> pod created  max    {:.1} ms",
        percentile(&latencies, 1.0)
    );
    stack.stop().await;
}
