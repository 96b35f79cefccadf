//! The fake cluster's kubelet serving a real API server ([`crate::envtest`]) instead of
//! the fake one: each [`RealCluster`] is a namespace (Pod Security `restricted`, with its
//! `default` service account) and a Node of its own, whose kubelet is the one of
//! [`crate::kubelet`]. It keeps a mirror of the namespace's pods from a watch (new pods,
//! deletion requests, deletions) and writes back what the kubelet decides: the binding to
//! its node (pods/binding), the status (the status subresource; the kubelet owns it, so
//! the mirror's status is never overwritten from the watch), and, once a pod being
//! deleted has stopped, its final deletion with grace period 0. Container logs are served
//! where the API server asks for them: `/containerLogs/...` on the Node's kubelet port,
//! over TLS with a certificate of the API server's CA.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::envtest::ApiServer;
use crate::logs::Logs;
use crate::store::{Resource, Store};
use crate::{ClusterState, KubeletOptions, kubelet, kubelet_logs};

/// What the kubelet writes back to a real API server.
pub(crate) struct Remote {
    client: kube::Client,
    namespace: String,
    node: String,
    /// Per pod, the signal that its mirror changed.
    writers: Mutex<HashMap<String, Arc<Notify>>>,
    /// When each pod's `Running` phase was sent to the API server (which accepted it),
    /// by pod name.
    running_at: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Remote {
    /// The node this kubelet is.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The kubelet changed the pod in the mirror: write it back (coalesced per pod).
    pub(crate) fn changed(self: &Arc<Self>, state: &Arc<ClusterState>, name: &str) {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = writers.get(name) {
            notify.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        writers.insert(name.to_owned(), notify.clone());
        tokio::spawn(write_back(
            self.clone(),
            state.clone(),
            name.to_owned(),
            notify,
        ));
    }

    /// A pod being deleted has stopped: delete it for good.
    pub(crate) async fn finalize(&self, name: &str) {
        let _ = self
            .pods()
            .delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await;
    }
}

/// Writes the mirror's binding and status of one pod each time it changes, until the
/// pod is gone.
async fn write_back(
    remote: Arc<Remote>,
    state: Arc<ClusterState>,
    name: String,
    notify: Arc<Notify>,
) {
    let pods = remote.pods();
    let mut bound = false;
    loop {
        notify.notified().await;
        let Some(pod) = state.store.get(Resource::Pods, &remote.namespace, &name) else {
            break;
        };
        if !bound && pod["spec"]["nodeName"].is_string() {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": remote.node},
            });
            match pods
                .create_subresource::<Value, Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => bound = true,
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(error) => eprintln!("kubelet: binding {name}: {error}"),
            }
        }
        let patch = Patch::Merge(json!({"status": pod["status"]}));
        let sent_at = chrono::Utc::now();
        match pods
            .patch_status(&name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                if pod["status"]["phase"] == "Running" {
                    remote
                        .running_at
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(name.clone())
                        .or_insert(sent_at);
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => break,
            Err(error) => eprintln!("kubelet: status of {name}: {error}"),
        }
    }
    remote
        .writers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&name);
}

/// A namespace and a node of the shared real API server, with a kubelet. Dropping it
/// stops the kubelet and kills the processes it started; the namespace is left.
pub struct RealCluster {
    server: &'static ApiServer,
    client: kube::Client,
    namespace: String,
    state: Arc<ClusterState>,
    remote: Arc<Remote>,
    tasks: Vec<JoinHandle<()>>,
}

impl RealCluster {
    /// `None` when this machine has no API server assets (see [`crate::envtest`]).
    pub async fn start(options: KubeletOptions) -> Option<Self> {
        let server = ApiServer::shared()?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let namespace = format!("airlock-runs-{suffix}");
        let node = format!("node-{suffix}");
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig(&namespace))
            .expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(config).expect("client");

        let logs = Arc::new(Logs::default());
        let (log_port, log_server) = kubelet_logs::serve(server, logs.clone()).await;
        setup(&client, &namespace, &node, log_port).await;

        let remote = Arc::new(Remote {
            client: client.clone(),
            namespace: namespace.clone(),
            node,
            writers: Mutex::default(),
            running_at: Mutex::default(),
        });
        let state = Arc::new(ClusterState {
            store: Store::new(),
            logs,
            processes: kubelet::Processes::default(),
            remote: Some(remote.clone()),
        });
        let mirror = tokio::spawn(mirror(state.clone(), remote.clone()));
        let kubelet = tokio::spawn(kubelet::run(state.clone(), options));
        Some(Self {
            server,
            client,
            namespace,
            state,
            remote,
            tasks: vec![log_server, mirror, kubelet],
        })
    }

    /// The namespace to run pods in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The node its kubelet binds pods to.
    pub fn node(&self) -> &str {
        self.remote.node()
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A client of the API server as `system:masters`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Writes a kubeconfig for this cluster's namespace into `dir`.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig.yaml");
        std::fs::create_dir_all(dir).expect("kubeconfig dir");
        std::fs::write(&path, self.server.kubeconfig(&self.namespace)).expect("write kubeconfig");
        path
    }

    /// The pod as the kubelet last saw it.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.state.store.get(Resource::Pods, &self.namespace, name)
    }

    /// Pods the kubelet has seen created in this namespace.
    pub fn pods_created(&self) -> u64 {
        self.state.store.created(Resource::Pods)
    }

    /// When the kubelet first saw each pod, by name.
    pub fn creation_times(&self) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
        self.state.store.creation_times(Resource::Pods)
    }

    /// A count, usable from any task, of the pods whose containers run now (phase
    /// `Running` as the kubelet set it).
    pub fn live_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let (state, namespace) = (self.state.clone(), self.namespace.clone());
        move || {
            state
                .store
                .list(Resource::Pods, &namespace)
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
        }
    }

    /// When each pod's `Running` phase was sent to the API server, by name.
    pub fn running_times(&self) -> HashMap<String, chrono::DateTime<chrono::Utc>> {
        self.remote
            .running_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.state.processes.kill_all();
    }
}

/// The runtime class the platform's pods ask for (as a cluster with gVisor has it).
pub const RUNTIME_CLASS: &str = "gvisor";

/// The namespace (restricted), its default service account, the node and the runtime
/// class.
async fn setup(client: &kube::Client, namespace: &str, node: &str, log_port: u16) {
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let class: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": RUNTIME_CLASS}, "handler": "runsc"}))
            .expect("runtime class");
    match classes.create(&PostParams::default(), &class).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("create the runtime class: {error}"),
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("account");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create the default service account");
    let nodes: Api<Node> = Api::all(client.clone());
    let object: Node = serde_json::from_value(json!({"metadata": {"name": node}})).expect("node");
    nodes
        .create(&PostParams::default(), &object)
        .await
        .expect("create the node");
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "the test kubelet is ready"}],
    }});
    nodes
        .patch_status(node, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("node status");
}

/// Mirrors the namespace's pods: new pods as they are, deletion requests and deletions;
/// never the status, which the kubelet owns. A pod asked to be deleted that no container
/// of this kubelet runs any more is deleted for good at once.
async fn mirror(state: Arc<ClusterState>, remote: Arc<Remote>) {
    let mut events = watcher(remote.pods(), watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let pods = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => vec![pod],
            Ok(watcher::Event::Delete(pod)) => {
                let name = pod.metadata.name.unwrap_or_default();
                state.store.delete(Resource::Pods, &remote.namespace, &name);
                continue;
            }
            Ok(_) => continue,
            Err(error) => {
                eprintln!("kubelet: watching pods: {error}");
                continue;
            }
        };
        for pod in pods {
            let Ok(object) = serde_json::to_value(&pod) else {
                continue;
            };
            let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let deleting = object["metadata"]["deletionTimestamp"].is_string();
            state
                .store
                .mirror(Resource::Pods, &remote.namespace, object, |current, new| {
                    current["metadata"] = new["metadata"].clone();
                });
            if deleting {
                let stopped = state
                    .store
                    .get(Resource::Pods, &remote.namespace, &name)
                    .is_some_and(|p| {
                        p["spec"]["nodeName"].is_null()
                            || matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                    });
                if stopped {
                    remote.finalize(&name).await;
                }
            }
        }
    }
}
