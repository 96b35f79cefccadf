//! The Kubernetes runtime: every attempt runs as a hardened pod (see [`pod`]) in the
//! evaluation namespace, behind a deny-all NetworkPolicy ([`network_policy`]). One
//! watcher ([`cache`]) drives everything the runtime knows of pods; their states map to
//! run states and reasons in [`phase`]; the worker's event stream is read with the log
//! follow API ([`logs`]); the [`reaper`] deletes finished and orphaned pods. Pods outlive
//! the orchestrator: the replica that takes over a lost one's claims follows them.

pub mod cache;
pub mod config;
pub mod error;
pub mod logs;
pub mod network_policy;
pub mod phase;
pub mod pod;
pub mod reaper;

use airlock_core::{EvaluationId, RunId, TeamId};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use self::cache::PodCache;
use self::config::KubernetesConfig;
use self::error::{Backoff, KubeError, retrying};
use self::phase::{PodView, main_status, view};
use self::pod::PodTemplate;
use super::{
    BoxFuture, Created, OutputStream, Placement, RuntimeError, SandboxExit, SandboxFailure,
    SandboxInfo, SandboxRequest, SandboxRuntime,
};

/// How long the first list of pods may take at start-up.
const FIRST_LIST: Duration = Duration::from_secs(60);
/// How long the readiness check waits for the API server.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a pod missing from the cache is looked up directly (the cache may lag).
const RECHECK: Duration = Duration::from_secs(1);

pub struct KubernetesRuntime {
    pods: Api<Pod>,
    template: PodTemplate,
    cache: PodCache,
    retention: Duration,
    unschedulable_limit: Duration,
    delete_grace: u32,
    /// Pods deleted by `stop`.
    stopping: Mutex<HashSet<String>>,
    /// Pods deleted because they could not start, and why.
    failures: Mutex<HashMap<String, SandboxFailure>>,
    creates: Semaphore,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed(error.to_string())
}

impl KubernetesRuntime {
    /// Connects with the usual kubeconfig / in-cluster discovery, ensures the deny-all
    /// NetworkPolicy (refusing to start without it), starts the pod watcher and the
    /// reaper.
    pub async fn connect(
        config: &KubernetesConfig,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, RuntimeError> {
        let mut kube_config = kube::Config::infer().await.map_err(|e| {
            failed(format!(
                "no Kubernetes cluster configured (kubeconfig or in-cluster): {e}"
            ))
        })?;
        // Retries are ours (bounded, with jitter): the client's own would hide an
        // unreachable API server from readiness for many minutes.
        kube_config.default_retry = false;
        let client = kube::Client::try_from(kube_config)
            .map_err(|e| failed(format!("cannot make a Kubernetes client: {e}")))?;
        Self::with_client(client, config, stop).await
    }

    /// As [`Self::connect`], with a client made elsewhere.
    pub async fn with_client(
        client: kube::Client,
        config: &KubernetesConfig,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, RuntimeError> {
        let template = PodTemplate::from_config(config).map_err(RuntimeError::Failed)?;
        let namespace = config.namespace.clone();
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
        network_policy::ensure(&policies, &namespace).await.map_err(|e| {
            failed(format!(
                "refusing to run evaluations: the deny-all NetworkPolicy of namespace {namespace} cannot be ensured: {e}"
            ))
        })?;
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let cache = PodCache::start(pods.clone(), namespace.clone(), stop.child_token());
        tokio::time::timeout(FIRST_LIST, cache.ready())
            .await
            .map_err(|_| {
                failed(format!(
                    "the pods of namespace {namespace} could not be listed within {FIRST_LIST:?}"
                ))
            })?;
        let runtime = Arc::new(Self {
            pods,
            template,
            cache,
            retention: config.retention(),
            unschedulable_limit: config.unschedulable_limit(),
            delete_grace: u32::try_from(config.delete_grace_secs.max(0)).unwrap_or(0),
            stopping: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
            creates: Semaphore::new(config.max_concurrent_creates.max(1)),
        });
        tracing::info!(namespace, "Kubernetes runtime ready");
        Ok(runtime)
    }

    /// Deletes a pod with the configured grace period; a pod already gone is fine.
    async fn delete_pod(&self, name: &str) -> Result<(), KubeError> {
        let params = DeleteParams {
            grace_period_seconds: Some(self.delete_grace),
            ..DeleteParams::default()
        };
        match retrying("delete pod", Backoff::API, || {
            self.pods.delete(name, &params)
        })
        .await
        {
            Ok(_) | Err(KubeError::Refused { code: 404, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Whether the API confirms the pod does not exist (the cache may lag behind a
    /// create, or a restart).
    async fn confirmed_gone(&self, name: &str) -> bool {
        matches!(self.pods.get_opt(name).await, Ok(None))
    }

    /// Waits until `decide` maps the pod (or, once its absence is confirmed, `None`) to
    /// an answer.
    async fn watch_pod<T>(
        &self,
        name: &str,
        mut decide: impl FnMut(Option<&Pod>) -> Option<T>,
    ) -> T {
        let mut changes = self.cache.changes_of(name);
        loop {
            let answer = match self.cache.get(name) {
                Some(pod) => decide(Some(&pod)),
                None if self.confirmed_gone(name).await => decide(None),
                None => None,
            };
            if let Some(answer) = answer {
                return answer;
            }
            tokio::select! {
                () = changes.changed() => {}
                () = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    /// Ends an attempt that cannot start: the pod goes, `wait` reports why.
    async fn give_up(&self, name: &str, reason: String) {
        tracing::warn!(pod = %name, reason, "giving up on a pod that cannot start");
        lock(&self.failures).insert(
            name.to_owned(),
            SandboxFailure {
                reason,
                retryable: false,
            },
        );
        if let Err(error) = self.delete_pod(name).await {
            tracing::warn!(pod = %name, %error, "cannot delete the pod given up on");
        }
    }

    async fn place(&self, name: &str, progress: mpsc::UnboundedSender<Placement>) {
        let limit = self.unschedulable_limit;
        let mut starting = false;
        let mut last: Option<Placement> = None;
        let mut report = |placement: Placement| {
            if last.as_ref() != Some(&placement) {
                let _ = progress.send(placement.clone());
                last = Some(placement);
            }
        };
        let give_up = self
            .watch_pod(name, |pod| {
                // A pod that is gone has nothing more to report.
                let Some(pod) = pod else { return Some(None) };
                match view(pod) {
                    PodView::Pending if !starting => {
                        report(Placement::Scheduling(
                            "waiting for the Kubernetes scheduler".into(),
                        ));
                        None
                    }
                    PodView::Unschedulable { message, since } if !starting => {
                        let waited = since.map_or(Duration::ZERO, |s| {
                            Timestamp::now().duration_since(s).unsigned_abs()
                        });
                        if waited >= limit {
                            return Some(Some(format!(
                                "no node could take the pod within {}s: {message}",
                                limit.as_secs()
                            )));
                        }
                        report(Placement::Scheduling(format!("unschedulable: {message}")));
                        None
                    }
                    PodView::Starting { reason } => {
                        if !starting {
                            starting = true;
                            report(Placement::Starting(reason));
                        }
                        None
                    }
                    PodView::Stuck(reason) => Some(Some(reason)),
                    PodView::Pending | PodView::Unschedulable { .. } => None,
                    PodView::Running | PodView::Ended(_) => Some(None),
                }
            })
            .await;
        if let Some(reason) = give_up {
            self.give_up(name, reason).await;
        } else if !starting {
            let _ = progress.send(Placement::Starting(None));
        }
    }

    async fn open_output(&self, name: &str) -> Result<OutputStream, RuntimeError> {
        let started = self
            .watch_pod(name, |pod| {
                let Some(pod) = pod else { return Some(false) };
                let started = main_status(pod)
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| {
                        s.running.is_some()
                            || s.terminated
                                .as_ref()
                                .is_some_and(|t| t.started_at.is_some())
                    });
                match view(pod) {
                    PodView::Running => Some(true),
                    PodView::Ended(_) => Some(started),
                    _ => None,
                }
            })
            .await
            .then_some(())
            .ok_or_else(|| failed(format!("pod {name} ended before its program started")));
        // A pod that vanished or never started has no output.
        match started {
            Ok(()) => Ok(logs::follow(
                self.pods.clone(),
                self.cache.clone(),
                name.to_owned(),
            )),
            Err(error) => Err(error),
        }
    }

    async fn wait_end(&self, name: &str) -> SandboxExit {
        self.watch_pod(name, |pod| match pod {
            Some(pod) => match view(pod) {
                PodView::Ended(mut exit) => {
                    exit.stopped = lock(&self.stopping).contains(name);
                    Some(exit)
                }
                _ => None,
            },
            None => Some(self.vanished(name)),
        })
        .await
    }

    fn vanished(&self, name: &str) -> SandboxExit {
        let stopped = lock(&self.stopping).contains(name);
        let failure = if stopped {
            None
        } else {
            Some(lock(&self.failures).remove(name).unwrap_or_else(|| {
                SandboxFailure {
                    reason:
                        "the pod disappeared: it was deleted outside Airlock or its node was lost"
                            .into(),
                    retryable: false,
                }
            }))
        };
        SandboxExit {
            code: None,
            signal: None,
            oom_killed: false,
            stopped,
            deadline_exceeded: false,
            failure,
        }
    }

    async fn create_pod(&self, request: &SandboxRequest) -> Result<Created, RuntimeError> {
        check_request(request)?;
        let name = request.sandbox_name();
        let pod = pod::build(&self.template, request, &name);
        // The slot is held until the API server has the pod, not until it runs.
        let _slot = self.creates.acquire().await.map_err(failed)?;
        let params = PostParams::default();
        let created = retrying("create pod", Backoff::API, || {
            self.pods.create(&params, &pod)
        })
        .await;
        match created {
            Ok(_) => Ok(Created::New),
            Err(KubeError::Refused {
                code: 409, reason, ..
            }) if reason == "AlreadyExists" => Ok(Created::Existing),
            Err(KubeError::Refused {
                code,
                reason,
                message,
            }) => Err(RuntimeError::Refused(format!(
                "Kubernetes refused the pod ({code} {reason}): {message}"
            ))),
            Err(error) => Err(failed(error)),
        }
    }

    async fn remove_pod(&self, name: &str) -> Result<(), RuntimeError> {
        lock(&self.stopping).remove(name);
        lock(&self.failures).remove(name);
        // Finished pods stay for the reaper's retention; anything else goes now.
        let finished = self
            .cache
            .get(name)
            .is_none_or(|p| matches!(view(&p), PodView::Ended(_)));
        if !finished {
            self.delete_pod(name).await.map_err(failed)?;
        }
        Ok(())
    }

    fn list_pods(&self) -> Vec<SandboxInfo> {
        self.cache
            .all()
            .iter()
            .filter_map(|pod| {
                let labels = pod.metadata.labels.as_ref()?;
                let label = |key: &str| labels.get(key).map(String::as_str);
                Some(SandboxInfo {
                    name: pod.metadata.name.clone()?,
                    run_id: RunId::parse(label(pod::RUN_ID)?)?,
                    evaluation_id: EvaluationId::parse(label(pod::EVALUATION_ID)?)?,
                    team_id: TeamId::parse(label(pod::TEAM)?)?,
                    attempt: label(pod::ATTEMPT)?.parse().ok()?,
                    alive: !matches!(view(pod), PodView::Ended(_))
                        && pod.metadata.deletion_timestamp.is_none(),
                })
            })
            .collect()
    }
}

/// Refuses what no pod can run.
fn check_request(request: &SandboxRequest) -> Result<(), RuntimeError> {
    if request.command.is_empty() {
        return Err(RuntimeError::Refused("the command is empty".into()));
    }
    for name in request.env.keys() {
        if name.starts_with("AIRLOCK_") {
            return Err(RuntimeError::Refused(format!(
                "environment variable {name} is reserved (AIRLOCK_ prefix)"
            )));
        }
    }
    Ok(())
}

impl SandboxRuntime for KubernetesRuntime {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn create<'a>(
        &'a self,
        request: &'a SandboxRequest,
    ) -> BoxFuture<'a, Result<Created, RuntimeError>> {
        Box::pin(self.create_pod(request))
    }

    fn output<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<OutputStream, RuntimeError>> {
        Box::pin(self.open_output(name))
    }

    fn wait<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SandboxExit, RuntimeError>> {
        Box::pin(async move { Ok(self.wait_end(name).await) })
    }

    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            lock(&self.stopping).insert(name.to_owned());
            self.delete_pod(name).await.map_err(failed)
        })
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.remove_pod(name))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>> {
        Box::pin(async move { Ok(self.list_pods()) })
    }

    fn until_started<'a>(
        &'a self,
        name: &'a str,
        progress: mpsc::UnboundedSender<Placement>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.place(name, progress))
    }

    fn survives_restart(&self) -> bool {
        true
    }

    fn reap<'a>(&'a self, claimed: &'a HashSet<String>) -> BoxFuture<'a, ()> {
        Box::pin(reaper::sweep(self, claimed))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        Box::pin(async move {
            let params = ListParams::default().limit(1);
            let list = self.pods.list_metadata(&params);
            match tokio::time::timeout(HEALTH_TIMEOUT, list).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(failed(KubeError::from(error))),
                Err(_) => Err(failed(format!(
                    "the Kubernetes API did not answer within {HEALTH_TIMEOUT:?}"
                ))),
            }
        })
    }
}
