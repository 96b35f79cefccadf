//! The Kubernetes runtime through the sandbox runtime seam, with the real kube client
//! against a real kube-apiserver (Pod Security `restricted` enforced, the test playing
//! the kubelet) and against the fake API server: creation is idempotent (AlreadyExists
//! is the existing pod), the pod is listed by its labels, its output is the worker's
//! stream read through pods/log, its end is seen by the watcher, and a stopped pod
//! reports `stopped` and is gone.

use airlock_core::event::{EventBody, WorkerEvent};
use airlock_core::spec::Resources;
use airlock_core::{EvaluationId, RunId, TeamId};
use airlock_orchestrator::runtime::kubernetes::KubernetesRuntime;
use airlock_orchestrator::runtime::kubernetes::config::KubernetesConfig;
use airlock_orchestrator::runtime::{Created, SandboxRequest, SandboxRuntime};
use airlock_test_support::eventually;
use airlock_test_support::kubernetes::{self, FakeCluster, NAMESPACE, RealCluster, WORKER_IMAGE};
use clap::Parser;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kubernetes: KubernetesConfig,
}

async fn runtime(client: kube::Client, namespace: &str) -> Arc<KubernetesRuntime> {
    let config = Cli::parse_from([
        "test",
        "--k8s-namespace",
        namespace,
        "--k8s-worker-image",
        WORKER_IMAGE,
    ])
    .kubernetes;
    KubernetesRuntime::with_client(client, &config, CancellationToken::new())
        .await
        .expect("runtime")
}

fn fake_client(cluster: &FakeCluster) -> kube::Client {
    let url = cluster.url().parse().expect("url");
    kube::Client::try_from(kube::Config::new(url)).expect("client")
}

/// The real API server's cluster, or `None` (and a note) where this machine has none.
async fn real_cluster() -> Option<RealCluster> {
    let cluster = RealCluster::start(kubernetes::kubelet()).await;
    if cluster.is_none() {
        eprintln!("skipped: no kube-apiserver here (set KUBEBUILDER_ASSETS; see crates/kube-fake)");
    }
    cluster
}

fn request(script: &str) -> SandboxRequest {
    SandboxRequest {
        run_id: RunId::new(),
        evaluation_id: EvaluationId::new(),
        team_id: TeamId::new(),
        attempt: 1,
        task_id: "t".into(),
        epoch: 1,
        image: "img".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: BTreeMap::new(),
        resources: Resources::default(),
        timeout_secs: 60,
        input: serde_json::json!({"n": 1}),
        worker_env: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_real_api_server_creation_is_idempotent_and_a_pod_is_followed_to_its_end() {
    let Some(cluster) = real_cluster().await else {
        return;
    };
    let runtime = runtime(cluster.client(), cluster.namespace()).await;
    followed_to_its_end(&runtime, || cluster.pods_created()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_fake_api_server_creation_is_idempotent_and_a_pod_is_followed_to_its_end() {
    let cluster = FakeCluster::start(kubernetes::kubelet()).await;
    let runtime = runtime(fake_client(&cluster), NAMESPACE).await;
    followed_to_its_end(&runtime, || cluster.pods_created()).await;
}

async fn followed_to_its_end(runtime: &KubernetesRuntime, pods_created: impl Fn() -> u64) {
    let request = request("echo hello; exit 3");
    let name = request.sandbox_name();
    assert_eq!(
        runtime.create(&request).await.expect("create"),
        Created::New
    );
    assert_eq!(
        runtime.create(&request).await.expect("create again"),
        Created::Existing,
        "AlreadyExists is the pod that exists"
    );
    // The kubelet (and the runtime's list, the watcher's cache) see the create shortly.
    eventually(
        "the pod at the kubelet",
        Duration::from_secs(30),
        || async { (pods_created() >= 1).then_some(()) },
    )
    .await;
    assert_eq!(pods_created(), 1, "one pod");
    eventually("the pod in the list", Duration::from_secs(30), || async {
        let listed = runtime.list().await.expect("list");
        listed
            .iter()
            .any(|s| {
                s.name == name
                    && s.run_id == request.run_id
                    && s.team_id == request.team_id
                    && s.attempt == 1
            })
            .then_some(())
    })
    .await;

    let mut lines = runtime.output(&name).await.expect("output").lines();
    let mut events = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        events.push(serde_json::from_str::<WorkerEvent>(&line).expect("event"));
    }
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.body, EventBody::Log { message, .. } if message == "hello"))
    );
    assert!(matches!(
        events.last().map(|e| &e.body),
        Some(EventBody::Exit { code: Some(3), .. })
    ));
    let exit = runtime.wait(&name).await.expect("wait");
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.failure, None);
    assert!(!exit.stopped);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_real_api_server_a_stopped_pod_is_deleted_and_reports_stopped() {
    let Some(cluster) = real_cluster().await else {
        return;
    };
    let runtime = runtime(cluster.client(), cluster.namespace()).await;
    let name = stopped(&runtime).await;
    eventually("the pod to be gone", Duration::from_secs(30), || async {
        cluster.pod(&name).is_none().then_some(())
    })
    .await;
    runtime.remove(&name).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_fake_api_server_a_stopped_pod_is_deleted_and_reports_stopped() {
    let cluster = FakeCluster::start(kubernetes::kubelet()).await;
    let runtime = runtime(fake_client(&cluster), NAMESPACE).await;
    let name = stopped(&runtime).await;
    assert!(cluster.pod(NAMESPACE, &name).is_none());
    runtime.remove(&name).await.expect("remove");
}

/// Stops a running pod; returns its name once `wait` said it was stopped.
async fn stopped(runtime: &KubernetesRuntime) -> String {
    let request = request("sleep 600");
    let name = request.sandbox_name();
    runtime.create(&request).await.expect("create");
    let output = runtime.output(&name).await.expect("started");
    runtime.stop(&name).await.expect("stop");
    let exit = runtime.wait(&name).await.expect("wait");
    assert!(exit.stopped, "{exit:?}");
    drop(output);
    name
}
