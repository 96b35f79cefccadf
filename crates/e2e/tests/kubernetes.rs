//! The platform on the Kubernetes runtime, against a fake cluster whose kubelet runs pods
//! on this machine: the pod's shape and the namespace's policy, the failure causes a
//! researcher must read clearly (image pull, OOM, unschedulable, deadline), watches and
//! log follows that drop, an orchestrator replica lost mid-run (its pod adopted by another), a redelivered request, the
//! reaper, cancellation and readiness.

use airlock_core::{EvaluationId, RunId, TeamId};
use airlock_test_support::kubernetes::{self, FakeCluster, KubeletOptions, NAMESPACE};
use airlock_test_support::{
    Api, Service, Stack, StackOptions, assert_contiguous, eventually, redelivery_of_first_run,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn env(pairs: &[(&str, &str)]) -> Vec<(Service, String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (Service::Orchestrator, (*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn start(pairs: &[(&str, &str)], kubelet: KubeletOptions) -> (FakeCluster, Stack, Api) {
    let options = StackOptions {
        env: env(pairs),
        ..StackOptions::default()
    };
    let (cluster, stack) = kubernetes::start(options, kubelet).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    (cluster, stack, api)
}

async fn only_run(api: &Api, evaluation: &str) -> String {
    api.evaluation(evaluation).await["runs"][0]["id"]
        .as_str()
        .expect("run id")
        .to_owned()
}

fn pods_of_run(cluster: &FakeCluster, run: &str) -> Vec<Value> {
    cluster
        .pods(NAMESPACE)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["airlock.dev/run-id"] == run)
        .collect()
}

/// How often each log line of a run was stored.
async fn log_counts(api: &Api, run: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in api.run_events(run).await {
        if event["type"] == "log" {
            *counts
                .entry(event["message"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
    }
    counts
}

async fn wait_log_line(api: &Api, run: &str, line: &str) {
    eventually(&format!("log line `{line}`"), LIMIT, || async {
        log_counts(api, run).await.contains_key(line).then_some(())
    })
    .await;
}

/// A running Airlock pod of a run nobody knows, placed on another node.
fn orphan(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {
            "airlock.dev/managed-by": "airlock",
            "airlock.dev/run-id": RunId::new().to_string(),
            "airlock.dev/evaluation-id": EvaluationId::new().to_string(),
            "airlock.dev/team": TeamId::new().to_string(),
            "airlock.dev/attempt": "1"}},
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "run", "image": "img"}]},
        "status": {"phase": "Running"}
    })
}

fn numbered_lines(n: usize) -> String {
    format!("for i in $(seq 1 {n}); do echo line $i; sleep 0.1; done")
}

fn assert_each_line_once(counts: &HashMap<String, usize>, n: usize) {
    for i in 1..=n {
        assert_eq!(
            counts.get(&format!("line {i}")),
            Some(&1),
            "line {i}: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_are_restricted_guaranteed_labelled_and_behind_a_deny_all_policy() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    let policies = cluster.network_policies(NAMESPACE);
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy = &policies[0]["spec"];
    assert_eq!(
        policy["podSelector"]["matchLabels"]["airlock.dev/managed-by"],
        "airlock"
    );
    assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["ingress"], json!([]));
    assert_eq!(policy["egress"], json!([]));

    let id = api
        .submit_ok(&json!({"name": "shape", "image": "python:3.12-slim", "command": ["sh", "-c", "cat \"$AIRLOCK_TASK_INPUT\"; touch /etc/x 2>/dev/null || echo read-only"],
            "tasks": [{"id": "t", "input": {"q": 7}}], "resources": {"cpu": "250m", "memory": "128Mi"}, "timeout": "90s"}))
        .await;
    let run = only_run(&api, &id).await;
    assert_eq!(api.wait_finished(&id, LIMIT).await["status"], "succeeded");
    let counts = log_counts(&api, &run).await;
    assert!(
        counts.contains_key("{\"q\":7}"),
        "the task input reaches the program: {counts:?}"
    );

    let pods = pods_of_run(&cluster, &run);
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(
        airlock_kube_fake::restricted_violations(pod),
        Vec::<String>::new()
    );
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["airlock.dev/evaluation-id"], id.as_str());
    assert_eq!(labels["airlock.dev/attempt"], "1");
    assert!(labels["airlock.dev/team"].is_string());
    let spec = &pod["spec"];
    assert_eq!(spec["runtimeClassName"], "gvisor");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(
        spec["activeDeadlineSeconds"], 150,
        "timeout plus the default margin"
    );
    assert!(spec["securityContext"]["runAsUser"].as_i64() > Some(0));
    assert!(spec["securityContext"]["fsGroup"].as_i64() > Some(0));
    let main = &spec["containers"][0];
    assert_eq!(main["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(main["resources"]["requests"], main["resources"]["limits"]);
    assert_eq!(main["resources"]["limits"]["cpu"], "250m");
    assert_eq!(main["image"], "python:3.12-slim");
    let init = &spec["initContainers"][0];
    assert_eq!(init["image"], kubernetes::WORKER_IMAGE);
    assert_eq!(init["resources"]["requests"], init["resources"]["limits"]);
    for volume in spec["volumes"].as_array().expect("volumes") {
        assert!(volume.get("hostPath").is_none());
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_failures_end_runs_with_reasons_a_researcher_understands() {
    let mut kubelet = kubernetes::kubelet();
    kubelet
        .missing_images
        .insert("registry.test/missing:1".into());
    kubelet
        .pull_delays
        .insert("registry.test/slow:1".into(), Duration::from_secs(5));
    let (cluster, stack, api) = start(
        &[
            ("AIRLOCK_K8S_UNSCHEDULABLE_SECS", "3"),
            ("AIRLOCK_K8S_DEADLINE_MARGIN_SECS", "1"),
        ],
        kubelet,
    )
    .await;
    let pull = api
        .submit_ok(
            &json!({"name": "pull", "image": "registry.test/missing:1", "command": ["true"]}),
        )
        .await;
    let oom = api
        .submit_ok(&json!({"name": "oom", "image": "img", "resources": {"memory": "64Mi"},
            "command": ["sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"]}))
        .await;
    let gpu = api
        .submit_ok(
            &json!({"name": "gpu", "image": "img", "resources": {"gpu": 1}, "command": ["true"]}),
        )
        .await;
    let slow = api
        .submit_ok(&json!({"name": "deadline", "image": "registry.test/slow:1", "timeout": "1s", "command": ["true"]}))
        .await;

    let gpu_run = only_run(&api, &gpu).await;
    api.wait_run_state(&gpu_run, "scheduling", LIMIT).await;
    let waiting = eventually("the scheduler's reason", LIMIT, || async {
        let run = api.get(&format!("/api/v1/runs/{gpu_run}")).await.body;
        let reason = run["reason"].as_str().unwrap_or("").to_owned();
        reason
            .contains("Insufficient nvidia.com/gpu")
            .then_some(reason)
    })
    .await;
    assert!(
        waiting.starts_with("unschedulable: 0/1 nodes are available"),
        "{waiting}"
    );

    let ended = |id: String| {
        let api = &api;
        async move {
            let evaluation = api.wait_finished(&id, LIMIT).await;
            let run = evaluation["runs"][0].clone();
            (
                run["state"].as_str().unwrap_or("").to_owned(),
                run["reason"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let (state, reason) = ended(pull.clone()).await;
    assert_eq!(state, "error");
    assert!(
        reason.contains("registry.test/missing:1") && reason.contains("cannot be pulled"),
        "{reason}"
    );
    let (state, reason) = ended(oom.clone()).await;
    assert_eq!(state, "error");
    assert_eq!(reason, "out of memory: exceeded its memory limit of 64Mi");
    let (state, reason) = ended(gpu.clone()).await;
    assert_eq!(state, "error");
    assert!(
        reason.starts_with("no node could take the pod within 3s: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu"),
        "{reason}"
    );
    let (state, reason) = ended(slow.clone()).await;
    assert_eq!(state, "timed_out");
    assert_eq!(
        reason,
        "exceeded its time limit of 1s (the sandbox's deadline ended it)"
    );

    let pull_run = only_run(&api, &pull).await;
    eventually("the stuck pods to be deleted", LIMIT, || async {
        (pods_of_run(&cluster, &pull_run).is_empty() && pods_of_run(&cluster, &gpu_run).is_empty())
            .then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_watches_and_cut_log_follows_lose_and_repeat_nothing() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    let id = api
        .submit_ok(
            &json!({"name": "chatty", "image": "img", "command": ["sh", "-c", numbered_lines(60)]}),
        )
        .await;
    let run = only_run(&api, &id).await;
    wait_log_line(&api, &run, "line 5").await;
    cluster.cut_log_follows();
    cluster.drop_watches();
    wait_log_line(&api, &run, "line 15").await;
    cluster.compact();
    cluster.drop_watches();
    cluster.cut_log_follows();
    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded");
    let events = api.run_events(&run).await;
    assert_contiguous(&events, 1, "run");
    assert_each_line_once(&log_counts(&api, &run).await, 60);
    let log = stack.log(Service::Orchestrator);
    assert!(
        log.contains("pod log follow ended before the container; resuming"),
        "the follow was cut and resumed"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_replicas_pod_is_adopted_by_a_survivor_without_loss_or_duplicates() {
    let options = StackOptions {
        replicas: vec![(Service::Orchestrator, 2)],
        env: env(&[("AIRLOCK_REPLICA_LEASE_SECS", "3")]),
        ..StackOptions::default()
    };
    let (cluster, mut stack) = kubernetes::start(options, kubernetes::kubelet()).await;
    let api = stack.api(&stack.token("alice", "red", "researcher").await);
    let id = api
        .submit_ok(&json!({"name": "survivor", "image": "img", "command": ["sh", "-c", numbered_lines(60)]}))
        .await;
    let run = only_run(&api, &id).await;
    wait_log_line(&api, &run, "line 5").await;
    let holder = stack.claim_holder().await;
    let victim = stack.replica_named(Service::Orchestrator, 2, &holder);
    let survivor = 1 - victim;
    stack.kill_replica(Service::Orchestrator, victim).await;
    let pods = pods_of_run(&cluster, &run);
    assert_eq!(pods.len(), 1);
    assert_ne!(
        pods[0]["status"]["phase"], "Succeeded",
        "the pod runs on without its orchestrator"
    );

    let finished = api.wait_finished(&id, LIMIT).await;
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(
        finished["runs"][0]["attempt"], 1,
        "the same attempt, not a retry"
    );
    let events = api.run_events(&run).await;
    assert_contiguous(&events, 1, "run");
    assert_each_line_once(&log_counts(&api, &run).await, 60);
    assert_eq!(pods_of_run(&cluster, &run).len(), 1, "no second pod");
    assert!(
        stack
            .replica_log(Service::Orchestrator, survivor)
            .contains("following a sandbox adopted from a lost orchestrator"),
        "the survivor adopted the pod"
    );
    let pool = stack.db.connect().await;
    let released: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_claims WHERE released_at IS NOT NULL AND replica_id <> $1",
    )
    .bind(&holder)
    .fetch_one(&pool)
    .await
    .expect("claims");
    assert_eq!(
        released, 1,
        "the survivor held the claim to the end and released it"
    );
    pool.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_request_finds_the_existing_pod() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    let script = numbered_lines(20);
    let id = api
        .submit_ok(&json!({"name": "once", "image": "img", "command": ["sh", "-c", script]}))
        .await;
    let evaluation = api.evaluation(&id).await;
    let run = only_run(&api, &id).await;
    let duplicate = json!(redelivery_of_first_run(&evaluation, &["sh", "-c", &script]));
    let redeliver = || stack.publish_run_request(&duplicate);
    wait_log_line(&api, &run, "line 2").await;
    redeliver().await;
    assert_eq!(api.wait_finished(&id, LIMIT).await["status"], "succeeded");
    redeliver().await;
    eventually("the late duplicate to be skipped", LIMIT, || async {
        stack
            .log(Service::Orchestrator)
            .contains("redelivered request for a finished run; skipped")
            .then_some(())
    })
    .await;
    assert_eq!(pods_of_run(&cluster, &run).len(), 1, "one pod");
    assert_eq!(cluster.pods_created(), 1, "created once");
    assert_contiguous(&api.run_events(&run).await, 1, "run");
    assert_each_line_once(&log_counts(&api, &run).await, 20);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_deletes_finished_pods_after_retention_and_orphans() {
    let (cluster, stack, api) = start(
        &[
            ("AIRLOCK_K8S_RETENTION_SECS", "2"),
            ("AIRLOCK_K8S_REAPER_INTERVAL_SECS", "1"),
        ],
        kubernetes::kubelet(),
    )
    .await;
    cluster.insert_pod(NAMESPACE, orphan("airlock-orphan-1"));
    let id = api
        .submit_ok(&json!({"name": "quick", "image": "img", "command": ["true"]}))
        .await;
    let run = only_run(&api, &id).await;
    assert_eq!(api.wait_finished(&id, LIMIT).await["status"], "succeeded");
    eventually("the reaper to empty the namespace", LIMIT, || async {
        cluster.pods(NAMESPACE).is_empty().then_some(())
    })
    .await;
    let log = stack.log(Service::Orchestrator);
    assert!(
        log.contains("reaper deleted a pod") && log.contains("orphan") && log.contains("finished"),
        "each deletion is logged"
    );
    let metrics = reqwest::get(format!("{}/metrics", stack.url(Service::Orchestrator)))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("airlock_kubernetes_pods_reaped_total{why=\"orphan\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("airlock_kubernetes_pods_reaped_total{why=\"finished\"} 1"),
        "{metrics}"
    );
    let _ = run;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_run_deletes_its_pod() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    let id = api
        .submit_ok(&json!({"name": "long", "image": "img", "command": ["sleep", "600"]}))
        .await;
    let run = only_run(&api, &id).await;
    api.wait_run_state(&run, "running", LIMIT).await;
    assert_eq!(pods_of_run(&cluster, &run).len(), 1);
    let cancel = api.post(&format!("/api/v1/evaluations/{id}/cancel")).await;
    assert_eq!(cancel.status, 202);
    let cancelled = api.wait_finished(&id, LIMIT).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["runs"][0]["reason"], "cancelled while running");
    assert!(pods_of_run(&cluster, &run).is_empty(), "the pod is deleted");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_orchestrator_is_not_ready_while_the_api_server_is_unreachable() {
    let (cluster, stack, _api) = start(&[], kubernetes::kubelet()).await;
    let ready = |expected: bool| {
        let url = format!("{}/readyz", stack.url(Service::Orchestrator));
        async move {
            eventually(&format!("readiness {expected}"), LIMIT, || {
                let url = url.clone();
                async move {
                    let status = reqwest::get(&url).await.ok()?.status();
                    (status.is_success() == expected).then_some(())
                }
            })
            .await
        }
    };
    cluster.set_available(false);
    ready(false).await;
    cluster.set_available(true);
    ready(true).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_the_api_server_refuses_is_a_clear_run_error() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    let big = "x".repeat(300 * 1024);
    let id = api
        .submit_ok(
            &json!({"name": "too big", "image": "img", "command": ["true"],
            "tasks": [{"id": "t", "input": {"blob": big}}]}),
        )
        .await;
    let finished = api.wait_finished(&id, LIMIT).await;
    let run = &finished["runs"][0];
    assert_eq!(run["state"], "error");
    let reason = run["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("Kubernetes refused the pod (422 Invalid)")
            && reason.contains("annotations: Too long"),
        "{reason}"
    );
    assert_eq!(run["attempt"], 1, "not retried");
    assert_eq!(cluster.pods_created(), 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evicted_pod_is_retried_as_a_new_attempt() {
    let (cluster, stack, api) = start(&[], kubernetes::kubelet()).await;
    // Outside every volume of the pod, so the fake kubelet leaves the path as it is.
    let marker = format!("/var/tmp/airlock-evicted-{}", RunId::new());
    let script = format!("echo waiting; while [ ! -e {marker} ]; do sleep 0.1; done; echo done");
    let id = api
        .submit_ok(&json!({"name": "evicted", "image": "img", "command": ["sh", "-c", script]}))
        .await;
    let run = only_run(&api, &id).await;
    wait_log_line(&api, &run, "waiting").await;
    let first = pods_of_run(&cluster, &run);
    assert_eq!(first.len(), 1);
    let first_name = first[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    cluster.evict(
        NAMESPACE,
        &first_name,
        "The node was low on resource: memory.",
    );
    // The retry passes through `scheduling` for about a second: read it from the run's
    // stream, which keeps every state, rather than catching the run in it.
    let retrying = eventually("the retry's scheduling status", LIMIT, || async {
        api.run_events(&run)
            .await
            .into_iter()
            .find(|e| e["type"] == "status" && e["state"] == "scheduling" && e["attempt"] == 2)
    })
    .await;
    assert!(
        retrying["reason"].as_str().is_some_and(|r| r
            .contains("the pod was evicted from its node: The node was low on resource: memory.")),
        "{retrying}"
    );
    std::fs::write(&marker, "").expect("marker");
    let finished = api.wait_finished(&id, LIMIT).await;
    let _ = std::fs::remove_file(&marker);
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["runs"][0]["attempt"], 2);
    let names: Vec<String> = pods_of_run(&cluster, &run)
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert!(names.iter().any(|n| n.ends_with("-2")), "{names:?}");
    stack.stop().await;
}
