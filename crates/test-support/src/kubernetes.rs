//! The platform with the Kubernetes runtime, against a real kube-apiserver
//! ([`RealCluster`]) or the fake cluster ([`FakeCluster`], for faults a real one cannot
//! show): the orchestrator's real kube client talks to the API server, whose kubelet runs
//! every pod's containers on this machine (the worker image's `/airlock-worker` is the
//! built worker).

pub use airlock_kube_fake::{FakeCluster, KubeletOptions, RealCluster};

use crate::stack::{Service, Stack, StackOptions};

/// The namespace the orchestrator runs pods in.
pub const NAMESPACE: &str = "airlock-runs";
/// The worker image the orchestrator puts in the pods' init container.
pub const WORKER_IMAGE: &str = "registry.test/airlock-worker:test";

/// A node that runs pods with the built worker standing in for the worker image.
pub fn kubelet() -> KubeletOptions {
    KubeletOptions {
        image_files: vec![(
            WORKER_IMAGE.to_owned(),
            "/airlock-worker".to_owned(),
            crate::binary("airlock-worker"),
        )],
        ..KubeletOptions::default()
    }
}

/// The orchestrator's environment for `cluster` (kubeconfig written into `dir`).
pub fn orchestrator_env(
    cluster: &FakeCluster,
    dir: &std::path::Path,
) -> Vec<(Service, String, String)> {
    runtime_env(&cluster.write_kubeconfig(dir, NAMESPACE), NAMESPACE)
}

/// The orchestrator's environment for a namespace of the real API server.
pub fn real_orchestrator_env(
    cluster: &RealCluster,
    dir: &std::path::Path,
) -> Vec<(Service, String, String)> {
    runtime_env(&cluster.write_kubeconfig(dir), cluster.namespace())
}

fn runtime_env(kubeconfig: &std::path::Path, namespace: &str) -> Vec<(Service, String, String)> {
    [
        ("AIRLOCK_RUNTIME", "kubernetes".to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("AIRLOCK_K8S_NAMESPACE", namespace.to_owned()),
        ("AIRLOCK_K8S_WORKER_IMAGE", WORKER_IMAGE.to_owned()),
        ("AIRLOCK_K8S_RUNTIME_CLASS", "gvisor".to_owned()),
        ("AIRLOCK_K8S_DELETE_GRACE_SECS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (Service::Orchestrator, k.to_owned(), v))
    .collect()
}

/// Starts the platform on a namespace of the real API server; `None` (with a note on
/// stderr) where this machine has no API server.
pub async fn start_real(
    mut options: StackOptions,
    kubelet: KubeletOptions,
) -> Option<(RealCluster, Stack)> {
    let Some(cluster) = RealCluster::start(kubelet).await else {
        eprintln!("skipped: no kube-apiserver here (set KUBEBUILDER_ASSETS; see crates/kube-fake)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("airlock-kube-{}", uuid::Uuid::new_v4().simple()));
    let mut env = real_orchestrator_env(&cluster, &dir);
    env.append(&mut options.env);
    options.env = env;
    let stack = Stack::start(options).await;
    Some((cluster, stack))
}

/// Starts a fake cluster and the platform on it. Settings in `options.env` come after
/// the defaults, so a test can override any of them.
pub async fn start(mut options: StackOptions, kubelet: KubeletOptions) -> (FakeCluster, Stack) {
    let cluster = FakeCluster::start(kubelet).await;
    let dir = std::env::temp_dir().join(format!("airlock-kube-{}", uuid::Uuid::new_v4().simple()));
    let mut env = orchestrator_env(&cluster, &dir);
    env.append(&mut options.env);
    options.env = env;
    let stack = Stack::start(options).await;
    (cluster, stack)
}
