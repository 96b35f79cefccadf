//! The sandbox runtime seam: everything the scheduler needs from a place that runs one
//! attempt in isolation. `local` (bubblewrap on this machine) and `kubernetes` (a
//! hardened pod per attempt) sit behind the same trait, so the rest of the platform
//! cannot tell them apart.

pub mod environment;
pub mod kubernetes;
pub mod local;

use airlock_core::spec::Resources;
use airlock_core::{EvaluationId, RunId, TeamId};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use tokio::io::AsyncBufRead;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The worker's event stream: JSON lines, one `airlock_core::event::WorkerEvent` each.
pub type OutputStream = Box<dyn AsyncBufRead + Send + Unpin>;

/// Everything needed to start one attempt.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub attempt: u32,
    pub task_id: String,
    pub epoch: u32,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub resources: Resources,
    pub timeout_secs: u64,
    pub input: serde_json::Value,
    /// The operator's `AIRLOCK_WORKER_*` settings for the worker (output limits).
    pub worker_env: Vec<(String, String)>,
}

impl SandboxRequest {
    /// The deterministic sandbox name: the same run attempt always maps to the same
    /// name, so a redelivered request finds the sandbox instead of making a second.
    pub fn sandbox_name(&self) -> String {
        sandbox_name(self.run_id, self.attempt)
    }
}

pub fn sandbox_name(run_id: RunId, attempt: u32) -> String {
    format!("airlock-{}-{attempt}", run_id.as_uuid().simple())
}

/// A sandbox the runtime knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub name: String,
    pub run_id: RunId,
    pub evaluation_id: EvaluationId,
    pub team_id: TeamId,
    pub attempt: u32,
    /// Whether its processes are still alive.
    pub alive: bool,
}

/// What `create` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new sandbox was started.
    New,
    /// A sandbox with this name already existed; nothing was started.
    Existing,
}

/// How a sandbox ended, as seen from outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxExit {
    /// The worker's own exit status, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended the worker, when one did.
    pub signal: Option<i32>,
    /// The kernel killed a process in the sandbox for exceeding the memory limit.
    pub oom_killed: bool,
    /// `stop` ended it.
    pub stopped: bool,
    /// The runtime's wall-clock limit (timeout plus a margin) ended it.
    pub deadline_exceeded: bool,
    /// The platform, not the program, ended the sandbox (an image that cannot be
    /// pulled, an eviction, a lost node), in words for the researcher.
    pub failure: Option<SandboxFailure>,
}

/// Why the platform ended a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxFailure {
    pub reason: String,
    /// Another attempt may succeed (an eviction, a lost node); not so for a bad image.
    pub retryable: bool,
}

/// Where a sandbox is on its way to running its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Not placed yet, and why (the scheduler's message).
    Scheduling(String),
    /// Placed; its image is pulled or its program is starting.
    Starting(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// This runtime cannot run the request at all (e.g. GPUs on the local runtime). The
    /// message is meant for the researcher.
    #[error("{0}")]
    Refused(String),
    /// No sandbox of that name.
    #[error("no sandbox named {0}")]
    NotFound(String),
    /// The runtime itself failed; may be retried.
    #[error("sandbox runtime failure: {0}")]
    Failed(String),
}

/// A place that runs one attempt in isolation.
pub trait SandboxRuntime: Send + Sync + 'static {
    /// `local` or `kubernetes`.
    fn kind(&self) -> &'static str;

    /// Starts the sandbox for `request` unless one with its name exists.
    fn create<'a>(
        &'a self,
        request: &'a SandboxRequest,
    ) -> BoxFuture<'a, Result<Created, RuntimeError>>;

    /// The worker's event stream of a sandbox, from its first line. Ends when the worker
    /// closes its stdout.
    fn output<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<OutputStream, RuntimeError>>;

    /// Waits until the sandbox has ended.
    fn wait<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SandboxExit, RuntimeError>>;

    /// Ends every process of the sandbox; idempotent. `wait` then reports `stopped`.
    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Frees what the sandbox held (scratch space, cgroups); idempotent.
    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Every sandbox this runtime knows of, including ones left from an earlier process.
    fn list(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>>;

    /// Reports the sandbox's placement on `progress` until its program starts or the
    /// sandbox ends first. By default a sandbox starts as soon as it is created.
    fn until_started<'a>(
        &'a self,
        _name: &'a str,
        progress: mpsc::UnboundedSender<Placement>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = progress.send(Placement::Starting(None));
        })
    }

    /// Whether sandboxes outlive the orchestrator, so a restarted orchestrator resumes
    /// following them instead of retrying their runs.
    fn survives_restart(&self) -> bool {
        false
    }

    /// Deletes what should not be left: finished sandboxes past their retention, and
    /// live ones whose name is not in `claimed` (no replica holds a claim of their
    /// attempt: orphans). Runs on one replica at a time; sandboxes of runtimes that die
    /// with their orchestrator need none of it.
    fn reap<'a>(&'a self, _claimed: &'a HashSet<String>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Whether the runtime can make sandboxes right now (for readiness).
    fn health(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        Box::pin(async { Ok(()) })
    }
}
