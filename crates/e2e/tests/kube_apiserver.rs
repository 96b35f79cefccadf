//! The platform on the Kubernetes runtime against a real kube-apiserver (etcd, RBAC,
//! Pod Security `restricted` enforced by the API server itself), the test playing the
//! kubelet: a run's pod is admitted, runs and is followed through pods/log; its
//! namespace gets the deny-all policy; cancelling deletes the pod gracefully; and many
//! runs at once over several orchestrators, one of them killed midway, all finish once.
//! `bench_many_pods` is the large version, printing pods/s, watch lag and API errors.

use airlock_test_support::kubernetes::{self, RealCluster};
use airlock_test_support::{Api, Service, Stack, StackOptions};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api as KubeApi, ListParams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

async fn start(options: StackOptions) -> Option<(RealCluster, Stack, Api)> {
    let (cluster, stack) = kubernetes::start_real(options, kubernetes::kubelet()).await?;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    Some((cluster, stack, api))
}

async fn pods_of_run(cluster: &RealCluster, run: &str) -> Vec<Pod> {
    let pods: KubeApi<Pod> = KubeApi::namespaced(cluster.client(), cluster.namespace());
    pods.list(&ListParams::default().labels(&format!("airlock.dev/run-id={run}")))
        .await
        .expect("list pods")
        .items
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_pod_is_admitted_as_restricted_followed_and_deleted_when_cancelled() {
    let Some((cluster, stack, api)) = start(StackOptions::default()).await else {
        return;
    };
    let policies: KubeApi<NetworkPolicy> =
        KubeApi::namespaced(cluster.client(), cluster.namespace());
    let policies = policies
        .list(&ListParams::default())
        .await
        .expect("list policies")
        .items;
    assert_eq!(policies.len(), 1, "the deny-all policy");

    let id = api
        .submit_ok(&json!({"name": "real", "image": "img",
            "command": ["sh", "-c", "cat \"$AIRLOCK_TASK_INPUT\"; echo; echo done"],
            "tasks": [{"id": "t", "input": {"q": 7}}]}))
        .await;
    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let run = finished["runs"][0]["id"].as_str().expect("run").to_owned();
    let lines: Vec<String> = api
        .run_events(&run)
        .await
        .iter()
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(lines, ["{\"q\":7}", "done"], "read through pods/log");
    let pods = pods_of_run(&cluster, &run).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(cluster.node()),
        "bound to the test's node through pods/binding"
    );

    let long = api
        .submit_ok(&json!({"name": "long", "image": "img", "command": ["sleep", "600"]}))
        .await;
    let evaluation = api.evaluation(&long).await;
    let long_run = evaluation["runs"][0]["id"]
        .as_str()
        .expect("run")
        .to_owned();
    api.wait_run_state(&long_run, "running", LIMIT).await;
    assert_eq!(pods_of_run(&cluster, &long_run).await.len(), 1);
    let cancel = api
        .post(&format!("/api/v1/evaluations/{long}/cancel"))
        .await;
    assert_eq!(cancel.status, 202);
    let cancelled = api.wait_finished(&long, LIMIT).await;
    assert_eq!(cancelled["runs"][0]["reason"], "cancelled while running");
    airlock_test_support::eventually("the pod to be gone", LIMIT, || async {
        pods_of_run(&cluster, &long_run)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_pods_over_three_orchestrators_survive_a_kill() {
    many_pods(40, 16, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench.sh kubernetes"]
async fn bench_many_pods() {
    let runs = std::env::var("AIRLOCK_BENCH_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    // Each run lives a minute, so every pod is live at once.
    many_pods(runs, runs.div_ceil(3) + 10, 60).await;
}

/// `runs` runs of `seconds` each at once (capacity `per_replica` on each of three
/// orchestrators), the busiest orchestrator killed with -9 when half the pods exist;
/// every run succeeds once, with one pod each.
async fn many_pods(runs: usize, per_replica: usize, seconds: u64) {
    let options = StackOptions {
        replicas: vec![(Service::Orchestrator, 3)],
        capacity: per_replica,
        env: vec![
            (
                Service::Orchestrator,
                "AIRLOCK_REPLICA_LEASE_SECS".to_owned(),
                "5".to_owned(),
            ),
            (
                Service::Orchestrator,
                "AIRLOCK_K8S_RETENTION_SECS".to_owned(),
                "0".to_owned(),
            ),
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_PER_MINUTE".to_owned(),
                "1000000".to_owned(),
            ),
            (
                Service::Gateway,
                "AIRLOCK_RATE_LIMIT_BURST".to_owned(),
                "1000000".to_owned(),
            ),
        ],
        ..StackOptions::default()
    };
    let Some((cluster, mut stack, api)) = start(options).await else {
        return;
    };
    let epochs = runs.min(100);
    let tasks: Vec<Value> = (0..runs.div_ceil(epochs))
        .map(|t| json!({"id": format!("t{t}")}))
        .collect();
    let total = tasks.len() * epochs;
    let began = Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let (peak, cluster_pods) = (peak.clone(), cluster.live_counter());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(cluster_pods(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let id = api
        .submit_ok(
            &json!({"name": "many", "image": "img", "command": ["sh", "-c", format!("echo hi; sleep {seconds}")],
            "tasks": tasks, "epochs": epochs, "timeout": "10m"}),
        )
        .await;
    airlock_test_support::eventually("half the pods", Duration::from_secs(600), || async {
        (cluster.pods_created() as usize * 2 >= total).then_some(())
    })
    .await;
    let half_at = began.elapsed();
    let holder = stack.claim_holder().await;
    let killed_at = chrono::Utc::now();
    let victim = stack.replica_named(Service::Orchestrator, 3, &holder);
    stack.kill_replica(Service::Orchestrator, victim).await;
    let finished = api.wait_finished(&id, Duration::from_secs(1800)).await;
    let elapsed = began.elapsed();
    sampler.abort();
    let runs = finished["runs"].as_array().expect("runs");
    let mut states: HashMap<&str, usize> = HashMap::new();
    for run in runs {
        *states
            .entry(run["state"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let reasons: std::collections::BTreeSet<&str> = runs
        .iter()
        .filter(|r| r["state"] != "succeeded")
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(
        states.get("succeeded"),
        Some(&total),
        "{states:?}; why: {reasons:?}"
    );
    // The killed replica's pods are adopted, not made again; only a run it had claimed
    // but not yet made a pod for is retried, as attempt 2.
    let created: Vec<String> = cluster
        .creation_times()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for run in runs {
        let id = run["id"].as_str().unwrap_or("").replace('-', "");
        let pods: Vec<&String> = created.iter().filter(|n| n.contains(&id)).collect();
        let attempt = run["attempt"].as_u64().unwrap_or(0);
        assert_eq!(
            pods,
            [&format!("airlock-{id}-{attempt}")],
            "run {id} (attempt {attempt}): one pod"
        );
    }

    // From the kubelet sending a pod's Running phase to the platform's `running`, where
    // both came before the kill (the killed replica's runs wait for the takeover).
    let running = cluster.running_times();
    let mut lags = Vec::new();
    for run in runs {
        let id = run["id"].as_str().unwrap_or("");
        let pod = format!("airlock-{}-{}", id.replace('-', ""), run["attempt"]);
        let Some(at) = running.get(&pod).filter(|at| **at < killed_at) else {
            continue;
        };
        let events = api.run_events(id).await;
        let seen = events
            .iter()
            .find(|e| e["type"] == "status" && e["state"] == "running");
        let seen = seen.and_then(|e| {
            e["ts"]
                .as_str()?
                .parse::<chrono::DateTime<chrono::Utc>>()
                .ok()
        });
        if let Some(seen) = seen.filter(|seen| *seen < killed_at) {
            lags.push((seen - *at).to_std().unwrap_or_default());
        }
    }
    let mut api_errors = 0.0;
    for index in (0..3).filter(|i| *i != victim) {
        let url = format!(
            "{}/metrics",
            stack.replica_url(Service::Orchestrator, index)
        );
        let text = reqwest::get(&url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        api_errors += text
            .lines()
            .filter(|l| {
                l.starts_with("airlock_kubernetes_api_errors_total")
                    || l.starts_with("airlock_kubernetes_watch_errors_total")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    println!(
        "kubernetes: {total} runs of {seconds} s on 3 orchestrators ({per_replica} slots each), one killed at {} pods; \
         {:.1} pods/s to half; at most {} pods running at once; all {total} succeeded in {:.1} s, one pod each; \
         pod Running -> run running p50 {:?} p99 {:?} ({} samples); \
         API and watch errors retried by the survivors: {api_errors}",
        total / 2,
        (total / 2) as f64 / half_at.as_secs_f64(),
        peak.load(std::sync::atomic::Ordering::Relaxed),
        elapsed.as_secs_f64(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.len(),
    );
    stack.stop().await;
}

fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}
