//! Kubernetes for tests. [`RealCluster`] is a namespace and a node of a real
//! kube-apiserver ([`envtest`]) whose kubelet runs pods on this machine; the rest of this
//! crate is a fake cluster, kept for faults a real API server cannot be made to show
//! (an API server that goes away, watches cut, history compacted, evictions): an API
//! server speaking the real HTTP API (pods and networkpolicies: create, get, list with label selectors, watch with resourceVersion semantics including 410
//! Gone, delete, the pod status subresource and pods/log with follow), an admission
//! check of the Pod Security Standards "restricted" profile, and a kubelet loop that
//! advances pods Pending -> Running -> Succeeded/Failed by running their containers'
//! commands on this machine.
//!
//! Objects are kept as JSON, as the API server sees them; only the kubelet reads pods
//! field by field.

mod admission;
mod api;
pub mod envtest;
mod kubelet;
mod kubelet_logs;
mod logs;
mod quantity;
mod real;
mod selector;
mod store;

pub use admission::restricted_violations;
pub use kubelet::KubeletOptions;
pub use real::RealCluster;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::logs::Logs;
use crate::store::{Resource, Store};

/// A running fake cluster. Dropping it stops the server and the kubelet.
pub struct FakeCluster {
    url: String,
    state: Arc<ClusterState>,
    server: tokio::task::JoinHandle<()>,
    kubelet: tokio::task::JoinHandle<()>,
}

pub(crate) struct ClusterState {
    pub store: Store,
    pub logs: Arc<Logs>,
    pub processes: kubelet::Processes,
    /// Set when the kubelet serves a real API server: where its writes go.
    pub remote: Option<Arc<real::Remote>>,
}

impl FakeCluster {
    /// Starts the API server on a free port of 127.0.0.1 and the kubelet.
    pub async fn start(options: KubeletOptions) -> Self {
        let state = Arc::new(ClusterState {
            store: Store::new(),
            logs: Arc::new(Logs::default()),
            processes: kubelet::Processes::default(),
            remote: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let router = api::router(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let kubelet = tokio::spawn(kubelet::run(state.clone(), options));
        Self {
            url,
            state,
            server,
            kubelet,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes a kubeconfig for this cluster (default namespace `namespace`) into `dir`.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig.yaml");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n\
             current-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.url
        );
        std::fs::create_dir_all(dir).expect("kubeconfig dir");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Every pod of `namespace`, as stored.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.state.store.list(Resource::Pods, namespace)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state.store.get(Resource::Pods, namespace, name)
    }

    pub fn network_policies(&self, namespace: &str) -> Vec<Value> {
        self.state.store.list(Resource::NetworkPolicies, namespace)
    }

    /// Stores a pod directly, bypassing admission (as another controller might have).
    pub fn insert_pod(&self, namespace: &str, pod: Value) {
        self.state
            .store
            .create(Resource::Pods, namespace, pod)
            .expect("insert pod");
    }

    /// Deletes a pod, as another client of the API server might.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state.store.delete(Resource::Pods, namespace, name)
    }

    /// Evicts a pod as a node under pressure would: its processes are killed, it fails
    /// with reason `Evicted`.
    pub fn evict(&self, namespace: &str, name: &str, message: &str) {
        self.state
            .store
            .update(Resource::Pods, namespace, name, |pod| {
                pod["status"]["phase"] = serde_json::json!("Failed");
                pod["status"]["reason"] = serde_json::json!("Evicted");
                pod["status"]["message"] = serde_json::json!(message);
            });
    }

    /// Ends every open watch connection; clients must re-watch from their last version.
    pub fn drop_watches(&self) {
        self.state.store.drop_watches();
    }

    /// Forgets the change history: a watch from any earlier resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.state.store.compact();
    }

    /// Ends every open log follow, as a log rotation or a broken connection would.
    pub fn cut_log_follows(&self) {
        self.state.logs.cut_follows();
    }

    /// How many pod creations the API server has accepted.
    pub fn pods_created(&self) -> u64 {
        self.state.store.created(Resource::Pods)
    }

    /// When each pod was created, by name.
    pub fn creation_times(&self) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
        self.state.store.creation_times(Resource::Pods)
    }

    /// Whether the API server answers; `false` makes every request fail with 503 until
    /// set back.
    pub fn set_available(&self, available: bool) {
        self.state.store.set_available(available);
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.server.abort();
        self.kubelet.abort();
        self.state.processes.kill_all();
    }
}
