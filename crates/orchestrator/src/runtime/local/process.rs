//! One running sandbox: spawning bwrap and supervising it until nothing of it is left.
//!
//! A supervisor task owns the child process. It waits for bwrap to exit, for a stop
//! request or for the wall-clock deadline, then kills whatever is left in the sandbox's
//! cgroup and (when it has its own uid) every process of that uid, reads the OOM record
//! and publishes the [`SandboxExit`] that every `wait` sees. A pump task copies the
//! worker's stdout into the stream `output` hands out and notes whether the worker wrote
//! anything; a third task logs bwrap's stderr and keeps its last lines.

use super::cgroup::SandboxCgroup;
use super::limits::ChildSetup;
use super::procfs;
use crate::runtime::{OutputStream, RuntimeError, SandboxExit};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// Buffer between the worker's stdout and the reader of `output`.
const OUTPUT_BUFFER: usize = 64 * 1024;
/// How many of bwrap's last stderr lines are kept for error reports.
const STDERR_TAIL_LINES: usize = 10;
/// Longest stderr line kept or logged.
const STDERR_LINE_BYTES: usize = 2048;
/// bwrap's exit code when it could not set the sandbox up.
const BWRAP_FAILURE: i32 = 1;

/// The outcome every `wait` sees: the exit, or why the runtime failed.
type Outcome = Option<Result<SandboxExit, Failure>>;

/// Why a sandbox has no proper exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub message: String,
    /// Processes of the sandbox were still alive after the grace period.
    pub survivors: bool,
}

/// What the pump has seen of the worker's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pump {
    Nothing,
    /// At least one byte.
    Output,
    /// End of stream without a single byte.
    EmptyEof,
}

/// How to start one sandbox.
pub(crate) struct Launch {
    pub name: String,
    pub bwrap: PathBuf,
    pub args: Vec<OsString>,
    pub setup: ChildSetup,
    pub cgroup: Option<SandboxCgroup>,
    /// The pool uid the sandbox runs as, if it has its own.
    pub host_uid: Option<u32>,
    pub deadline: Duration,
    pub kill_grace: Duration,
}

/// A sandbox started by this process.
pub(crate) struct Live {
    pub host_uid: Option<u32>,
    pub pid: u32,
    output: Mutex<Option<OutputStream>>,
    stop: watch::Sender<bool>,
    outcome: watch::Receiver<Outcome>,
}

impl Live {
    /// Spawns bwrap and its supervisor. Must run on a runtime worker thread (not in
    /// `spawn_blocking`): bwrap's `--die-with-parent` is tied to the spawning thread.
    #[tracing::instrument(skip_all, fields(sandbox = %launch.name))]
    pub(crate) fn spawn(launch: Launch) -> Result<Self, RuntimeError> {
        let Launch {
            name,
            bwrap,
            args,
            setup,
            cgroup,
            host_uid,
            deadline,
            kill_grace,
        } = launch;
        let mut command = Command::new(&bwrap);
        command
            .args(&args)
            .env_clear()
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: `apply` only makes async-signal-safe calls on data prepared before the
        // fork and does not allocate.
        unsafe {
            command.pre_exec(move || setup.apply());
        }
        let mut child = command
            .spawn()
            .map_err(|e| RuntimeError::Failed(format!("cannot start {}: {e}", bwrap.display())))?;
        let pid = child.id().unwrap_or(0);
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => (stdout, stderr),
            _ => {
                return Err(RuntimeError::Failed(
                    "bwrap's output pipes are missing".into(),
                ));
            }
        };
        tracing::info!(pid, host_uid, "sandbox started");

        let (ours, theirs) = tokio::io::duplex(OUTPUT_BUFFER);
        let (pump_tx, pump_rx) = watch::channel(Pump::Nothing);
        tokio::spawn(pump(stdout, ours, pump_tx).in_current_span());
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        // The sandbox's tasks log in the span of the run that started it.
        let stderr_task =
            tokio::spawn(log_stderr(stderr, name.clone(), Arc::clone(&tail)).in_current_span());

        let (stop_tx, stop_rx) = watch::channel(false);
        let (outcome_tx, outcome_rx) = watch::channel(None);
        let supervisor = Supervisor {
            name,
            cgroup,
            host_uid,
            deadline: Instant::now() + deadline,
            kill_grace,
            pump: pump_rx,
            tail,
            stderr_task,
        };
        tokio::spawn(supervisor.run(child, stop_rx, outcome_tx).in_current_span());

        Ok(Self {
            host_uid,
            pid,
            output: Mutex::new(Some(Box::new(BufReader::new(theirs)))),
            stop: stop_tx,
            outcome: outcome_rx,
        })
    }

    /// The worker's event stream; only once.
    pub(crate) fn take_output(&self) -> Option<OutputStream> {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the sandbox has ended and been cleaned up.
    pub(crate) fn finished(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    /// Asks the supervisor to kill the sandbox; idempotent.
    pub(crate) fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the outcome.
    pub(crate) async fn wait(&self) -> Result<SandboxExit, RuntimeError> {
        self.outcome()
            .await
            .map_err(|f| RuntimeError::Failed(f.message))
    }

    async fn outcome(&self) -> Result<SandboxExit, Failure> {
        let mut outcome = self.outcome.clone();
        let result = outcome
            .wait_for(Option::is_some)
            .await
            .map(|value| value.clone());
        match result {
            Ok(Some(result)) => result,
            // The supervisor task was dropped (runtime shutdown); the child was killed
            // on drop, but nobody checked what was left.
            Ok(None) | Err(_) => Err(Failure {
                message: "the sandbox's supervisor ended unexpectedly".into(),
                survivors: true,
            }),
        }
    }

    /// Waits (at most `limit`) for a killed sandbox to be gone; its exit status does not
    /// matter, only that nothing of it survived.
    pub(crate) async fn wait_gone(&self, name: &str, limit: Duration) -> Result<(), RuntimeError> {
        match tokio::time::timeout(limit, self.outcome()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(failure)) if !failure.survivors => Ok(()),
            Ok(Err(failure)) => Err(RuntimeError::Failed(failure.message)),
            Err(_) => Err(RuntimeError::Failed(format!(
                "sandbox {name} did not end within {limit:?} of being killed"
            ))),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A sandbox must not outlive the runtime that knows of it.
        self.request_stop();
    }
}

struct Supervisor {
    name: String,
    cgroup: Option<SandboxCgroup>,
    host_uid: Option<u32>,
    deadline: Instant,
    kill_grace: Duration,
    pump: watch::Receiver<Pump>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    #[tracing::instrument(skip_all, fields(sandbox = %self.name))]
    async fn run(
        mut self,
        mut child: Child,
        mut stop: watch::Receiver<bool>,
        outcome: watch::Sender<Outcome>,
    ) {
        let mut stopped = false;
        let mut deadline_exceeded = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = async { stop.wait_for(|s| *s).await.is_ok() }, if !stopped => {
                    tracing::info!("stopping the sandbox");
                    stopped = true;
                    self.kill(&mut child);
                }
                () = tokio::time::sleep_until(self.deadline), if !deadline_exceeded && !stopped => {
                    tracing::warn!("the sandbox ran past its deadline; killing it");
                    deadline_exceeded = true;
                    self.kill(&mut child);
                }
            }
        };
        let result = self.finish(status, stopped, deadline_exceeded).await;
        match &result {
            Ok(exit) => tracing::info!(?exit, "sandbox ended"),
            Err(failure) => tracing::error!(message = %failure.message, "sandbox failed"),
        }
        outcome.send_replace(Some(result));
    }

    /// One round of SIGKILL to bwrap, the cgroup and the sandbox's uid.
    fn kill(&self, child: &mut Child) {
        // Fails only when the child was already reaped.
        let _ = child.start_kill();
        self.kill_pass();
    }

    /// With a cgroup, its member list is every process of the sandbox: nothing inside
    /// can leave it (no cgroup file system is mounted inside, and its own cgroup
    /// namespace hides the hierarchy), so the host-wide scan for the sandbox's uid is
    /// only needed without one.
    fn kill_pass(&self) -> bool {
        if let Some(cgroup) = &self.cgroup {
            return cgroup.kill_pass();
        }
        let mut found = false;
        if let Some(uid) = self.host_uid {
            for pid in procfs::pids_of_uid(uid) {
                found = true;
                procfs::sigkill(pid);
            }
        }
        found
    }

    /// Kills until no process of the sandbox is left, within the grace period.
    async fn kill_until_empty(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.kill_grace;
        while self.kill_pass() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "processes of the sandbox survived {:?} of SIGKILL (cgroup: {:?}, uid: {:?})",
                    self.kill_grace,
                    self.cgroup.as_ref().map(SandboxCgroup::pids),
                    self.host_uid.map(procfs::pids_of_uid)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn finish(
        &mut self,
        status: std::io::Result<ExitStatus>,
        stopped: bool,
        deadline_exceeded: bool,
    ) -> Result<SandboxExit, Failure> {
        // bwrap is gone; with it its pid namespace. Whatever escaped into the cgroup or
        // still runs as the sandbox's uid is killed now, before anyone hears of the end.
        self.kill_until_empty().await.map_err(|message| Failure {
            message,
            survivors: true,
        })?;
        let status = status.map_err(|e| Failure {
            message: format!("cannot wait for bwrap: {e}"),
            survivors: false,
        })?;
        let oom_killed = self.cgroup.as_ref().is_some_and(SandboxCgroup::oom_killed);

        // Every writer of the pipes is dead now, so these end promptly.
        let pump =
            tokio::time::timeout(self.kill_grace, self.pump.wait_for(|p| *p != Pump::Nothing))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|p| *p);
        let _ = tokio::time::timeout(self.kill_grace, &mut self.stderr_task).await;

        let exit = SandboxExit {
            code: status.code(),
            signal: status.signal(),
            oom_killed,
            stopped,
            deadline_exceeded,
            failure: None,
        };
        // bwrap reports its own failures (a mount, a namespace, exec of the worker) on
        // stderr as `bwrap: ...` and exits 1; the worker then never wrote a byte. That
        // is the runtime's failure, not the program's.
        let tail: Vec<String> = self
            .tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let bwrap_failed =
            status.code() == Some(BWRAP_FAILURE) && tail.iter().any(|l| l.starts_with("bwrap:"));
        if pump == Some(Pump::EmptyEof)
            && bwrap_failed
            && !stopped
            && !deadline_exceeded
            && !oom_killed
        {
            return Err(Failure {
                message: format!(
                    "bubblewrap could not start the sandbox's worker ({status}): {}",
                    tail.join(" | ")
                ),
                survivors: false,
            });
        }
        Ok(exit)
    }
}

/// Copies the worker's stdout to the output stream; after the reader went away the rest
/// is drained so the worker never blocks on a full pipe.
async fn pump(mut stdout: ChildStdout, mut out: DuplexStream, seen: watch::Sender<Pump>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut reader_gone = false;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.send_if_modified(|p| {
            let first = *p == Pump::Nothing;
            *p = Pump::Output;
            first
        });
        if !reader_gone && out.write_all(&buf[..n]).await.is_err() {
            reader_gone = true;
        }
    }
    seen.send_if_modified(|p| {
        let first = *p == Pump::Nothing;
        if first {
            *p = Pump::EmptyEof;
        }
        first
    });
    let _ = out.shutdown().await;
}

/// Logs bwrap's stderr (its own errors and anything the worker prints there) line by
/// line and keeps the last few lines.
async fn log_stderr(mut stderr: ChildStderr, name: String, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut buf = vec![0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let emit = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        line.clear();
        if text.is_empty() {
            return;
        }
        tracing::warn!(sandbox = %name, "sandbox stderr: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            if byte == b'\n' {
                emit(&mut line);
            } else if line.len() < STDERR_LINE_BYTES {
                line.push(byte);
            }
        }
    }
    emit(&mut line);
}
