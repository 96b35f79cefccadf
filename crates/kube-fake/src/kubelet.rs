//! The kubelet (and scheduler) of the fake cluster's one node (or of a real API
//! server's node, through [`crate::real`]): it places each new pod
//! (or marks it unschedulable), "pulls" its images, runs its init containers and its
//! first container as processes on this machine, serves their output as container logs,
//! and enforces `activeDeadlineSeconds`, the memory limit (OOMKilled) and deletion.
//!
//! Volumes become directories of a per-pod temporary directory: `emptyDir` empty,
//! `downwardAPI` with its annotation files. A container's command, arguments and
//! environment see the volumes' mount paths rewritten to those directories, and a
//! program that an image provides (say the worker image's `/airlock-worker`) is mapped
//! to a file on this machine by [`KubeletOptions::image_files`]; anything else runs as
//! this machine has it.

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::ClusterState;
use crate::logs::key;
use crate::quantity;
use crate::store::{Resource, now_rfc3339};

/// How the node behaves.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// `(image, path inside the image) -> file on this machine`.
    pub image_files: Vec<(String, String, PathBuf)>,
    /// Images whose pull fails (ErrImagePull, then ImagePullBackOff).
    pub missing_images: HashSet<String>,
    /// Images whose pull takes this long.
    pub pull_delays: HashMap<String, Duration>,
    /// Allocatable CPU cores of the node.
    pub cpu: f64,
    /// Allocatable memory of the node, in bytes.
    pub memory: f64,
    /// `nvidia.com/gpu` of the node.
    pub gpus: u64,
    /// The node's labels, for nodeSelector.
    pub labels: HashMap<String, String>,
    /// When false, pods are created but never placed (a benchmark of the API path).
    pub run_pods: bool,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        Self {
            image_files: Vec::new(),
            missing_images: HashSet::new(),
            pull_delays: HashMap::new(),
            cpu: 64.0,
            memory: 256.0 * 1024.0 * 1024.0 * 1024.0,
            gpus: 0,
            labels: HashMap::new(),
            run_pods: true,
        }
    }
}

/// Processes the kubelet started, so they can all be killed when the cluster goes.
#[derive(Default)]
pub struct Processes(Mutex<HashSet<u32>>);

impl Processes {
    fn add(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pid);
    }

    fn remove(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&pid);
    }

    pub fn kill_all(&self) {
        let pids: Vec<u32> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for pid in pids {
            kill_tree(pid);
        }
    }
}

pub async fn run(state: Arc<ClusterState>, options: KubeletOptions) {
    let options = Arc::new(options);
    let mut changes = state.store.subscribe();
    let mut cursor = 0u64;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        changes.borrow_and_update();
        let new_pods: Vec<(String, Value)> = match state.store.changes_after(cursor) {
            Ok(list) => {
                cursor = list.last().map_or(cursor, |c| c.version);
                list.into_iter()
                    .filter(|c| c.resource == Resource::Pods && c.kind == "ADDED")
                    .map(|c| (c.namespace, c.object))
                    .collect()
            }
            Err(_) => {
                let (all, version) = state.store.list_all(Resource::Pods);
                cursor = version;
                all
            }
        };
        for (ns, pod) in new_pods {
            let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            if options.run_pods && seen.insert(uid) && pod["spec"]["nodeName"].is_null() {
                tokio::spawn(run_pod(state.clone(), options.clone(), ns, pod));
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

struct PodRef {
    state: Arc<ClusterState>,
    ns: String,
    name: String,
    uid: String,
}

impl PodRef {
    /// Whether the node still runs the pod: it exists and was not evicted.
    /// (A pod being deleted gracefully, on a real API server, no longer runs.)
    fn runs_here(&self) -> bool {
        self.state
            .store
            .get(Resource::Pods, &self.ns, &self.name)
            .is_some_and(|p| {
                p["metadata"]["uid"] == self.uid.as_str()
                    && p["status"]["reason"] != "Evicted"
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
    }

    fn update(&self, change: impl FnOnce(&mut Value)) {
        let uid = self.uid.clone();
        self.state
            .store
            .update(Resource::Pods, &self.ns, &self.name, |pod| {
                if pod["metadata"]["uid"] == uid.as_str() {
                    change(pod);
                }
            });
        if let Some(remote) = &self.state.remote {
            remote.changed(&self.state, &self.name);
        }
    }

    fn container_status(&self, field: &str, container: &Value, image: &str, state: Value) {
        let name = container["name"].clone();
        let status = json!({
            "name": name, "image": image, "imageID": "", "ready": state.get("running").is_some(),
            "restartCount": 0, "started": state.get("running").is_some(), "state": state
        });
        self.update(|pod| {
            let list = &mut pod["status"][field];
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(items) = list.as_array_mut() {
                items.retain(|s| s["name"] != name);
                items.push(status);
            }
        });
    }

    /// Resolves once the pod is deleted or evicted.
    async fn deleted(&self) {
        let mut changes = self.state.store.subscribe();
        loop {
            changes.borrow_and_update();
            if !self.runs_here() {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Why the node refuses the pod, in the scheduler's words.
fn unschedulable(spec: &Value, options: &KubeletOptions) -> Option<String> {
    let mut cpu = 0.0;
    let mut memory = 0.0;
    let mut gpus = 0.0;
    for c in spec["containers"].as_array().into_iter().flatten() {
        let requests = &c["resources"]["requests"];
        let limits = &c["resources"]["limits"];
        let get = |name: &str| {
            requests[name]
                .as_str()
                .or_else(|| limits[name].as_str())
                .and_then(quantity::parse)
                .unwrap_or(0.0)
        };
        cpu += get("cpu");
        memory += get("memory");
        gpus += get("nvidia.com/gpu");
    }
    let mut reasons = Vec::new();
    if cpu > options.cpu {
        reasons.push("1 Insufficient cpu");
    }
    if memory > options.memory {
        reasons.push("1 Insufficient memory");
    }
    if gpus > options.gpus as f64 {
        reasons.push("1 Insufficient nvidia.com/gpu");
    }
    for (k, v) in spec["nodeSelector"].as_object().into_iter().flatten() {
        if options.labels.get(k).map(String::as_str) != v.as_str() {
            reasons.push("1 node(s) didn't match Pod's node affinity/selector");
            break;
        }
    }
    (!reasons.is_empty()).then(|| {
        format!(
            "0/1 nodes are available: {}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
            reasons.join(", ")
        )
    })
}

async fn run_pod(state: Arc<ClusterState>, options: Arc<KubeletOptions>, ns: String, pod: Value) {
    let pod_ref = PodRef {
        state: state.clone(),
        ns: ns.clone(),
        name: pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        uid: pod["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
    };
    let spec = pod["spec"].clone();
    if let Some(message) = unschedulable(&spec, &options) {
        pod_ref.update(|p| {
            p["status"]["conditions"] = json!([{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": now_rfc3339()
            }]);
        });
        return;
    }
    let started = tokio::time::Instant::now();
    pod_ref.update(|p| {
        p["spec"]["nodeName"] = json!(state.remote.as_ref().map_or("fake-node", |r| r.node()));
        p["status"]["startTime"] = json!(now_rfc3339());
        p["status"]["hostIP"] = json!("10.0.0.1");
        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]);
    });
    let deadline = spec["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| started + Duration::from_secs(s));
    let root = std::env::temp_dir().join(format!("airlock-fake-pod-{}", pod_ref.uid));
    let outcome = tokio::select! {
        outcome = run_containers(&pod_ref, &options, &pod, &root) => outcome,
        () = pod_ref.deleted() => Outcome::Deleted,
        () = sleep_until(deadline) => Outcome::DeadlineExceeded,
    };
    let _ = std::fs::remove_dir_all(&root);
    pod_ref.state.logs.finish_pod(&pod_ref.ns, &pod_ref.name);
    match outcome {
        Outcome::Waiting => {}
        // Gone, or evicted: an evicted pod's containers were killed.
        Outcome::Deleted => {
            pod_ref.update(terminate_containers);
            // A real API server keeps a pod being deleted until its kubelet says it stopped.
            if let Some(remote) = &pod_ref.state.remote
                && pod_ref
                    .state
                    .store
                    .get(Resource::Pods, &pod_ref.ns, &pod_ref.name)
                    .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
            {
                remote.finalize(&pod_ref.name).await;
            }
        }
        Outcome::DeadlineExceeded => pod_ref.update(|p| {
            p["status"]["phase"] = json!("Failed");
            p["status"]["reason"] = json!("DeadlineExceeded");
            p["status"]["message"] =
                json!("Pod was active on the node longer than the specified deadline");
            terminate_containers(p);
        }),
        Outcome::Ended { succeeded } => pod_ref.update(|p| {
            p["status"]["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
        }),
    }
}

/// Marks every container that has not ended as killed.
fn terminate_containers(p: &mut Value) {
    for field in ["initContainerStatuses", "containerStatuses"] {
        for status in p["status"][field].as_array_mut().into_iter().flatten() {
            if status["state"].get("terminated").is_none() {
                let mut terminated =
                    json!({"exitCode": 137, "reason": "Error", "finishedAt": now_rfc3339()});
                if let Some(started) = status["state"]["running"].get("startedAt") {
                    terminated["startedAt"] = started.clone();
                }
                status["state"] = json!({"terminated": terminated});
                status["ready"] = json!(false);
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

enum Outcome {
    /// Stuck waiting (an image that cannot be pulled) until deleted or the deadline.
    Waiting,
    Deleted,
    DeadlineExceeded,
    Ended {
        succeeded: bool,
    },
}

async fn run_containers(
    pod_ref: &PodRef,
    options: &KubeletOptions,
    pod: &Value,
    root: &Path,
) -> Outcome {
    let spec = &pod["spec"];
    let volumes = match prepare_volumes(pod, root) {
        Ok(v) => v,
        Err(e) => {
            pod_ref.update(|p| p["status"]["message"] = json!(format!("volume setup failed: {e}")));
            return Outcome::Ended { succeeded: false };
        }
    };
    let inits: Vec<Value> = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mains: Vec<Value> = spec["containers"].as_array().cloned().unwrap_or_default();
    for c in &inits {
        pod_ref.container_status(
            "initContainerStatuses",
            c,
            c["image"].as_str().unwrap_or(""),
            json!({"waiting": {"reason": "PodInitializing"}}),
        );
    }
    for c in &mains {
        pod_ref.container_status(
            "containerStatuses",
            c,
            c["image"].as_str().unwrap_or(""),
            json!({"waiting": {"reason": "PodInitializing"}}),
        );
    }
    for c in &inits {
        match run_container(pod_ref, options, c, &volumes, "initContainerStatuses").await {
            ContainerEnd::Exited(0) => {}
            ContainerEnd::Exited(_) | ContainerEnd::OomKilled => {
                return Outcome::Ended { succeeded: false };
            }
            ContainerEnd::Waiting => return Outcome::Waiting,
        }
    }
    let Some(main) = mains.first() else {
        return Outcome::Ended { succeeded: true };
    };
    pod_ref.update(|p| p["status"]["phase"] = json!("Running"));
    match run_container(pod_ref, options, main, &volumes, "containerStatuses").await {
        ContainerEnd::Exited(code) => Outcome::Ended {
            succeeded: code == 0,
        },
        ContainerEnd::OomKilled => Outcome::Ended { succeeded: false },
        ContainerEnd::Waiting => Outcome::Waiting,
    }
}

/// Each volume's directory on this machine, by volume name.
fn prepare_volumes(pod: &Value, root: &Path) -> std::io::Result<HashMap<String, PathBuf>> {
    let mut dirs = HashMap::new();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("");
        let dir = root.join("volumes").join(name);
        std::fs::create_dir_all(&dir)?;
        for item in volume["downwardAPI"]["items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or("");
            let value = field
                .strip_prefix("metadata.annotations['")
                .and_then(|rest| rest.strip_suffix("']"))
                .and_then(|key| pod["metadata"]["annotations"][key].as_str())
                .or_else(|| {
                    (field == "metadata.name")
                        .then(|| pod["metadata"]["name"].as_str())
                        .flatten()
                })
                .unwrap_or("");
            std::fs::write(dir.join(item["path"].as_str().unwrap_or("value")), value)?;
        }
        dirs.insert(name.to_owned(), dir);
    }
    Ok(dirs)
}

enum ContainerEnd {
    Exited(i32),
    OomKilled,
    Waiting,
}

/// Rewrites a path (or a value holding one) from the container's view to this machine's.
struct PathMap(Vec<(String, String)>);

impl PathMap {
    fn new(container: &Value, volumes: &HashMap<String, PathBuf>) -> Self {
        let mut mounts: Vec<(String, String)> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let dir = volumes.get(m["name"].as_str()?)?;
                Some((
                    m["mountPath"].as_str()?.trim_end_matches('/').to_owned(),
                    dir.display().to_string(),
                ))
            })
            .collect();
        mounts.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Self(mounts)
    }

    fn map(&self, text: &str) -> String {
        for (from, to) in &self.0 {
            if text == from {
                return to.clone();
            }
            if let Some(rest) = text.strip_prefix(&format!("{from}/")) {
                return format!("{to}/{rest}");
            }
        }
        text.to_owned()
    }
}

async fn run_container(
    pod_ref: &PodRef,
    options: &KubeletOptions,
    container: &Value,
    volumes: &HashMap<String, PathBuf>,
    field: &str,
) -> ContainerEnd {
    let image = container["image"].as_str().unwrap_or("").to_owned();
    if options.missing_images.contains(&image) {
        pod_ref.container_status(field, container, &image, json!({"waiting": {
            "reason": "ErrImagePull",
            "message": format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found")
        }}));
        tokio::time::sleep(Duration::from_millis(200)).await;
        pod_ref.container_status(field, container, &image, json!({"waiting": {
            "reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")
        }}));
        return ContainerEnd::Waiting;
    }
    if let Some(delay) = options.pull_delays.get(&image) {
        pod_ref.container_status(
            field,
            container,
            &image,
            json!({"waiting": {"reason": "ContainerCreating"}}),
        );
        tokio::time::sleep(*delay).await;
    }
    let paths = PathMap::new(container, volumes);
    let mut argv: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if argv.is_empty() {
        pod_ref.container_status(
            field,
            container,
            &image,
            json!({"waiting": {
                "reason": "CreateContainerError", "message": "no command specified"
            }}),
        );
        return ContainerEnd::Waiting;
    }
    argv[0] = options
        .image_files
        .iter()
        .find(|(i, p, _)| *i == image && *p == argv[0])
        .map(|(_, _, local)| local.display().to_string())
        .unwrap_or_else(|| paths.map(&argv[0]));
    for arg in argv.iter_mut().skip(1) {
        *arg = paths.map(arg);
    }
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in container["env"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            command.env(name, paths.map(value));
        }
    }
    if let Some(dir) = container["workingDir"].as_str() {
        command.current_dir(paths.map(dir));
    }
    let log_key = key(
        &pod_ref.ns,
        &pod_ref.name,
        container["name"].as_str().unwrap_or(""),
    );
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            pod_ref.container_status(field, container, &image, json!({"terminated": {
                "exitCode": 128, "reason": "StartError", "message": format!("exec: {e}"), "finishedAt": now_rfc3339()
            }}));
            return ContainerEnd::Exited(128);
        }
    };
    let pid = child.id().unwrap_or(0);
    pod_ref.state.processes.add(pid);
    pod_ref.state.logs.open(&log_key);
    let started_at = now_rfc3339();
    pod_ref.container_status(
        field,
        container,
        &image,
        json!({"running": {"startedAt": started_at}}),
    );
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let logs = pod_ref.state.logs.clone();
        let log_key = log_key.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.append(&log_key, line);
            }
        })
    })
    .collect();
    let limit = container["resources"]["limits"]["memory"]
        .as_str()
        .and_then(quantity::parse);
    let mut guard = KillOnDrop(pid);
    let end = tokio::select! {
        status = child.wait() => ContainerEnd::Exited(status.ok().and_then(|s| {
            use std::os::unix::process::ExitStatusExt;
            s.code().or_else(|| s.signal().map(|sig| 128 + sig))
        }).unwrap_or(1)),
        () = watch_memory(pid, limit) => {
            kill_tree(pid);
            let _ = child.wait().await;
            ContainerEnd::OomKilled
        }
    };
    guard.0 = 0;
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    }
    pod_ref.state.processes.remove(pid);
    pod_ref.state.logs.finish(&log_key);
    let (code, reason) = match end {
        ContainerEnd::OomKilled => (137, "OOMKilled"),
        ContainerEnd::Exited(0) => (0, "Completed"),
        ContainerEnd::Exited(code) => (code, "Error"),
        ContainerEnd::Waiting => (0, ""),
    };
    pod_ref.container_status(
        field,
        container,
        &image,
        json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now_rfc3339()
        }}),
    );
    end
}

/// Kills a container's processes when its task ends early (deletion, deadline).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_tree(self.0);
    }
}

/// Resolves when the process tree under `pid` uses more than `limit` bytes of memory.
async fn watch_memory(pid: u32, limit: Option<f64>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let resident: u64 = descendants(pid)
            .into_iter()
            .chain([pid])
            .map(resident_bytes)
            .sum();
        if resident as f64 > limit {
            return;
        }
    }
}

fn resident_bytes(pid: u32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page)
}

/// Every process whose parent chain leads to `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn kill_tree(pid: u32) {
    if pid == 0 {
        return;
    }
    for p in descendants(pid).into_iter().chain([pid]) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(p as i32, libc::SIGKILL);
        }
    }
}
