//! The local runtime: each attempt runs in a bubblewrap sandbox on this machine.
//!
//! A sandbox has fresh user, pid, network (loopback only), ipc, uts and cgroup
//! namespaces, no capabilities, no nested user namespaces, a read-only view of /usr and
//! a few /etc files, private /tmp and /dev, and one writable directory, `/scratch`. It
//! sees nothing of the orchestrator's environment. When the orchestrator runs as root,
//! every live sandbox also runs as its own unprivileged host uid from a pool
//! ([`LocalConfig::uid_base`], [`LocalConfig::slots`]): per-uid limits then bind per
//! sandbox and sandboxes cannot read each other's files. Without root the sandboxes run
//! as the orchestrator's user; RLIMIT_NPROC then counts that user's processes too (it is
//! set to their current number plus 512), and file permissions do not separate
//! sandboxes from each other (their namespaces still do).
//!
//! Limits come from the request's resources: a cgroup per sandbox (memory, 512 pids, CPU
//! quota; v1 or v2, detected at start-up) and rlimits. The cgroup also tracks every
//! process the sandbox starts, so `wait` returns only once all of them are gone.
//!
//! Layout: `<state_dir>/<name>/` holds the sandbox's files and `meta.json`, so a restarted
//! orchestrator finds what an earlier process left (`list`) and can `stop` and `remove`
//! it.

mod args;
mod cgroup;
mod host_lock;
mod leftover;
mod limits;
mod name_locks;
mod probe;
mod process;
mod procfs;
mod replica_dir;
mod state;
pub use replica_dir::ReplicaDir;
mod uids;

use self::args::{HostLayout, SandboxPaths};
use self::cgroup::{CgroupLimits, Cgroups, SandboxCgroup};
use self::leftover::Leftover;
use self::limits::{ChildSetup, Rlimits};
use self::name_locks::NameLocks;
use self::process::{Launch, Live};
use self::state::{Meta, SandboxDir};
use self::uids::UidPool;
use super::{
    BoxFuture, Created, OutputStream, RuntimeError, SandboxExit, SandboxInfo, SandboxRequest,
    SandboxRuntime,
};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How often sandboxes known only on disk are polled by `wait`.
const DISK_POLL: Duration = Duration::from_millis(100);
/// Most bytes of the sandbox's private /tmp when its memory limit is larger; /tmp is
/// memory, charged to the sandbox's cgroup.
const MAX_TMP_BYTES: u64 = 1 << 30;

/// Settings of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The `airlock-worker` binary, bound read-only into every sandbox.
    pub worker_path: PathBuf,
    /// Where sandbox directories live; created 0711, owned by the orchestrator.
    pub state_dir: PathBuf,
    /// The bubblewrap binary (Debian package `bubblewrap`). Default `/usr/bin/bwrap`.
    pub bwrap_path: PathBuf,
    /// First host uid (and gid) of the sandbox pool, used when running as root.
    /// Default 200000.
    pub uid_base: u32,
    /// How many sandbox uids there are, i.e. the most sandboxes alive at once (as
    /// root). Default 16.
    pub slots: u32,
    /// Where the host-wide uid locks live (shared by every orchestrator on the machine,
    /// whatever its installation). Default `/run/airlock/uids`.
    pub uid_lock_dir: PathBuf,
    /// How long the runtime keeps killing and waiting for a sandbox's processes to be
    /// gone (after `stop`, the deadline or the worker's exit) before it reports a
    /// failure. Default 5 s.
    pub kill_grace: Duration,
    /// Added to the request's timeout for the runtime's own wall-clock deadline (the
    /// worker normally ends the program at the timeout itself). Default 30 s.
    pub deadline_margin: Duration,
}

impl LocalConfig {
    pub const DEFAULT_BWRAP: &'static str = "/usr/bin/bwrap";
    pub const DEFAULT_UID_BASE: u32 = 200_000;
    pub const DEFAULT_SLOTS: u32 = 16;
    pub const DEFAULT_UID_LOCK_DIR: &'static str = "/run/airlock/uids";
    pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
    pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(30);

    /// A configuration with the defaults for everything but the two paths.
    pub fn new(worker_path: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            worker_path: worker_path.into(),
            state_dir: state_dir.into(),
            bwrap_path: Self::DEFAULT_BWRAP.into(),
            uid_base: Self::DEFAULT_UID_BASE,
            slots: Self::DEFAULT_SLOTS,
            uid_lock_dir: Self::DEFAULT_UID_LOCK_DIR.into(),
            kill_grace: Self::DEFAULT_KILL_GRACE,
            deadline_margin: Self::DEFAULT_DEADLINE_MARGIN,
        }
    }
}

/// The bubblewrap runtime. Spawn sandboxes from a runtime worker thread (a normal async
/// task, not `spawn_blocking`): `--die-with-parent` ties each sandbox to the thread that
/// started it.
pub struct LocalRuntime {
    config: LocalConfig,
    host: HostLayout,
    cgroups: Cgroups,
    /// Sandboxes get pool uids (the orchestrator is root).
    own_uids: bool,
    uids: UidPool,
    /// Pool uids that processes outside this runtime's bookkeeping run as.
    uid_scan: procfs::UidScan,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Serialises create and remove of each sandbox (not of different ones).
    names: NameLocks,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("config", &self.config)
            .field("cgroups", &self.cgroups)
            .field("own_uids", &self.own_uids)
            .finish_non_exhaustive()
    }
}

impl LocalRuntime {
    /// Checks bubblewrap and the worker, prepares the state directory and detects
    /// cgroups.
    pub fn new(config: LocalConfig) -> Result<Self, RuntimeError> {
        // SAFETY: geteuid has no preconditions.
        let own_uids = unsafe { libc::geteuid() } == 0;
        if own_uids
            && (config.slots == 0
                || config.uid_base == 0
                || config.uid_base.checked_add(config.slots).is_none())
        {
            return Err(RuntimeError::Failed(format!(
                "invalid sandbox uid pool: base {} with {} slots",
                config.uid_base, config.slots
            )));
        }
        if !config.worker_path.is_file() {
            return Err(RuntimeError::Failed(format!(
                "the worker binary {} does not exist (build it with `cargo build -p airlock-worker`)",
                config.worker_path.display()
            )));
        }
        state::prepare_state_dir(&config.state_dir, own_uids).map_err(RuntimeError::Failed)?;
        state::write_account_files(&config.state_dir).map_err(|e| {
            RuntimeError::Failed(format!(
                "cannot write the sandboxes' account files in {}: {e}",
                config.state_dir.display()
            ))
        })?;
        let host = HostLayout::probe();

        let uids = UidPool::new(
            config.uid_base,
            config.slots,
            own_uids.then(|| config.uid_lock_dir.clone()),
        );
        let uid_scan =
            procfs::UidScan::new(config.uid_base..config.uid_base.saturating_add(config.slots));
        for (_, meta) in state::list(&config.state_dir).map_err(|e| {
            RuntimeError::Failed(format!(
                "cannot read the state directory {}: {e}",
                config.state_dir.display()
            ))
        })? {
            if let Some(uid) = meta.host_uid
                && !uids.reserve(uid)
            {
                tracing::warn!(
                    uid,
                    "a leftover sandbox's uid is held by another process; its processes are left to it"
                );
            }
        }
        if own_uids {
            // Probe as a free pool uid, exactly like a sandbox will run.
            let probe_uid = uids.allocate(|uid| uid_scan.in_use(uid));
            let result =
                probe::probe_bwrap(&config, &host, Some(probe_uid.unwrap_or(config.uid_base)));
            if let Some(uid) = probe_uid {
                // bwrap's init may still be exiting when bwrap returns.
                probe::reap_uid(uid, config.kill_grace);
                uids.release(uid);
            }
            result?;
        } else {
            probe::probe_bwrap(&config, &host, None)?;
        }

        let cgroups = Cgroups::detect(Path::new(CGROUP_ROOT));
        if cgroups.is_available() {
            tracing::info!(cgroups = %cgroups.describe(), "local runtime cgroups");
            if !cgroups.has_memory() {
                tracing::warn!(
                    "no cgroup memory controller: memory is limited by RLIMIT_AS instead"
                );
            }
        } else {
            tracing::warn!(
                "cgroups are unavailable: sandboxes run with rlimits only (memory by RLIMIT_AS, no CPU quota), \
                 and leftover processes are found by uid only"
            );
        }
        if !own_uids {
            tracing::warn!(
                "not running as root: sandboxes run as this user, so RLIMIT_NPROC counts all of its processes \
                 and sandboxes are not separated by file permissions"
            );
        }

        Ok(Self {
            config,
            host,
            cgroups,
            own_uids,
            uids,
            uid_scan,
            live: Mutex::new(HashMap::new()),
            names: NameLocks::default(),
        })
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The host path of a sandbox's scratch directory (`/scratch` inside).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        SandboxDir::new(&self.config.state_dir, name).scratch()
    }

    fn live(&self, name: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The directory of a sandbox known only on disk, with its meta.
    fn on_disk(&self, name: &str) -> Option<(SandboxDir, Meta)> {
        if !state::valid_name(name) {
            return None;
        }
        let dir = SandboxDir::new(&self.config.state_dir, name);
        let meta = dir.read_meta().ok()?;
        Some((dir, meta))
    }

    #[tracing::instrument(skip_all, fields(sandbox = %request.sandbox_name()))]
    async fn create_sandbox(&self, request: &SandboxRequest) -> Result<Created, RuntimeError> {
        check_request(request)?;
        let name = request.sandbox_name();
        let _name = self.names.lock(&name).await;
        if self.live(&name).is_some() {
            return Ok(Created::Existing);
        }
        let dir = SandboxDir::new(&self.config.state_dir, &name);
        if dir.exists() {
            if dir.read_meta().is_ok() {
                tracing::info!("a sandbox of an earlier process has this name");
                return Ok(Created::Existing);
            }
            // A create that crashed before writing meta.json.
            delete_dir(dir.clone()).await?;
        }
        let host_uid = if self.own_uids {
            Some(
                self.uids
                    .allocate(|uid| self.uid_scan.in_use(uid))
                    .ok_or_else(|| {
                        RuntimeError::Failed(format!(
                            "all {} sandbox uids are in use; no more sandboxes can run at once",
                            self.uids.slots()
                        ))
                    })?,
            )
        } else {
            None
        };
        let cgroup = self.cgroups.sandbox(&name);
        match self
            .start(request, &name, &dir, host_uid, cgroup.as_ref())
            .await
        {
            Ok(live) => {
                self.live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name, Arc::new(live));
                Ok(Created::New)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox could not be started; cleaning up");
                if let Some(cgroup) = &cgroup {
                    let _ = cgroup.kill_until_empty(self.config.kill_grace).await;
                    let _ = cgroup.remove(self.config.kill_grace).await;
                }
                let _ = delete_dir(dir).await;
                if let Some(uid) = host_uid {
                    self.uids.release(uid);
                }
                Err(e)
            }
        }
    }

    async fn start(
        &self,
        request: &SandboxRequest,
        name: &str,
        dir: &SandboxDir,
        host_uid: Option<u32>,
        cgroup: Option<&SandboxCgroup>,
    ) -> Result<Live, RuntimeError> {
        let failed = |what: &str, e: std::io::Error| {
            RuntimeError::Failed(format!("{what} for sandbox {name}: {e}"))
        };
        let owner = host_uid.map(|uid| (uid, uid));
        {
            let dir = dir.clone();
            let input = request.input.clone();
            tokio::task::spawn_blocking(move || dir.prepare(owner, &input))
                .await
                .map_err(|e| {
                    RuntimeError::Failed(format!("preparing the sandbox directory panicked: {e}"))
                })?
                .map_err(|e| failed("cannot prepare the directory", e))?;
        }
        let mut meta = Meta {
            name: name.to_owned(),
            run_id: request.run_id,
            evaluation_id: request.evaluation_id,
            team_id: request.team_id,
            attempt: request.attempt,
            task_id: request.task_id.clone(),
            image: request.image.clone(),
            created: chrono::Utc::now(),
            pid: None,
            pid_start: None,
            host_uid,
        };

        let memory = request.resources.memory_bytes();
        if let Some(cgroup) = cgroup {
            let limits = CgroupLimits {
                memory_bytes: memory,
                pids: cgroup::PIDS_MAX,
                cpu_millis: request.resources.cpu_millis(),
            };
            cgroup
                .create(limits, self.config.kill_grace)
                .await
                .map_err(|e| failed("cannot set up the cgroup", e))?;
        }
        let nproc = match host_uid {
            Some(_) => limits::MAX_PROCESSES,
            // SAFETY: getuid has no preconditions.
            None => procfs::tasks_of_uid(unsafe { libc::getuid() }) + limits::MAX_PROCESSES,
        };
        let rlimits = Rlimits::for_request(
            &request.resources,
            request.timeout_secs,
            nproc,
            self.cgroups.has_memory(),
        );
        let cgroup_procs = cgroup
            .map(SandboxCgroup::procs_files)
            .unwrap_or_default()
            .into_iter()
            .map(|path| CString::new(path.as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuntimeError::Failed(format!("cgroup path with a NUL byte: {e}")))?;
        let setup = ChildSetup {
            cgroup_procs,
            rlimits,
            user: owner,
        };

        let (scratch, input, passwd, group) =
            (dir.scratch(), dir.input(), dir.passwd(), dir.group());
        let paths = SandboxPaths {
            input: &input,
            passwd: &passwd,
            group: &group,
            scratch: &scratch,
            worker: &self.config.worker_path,
        };
        let env = args::sandbox_env(request);
        let bwrap_args = args::bwrap_args(
            &self.host,
            &paths,
            &env,
            &request.command,
            memory.min(MAX_TMP_BYTES),
        );
        let live = Live::spawn(Launch {
            name: name.to_owned(),
            bwrap: self.config.bwrap_path.clone(),
            args: bwrap_args,
            setup,
            cgroup: cgroup.cloned(),
            host_uid,
            deadline: Duration::from_secs(request.timeout_secs)
                .saturating_add(self.config.deadline_margin),
            kill_grace: self.config.kill_grace,
        })?;
        // Written once, now that the pid is known (a directory without it is a create
        // that did not finish, and the next create of the name clears it). Without it a
        // restarted orchestrator could not find the sandbox, so failing to write it ends
        // the sandbox (dropping `live` stops it; the caller cleans up).
        meta.pid = Some(live.pid);
        meta.pid_start = procfs::start_time(live.pid);
        dir.write_meta(&meta)
            .map_err(|e| failed("cannot write meta.json", e))?;
        Ok(live)
    }

    #[tracing::instrument(skip_all, fields(sandbox = %name))]
    async fn stop_sandbox(&self, name: &str) -> Result<(), RuntimeError> {
        if let Some(live) = self.live(name) {
            live.request_stop();
            self.wait_killed(name, &live).await
        } else if let Some((dir, meta)) = self.on_disk(name) {
            dir.mark_stopped();
            self.leftover(name, &meta)
                .kill(self.config.kill_grace)
                .await
        } else {
            Err(RuntimeError::NotFound(name.to_owned()))
        }
    }

    /// Waits for a killed sandbox to be gone. The supervisor may spend up to a grace
    /// period each on killing, draining the output and draining stderr.
    async fn wait_killed(&self, name: &str, live: &Live) -> Result<(), RuntimeError> {
        let limit = self.config.kill_grace * 3 + Duration::from_secs(1);
        live.wait_gone(name, limit).await
    }

    /// A sandbox known only from disk.
    fn leftover<'m>(&self, name: &str, meta: &'m Meta) -> Leftover<'m> {
        Leftover::new(name, meta, &self.cgroups, &self.uids)
    }

    #[tracing::instrument(skip_all, fields(sandbox = %name))]
    async fn wait_sandbox(&self, name: &str) -> Result<SandboxExit, RuntimeError> {
        if let Some(live) = self.live(name) {
            return live.wait().await;
        }
        let Some((dir, meta)) = self.on_disk(name) else {
            return Err(RuntimeError::NotFound(name.to_owned()));
        };
        // Started by an earlier process: its exit status is lost; wait until nothing of
        // it runs.
        while self.leftover(name, &meta).alive() {
            tokio::time::sleep(DISK_POLL).await;
        }
        Ok(SandboxExit {
            code: None,
            signal: None,
            oom_killed: self.cgroups.sandbox(name).is_some_and(|c| c.oom_killed()),
            stopped: dir.was_stopped(),
            deadline_exceeded: false,
            failure: None,
        })
    }

    #[tracing::instrument(skip_all, fields(sandbox = %name))]
    async fn remove_sandbox(&self, name: &str) -> Result<(), RuntimeError> {
        let _name = self.names.lock(name).await;
        if !state::valid_name(name) {
            return Ok(());
        }
        let dir = SandboxDir::new(&self.config.state_dir, name);
        let cgroup = self.cgroups.sandbox(name);
        let live = self.live(name);
        let host_uid = match &live {
            Some(live) => {
                if !live.finished() {
                    tracing::info!("removing a running sandbox: stopping it first");
                    live.request_stop();
                }
                self.wait_killed(name, live).await?;
                live.host_uid
            }
            None => match dir.read_meta() {
                Ok(meta) => {
                    self.leftover(name, &meta)
                        .kill(self.config.kill_grace)
                        .await?;
                    meta.host_uid
                }
                Err(_) => None,
            },
        };
        if let Some(cgroup) = &cgroup {
            cgroup.remove(self.config.kill_grace).await.map_err(|e| {
                RuntimeError::Failed(format!("cannot remove the cgroup of {name}: {e}"))
            })?;
        }
        delete_dir(dir).await?;
        if let Some(uid) = host_uid {
            // Nothing of the sandbox is left: it was killed and waited for above.
            self.uid_scan.forget(uid);
            self.uids.release(uid);
        }
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        tracing::info!("sandbox removed");
        Ok(())
    }

    /// Reads every sandbox's `meta.json` (written atomically, so a sandbox being created
    /// is listed once it has one).
    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>, RuntimeError> {
        let found = state::list(&self.config.state_dir).map_err(|e| {
            RuntimeError::Failed(format!(
                "cannot read the state directory {}: {e}",
                self.config.state_dir.display()
            ))
        })?;
        Ok(found
            .into_iter()
            .map(|(_, meta)| {
                let alive = match self.live(&meta.name) {
                    Some(live) => !live.finished(),
                    None => self.leftover(&meta.name, &meta).alive(),
                };
                SandboxInfo {
                    name: meta.name,
                    run_id: meta.run_id,
                    evaluation_id: meta.evaluation_id,
                    team_id: meta.team_id,
                    attempt: meta.attempt,
                    alive,
                }
            })
            .collect())
    }

    fn take_output(&self, name: &str) -> Result<OutputStream, RuntimeError> {
        match self.live(name) {
            Some(live) => live
                .take_output()
                .ok_or_else(|| RuntimeError::Failed("output already taken".into())),
            None if self.on_disk(name).is_some() => Err(RuntimeError::Failed(format!(
                "the output of sandbox {name} is lost: an earlier orchestrator process started it"
            ))),
            None => Err(RuntimeError::NotFound(name.to_owned())),
        }
    }
}

impl SandboxRuntime for LocalRuntime {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn create<'a>(
        &'a self,
        request: &'a SandboxRequest,
    ) -> BoxFuture<'a, Result<Created, RuntimeError>> {
        Box::pin(self.create_sandbox(request))
    }

    fn output<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<OutputStream, RuntimeError>> {
        Box::pin(async move { self.take_output(name) })
    }

    fn wait<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<SandboxExit, RuntimeError>> {
        Box::pin(self.wait_sandbox(name))
    }

    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop_sandbox(name))
    }

    fn remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.remove_sandbox(name))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>> {
        Box::pin(self.list_sandboxes())
    }
}

/// Refuses what this runtime cannot run.
fn check_request(request: &SandboxRequest) -> Result<(), RuntimeError> {
    let gpus = request.resources.gpu;
    if gpus > 0 {
        return Err(RuntimeError::Refused(format!(
            "the local runtime has no GPUs; this spec asks for {gpus}"
        )));
    }
    if request.command.is_empty() {
        return Err(RuntimeError::Refused("the command is empty".into()));
    }
    if request.command.iter().any(|part| part.contains('\0')) {
        return Err(RuntimeError::Refused(
            "the command contains a NUL byte".into(),
        ));
    }
    for (name, value) in &request.env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(RuntimeError::Refused(format!(
                "invalid environment variable {name:?}"
            )));
        }
        if name.starts_with("AIRLOCK_") {
            return Err(RuntimeError::Refused(format!(
                "environment variable {name} is reserved (AIRLOCK_ prefix)"
            )));
        }
    }
    Ok(())
}

async fn delete_dir(dir: SandboxDir) -> Result<(), RuntimeError> {
    let path = dir.root().to_owned();
    tokio::task::spawn_blocking(move || dir.delete())
        .await
        .map_err(|e| RuntimeError::Failed(format!("deleting {} panicked: {e}", path.display())))?
        .map_err(|e| RuntimeError::Failed(format!("cannot delete {}: {e}", path.display())))
}
