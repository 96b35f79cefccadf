//! cgroups: memory, process-count and CPU limits per sandbox, the list of every process
//! a sandbox started (however it detached), and the OOM-kill record.
//!
//! Detected once at start-up: cgroup v2 when `<root>/cgroup.controllers` exists (the
//! `memory`, `pids` and `cpu` controllers are enabled for `<root>/airlock`), otherwise
//! v1 with the controllers mounted at `<root>/{memory,pids,cpu}`. Each sandbox gets
//! `airlock/<name>` in every hierarchy in use. Anything that cannot be set up degrades to
//! "not available"; the runtime then relies on rlimits and says so.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory under each hierarchy root that holds the sandboxes' cgroups.
pub(crate) const PARENT: &str = "airlock";
/// pids.max of each sandbox.
pub(crate) const PIDS_MAX: u64 = super::limits::MAX_PROCESSES;
/// CFS period (µs) of the CPU quota.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// How the sandboxes' cgroups are organised on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cgroups {
    /// Unified hierarchy; `parent` is `<root>/airlock`, the flags say which controllers
    /// its children have.
    V2 {
        parent: PathBuf,
        memory: bool,
        pids: bool,
        cpu: bool,
    },
    /// Legacy hierarchies; each is `<mount>/airlock` when that controller is usable.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    Unavailable,
}

/// The limits written into a sandbox's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpu_millis: u64,
}

impl Cgroups {
    /// Detects the hierarchy under `root` (normally /sys/fs/cgroup) and creates the
    /// `airlock` parent(s). Never fails: what cannot be used is left out.
    pub(crate) fn detect(root: &Path) -> Self {
        if root.join("cgroup.controllers").exists() {
            return Self::detect_v2(root);
        }
        let usable = |controller: &str| {
            let mount = root.join(controller);
            if !mount.join("cgroup.procs").exists() {
                return None;
            }
            let parent = mount.join(PARENT);
            match fs::create_dir_all(&parent) {
                Ok(()) if writable(&parent) => Some(parent),
                Ok(()) => {
                    tracing::warn!(controller, "the sandboxes' cgroup parent is not writable");
                    None
                }
                Err(e) => {
                    tracing::warn!(controller, error = %e, "cannot create the sandboxes' cgroup parent");
                    None
                }
            }
        };
        let (memory, pids, cpu) = (usable("memory"), usable("pids"), usable("cpu"));
        if memory.is_none() && pids.is_none() && cpu.is_none() {
            Self::Unavailable
        } else {
            Self::V1 { memory, pids, cpu }
        }
    }

    fn detect_v2(root: &Path) -> Self {
        let wanted = ["memory", "pids", "cpu"];
        let available = read_words(&root.join("cgroup.controllers"));
        let parent = root.join(PARENT);
        if let Err(e) = fs::create_dir_all(&parent) {
            tracing::warn!(error = %e, "cannot create the sandboxes' cgroup parent");
            return Self::Unavailable;
        }
        if !writable(&parent) {
            tracing::warn!("the sandboxes' cgroup parent is not writable");
            return Self::Unavailable;
        }
        for dir in [root, parent.as_path()] {
            let enabled = read_words(&dir.join("cgroup.subtree_control"));
            for controller in wanted {
                if !available.contains(controller) || enabled.contains(controller) {
                    continue;
                }
                let control = dir.join("cgroup.subtree_control");
                if let Err(e) = write_file(&control, &format!("+{controller}")) {
                    tracing::warn!(controller, error = %e, "cannot enable a cgroup controller");
                }
            }
        }
        let enabled = read_words(&parent.join("cgroup.subtree_control"));
        let (memory, pids, cpu) = (
            enabled.contains("memory"),
            enabled.contains("pids"),
            enabled.contains("cpu"),
        );
        // Even without controllers the cgroup still tracks and kills every process.
        Self::V2 {
            parent,
            memory,
            pids,
            cpu,
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        !matches!(self, Self::Unavailable)
    }

    /// Whether a cgroup enforces the memory limit.
    pub(crate) fn has_memory(&self) -> bool {
        match self {
            Self::V2 { memory, .. } => *memory,
            Self::V1 { memory, .. } => memory.is_some(),
            Self::Unavailable => false,
        }
    }

    /// For logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::V2 {
                parent,
                memory,
                pids,
                cpu,
            } => format!(
                "cgroup v2 at {} (memory: {memory}, pids: {pids}, cpu: {cpu})",
                parent.display()
            ),
            Self::V1 { memory, pids, cpu } => format!(
                "cgroup v1 (memory: {}, pids: {}, cpu: {})",
                memory.is_some(),
                pids.is_some(),
                cpu.is_some()
            ),
            Self::Unavailable => "no cgroups".to_owned(),
        }
    }

    /// The (not yet created) cgroup of sandbox `name`; `None` without cgroups.
    pub(crate) fn sandbox(&self, name: &str) -> Option<SandboxCgroup> {
        match self {
            Self::V2 {
                parent,
                memory,
                pids,
                cpu,
            } => Some(SandboxCgroup::V2 {
                dir: parent.join(name),
                memory: *memory,
                pids: *pids,
                cpu: *cpu,
            }),
            Self::V1 { memory, pids, cpu } => Some(SandboxCgroup::V1 {
                memory: memory.as_ref().map(|p| p.join(name)),
                pids: pids.as_ref().map(|p| p.join(name)),
                cpu: cpu.as_ref().map(|p| p.join(name)),
            }),
            Self::Unavailable => None,
        }
    }
}

/// The cgroup(s) of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SandboxCgroup {
    V2 {
        dir: PathBuf,
        memory: bool,
        pids: bool,
        cpu: bool,
    },
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
}

impl SandboxCgroup {
    /// Every directory of this sandbox's cgroup(s).
    pub(crate) fn dirs(&self) -> Vec<&Path> {
        match self {
            Self::V2 { dir, .. } => vec![dir.as_path()],
            Self::V1 { memory, pids, cpu } => [memory, pids, cpu]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect(),
        }
    }

    /// Creates the cgroup(s) and writes the limits. A leftover of the same name (from a
    /// crashed process) is emptied and replaced.
    pub(crate) async fn create(&self, limits: CgroupLimits, grace: Duration) -> io::Result<()> {
        if self.dirs().iter().any(|dir| dir.exists()) {
            self.kill_until_empty(grace)
                .await
                .map_err(io::Error::other)?;
            self.remove(grace).await?;
        }
        for dir in self.dirs() {
            fs::create_dir(dir).map_err(|e| with_path(dir, e))?;
        }
        match self {
            Self::V2 {
                dir,
                memory,
                pids,
                cpu,
            } => {
                if *memory {
                    write_file(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write_file(&swap, "0")?;
                    }
                }
                if *pids {
                    write_file(&dir.join("pids.max"), &limits.pids.to_string())?;
                }
                if *cpu {
                    let quota = limits.cpu_millis.saturating_mul(CPU_PERIOD_US / 1000);
                    write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
            }
            Self::V1 { memory, pids, cpu } => {
                if let Some(dir) = memory {
                    // The memory limit first: memsw may never be below it.
                    write_file(
                        &dir.join("memory.limit_in_bytes"),
                        &limits.memory_bytes.to_string(),
                    )?;
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write_file(&memsw, &limits.memory_bytes.to_string())?;
                    }
                }
                if let Some(dir) = pids {
                    write_file(&dir.join("pids.max"), &limits.pids.to_string())?;
                }
                if let Some(dir) = cpu {
                    write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    let quota = limits.cpu_millis.saturating_mul(CPU_PERIOD_US / 1000);
                    write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes itself into.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// Every live process in the cgroup(s) (host pids).
    pub(crate) fn pids(&self) -> BTreeSet<i32> {
        self.dirs()
            .into_iter()
            .flat_map(|dir| {
                fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|pid| pid.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .filter(|pid| !super::procfs::is_gone(*pid))
            .collect()
    }

    /// SIGKILLs every process in the cgroup once (v2: through `cgroup.kill` when the
    /// kernel has it). Returns whether any process was found.
    pub(crate) fn kill_pass(&self) -> bool {
        if let Self::V2 { dir, .. } = self {
            let kill = dir.join("cgroup.kill");
            if kill.exists() && write_file(&kill, "1").is_ok() {
                return !self.pids().is_empty();
            }
        }
        let pids = self.pids();
        for pid in &pids {
            super::procfs::sigkill(*pid);
        }
        !pids.is_empty()
    }

    /// Kills until no process is left, for at most `grace`.
    pub(crate) async fn kill_until_empty(&self, grace: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if !self.kill_pass() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let left = self.pids();
                return Err(format!(
                    "{} process(es) still in {} after {grace:?}: {left:?}",
                    left.len(),
                    self.dirs()
                        .first()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the kernel OOM-killed a process of this cgroup.
    pub(crate) fn oom_killed(&self) -> bool {
        match self {
            Self::V2 { dir, memory, .. } => {
                *memory
                    && fs::read_to_string(dir.join("memory.events"))
                        .ok()
                        .and_then(|text| counter(&text, "oom_kill"))
                        .is_some_and(|n| n > 0)
            }
            Self::V1 { memory, .. } => memory.as_ref().is_some_and(|dir| {
                let control =
                    fs::read_to_string(dir.join("memory.oom_control")).unwrap_or_default();
                match counter(&control, "oom_kill") {
                    Some(kills) => kills > 0,
                    // Kernels before 4.13 have no counter: hitting the limit while
                    // under OOM is the best sign there is.
                    None => {
                        let failcnt = fs::read_to_string(dir.join("memory.failcnt"))
                            .ok()
                            .and_then(|t| t.trim().parse::<u64>().ok())
                            .unwrap_or(0);
                        failcnt > 0 && counter(&control, "under_oom").is_some_and(|n| n > 0)
                    }
                }
            }),
        }
    }

    /// Removes the (empty) cgroup(s); missing ones are fine. The kernel may need a
    /// moment after the last process died, so busy directories are retried within
    /// `grace`.
    pub(crate) async fn remove(&self, grace: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + grace;
        for dir in self.dirs() {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        tracing::debug!(cgroup = %dir.display(), error = %e, "cgroup not removable yet");
                        self.kill_pass();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(with_path(dir, e)),
                }
            }
        }
        Ok(())
    }
}

/// The value of `key N` in a flat-keyed cgroup file.
pub(crate) fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key)).then(|| words.next()?.parse().ok())?
    })
}

/// Whether this process may create cgroups in `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn read_words(path: &Path) -> BTreeSet<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| with_path(path, e))
}

fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_keyed_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(counter(v1, "oom_kill"), Some(3));
        assert_eq!(counter(v1, "under_oom"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), Some(1));
        assert_eq!(counter(v2, "missing"), None);
    }

    #[test]
    fn sandbox_paths_follow_the_hierarchy() {
        let v1 = Cgroups::V1 {
            memory: Some("/cg/memory/airlock".into()),
            pids: None,
            cpu: Some("/cg/cpu/airlock".into()),
        };
        let sandbox = v1.sandbox("sb").expect("v1 cgroup");
        assert_eq!(
            sandbox.procs_files(),
            [
                PathBuf::from("/cg/memory/airlock/sb/cgroup.procs"),
                PathBuf::from("/cg/cpu/airlock/sb/cgroup.procs")
            ]
        );
        assert!(v1.has_memory());
        let v2 = Cgroups::V2 {
            parent: "/cg/airlock".into(),
            memory: false,
            pids: true,
            cpu: true,
        };
        assert_eq!(
            v2.sandbox("sb").expect("v2 cgroup").dirs(),
            [Path::new("/cg/airlock/sb")]
        );
        assert!(!v2.has_memory());
        assert_eq!(Cgroups::Unavailable.sandbox("sb"), None);
    }
}
