//! Per-process limits and what the forked child does before it executes bwrap.
//!
//! [`Rlimits::for_request`] derives the rlimits from a request's resources. [`ChildSetup`]
//! holds everything the child needs, prepared before the fork (paths as `CString`s), and
//! [`ChildSetup::apply`] runs in the child between fork and exec using only
//! async-signal-safe calls: it joins the sandbox's cgroups, sets the rlimits and drops to
//! the sandbox's host uid/gid with no supplementary groups. The privilege drop is done
//! here rather than with `Command::uid/gid` because the standard library runs `pre_exec`
//! hooks after its own `setuid`, and joining a root-owned cgroup needs root.

use airlock_core::spec::Resources;
use std::ffi::CString;
use std::io;

/// Most processes (tasks) of one sandbox; the same number as the cgroup pids limit.
pub(crate) const MAX_PROCESSES: u64 = 512;
/// Most open files per process.
pub(crate) const MAX_OPEN_FILES: u64 = 1024;
/// Largest file a process may write.
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 30;
/// CPU seconds on top of `timeout x cores`, so the wall-clock timeout normally wins.
pub(crate) const CPU_SLACK_SECS: u64 = 60;

/// An rlimit this runtime sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Nproc,
    Nofile,
    Fsize,
    Core,
    Cpu,
    AddressSpace,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type RawResource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type RawResource = libc::c_int;

impl Resource {
    fn raw(self) -> RawResource {
        match self {
            Self::Nproc => libc::RLIMIT_NPROC,
            Self::Nofile => libc::RLIMIT_NOFILE,
            Self::Fsize => libc::RLIMIT_FSIZE,
            Self::Core => libc::RLIMIT_CORE,
            Self::Cpu => libc::RLIMIT_CPU,
            Self::AddressSpace => libc::RLIMIT_AS,
        }
    }
}

/// The rlimits of one sandbox (soft = hard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rlimits(pub Vec<(Resource, u64)>);

impl Rlimits {
    /// `nproc` is the process limit to apply: [`MAX_PROCESSES`] when the sandbox has its
    /// own uid; when it runs as the orchestrator's user, that user's current task count
    /// plus [`MAX_PROCESSES`] (RLIMIT_NPROC counts every task of the real uid).
    /// `memory_cgroup` says whether a cgroup enforces the memory limit; without one the
    /// address space is capped at the memory limit instead.
    pub(crate) fn for_request(
        resources: &Resources,
        timeout_secs: u64,
        nproc: u64,
        memory_cgroup: bool,
    ) -> Self {
        let cores = resources.cpu_millis().div_ceil(1000).max(1);
        let mut limits = vec![
            (Resource::Nproc, nproc),
            (Resource::Nofile, MAX_OPEN_FILES),
            (Resource::Fsize, MAX_FILE_BYTES),
            (Resource::Core, 0),
            (
                Resource::Cpu,
                timeout_secs
                    .saturating_mul(cores)
                    .saturating_add(CPU_SLACK_SECS),
            ),
        ];
        if !memory_cgroup {
            limits.push((Resource::AddressSpace, resources.memory_bytes()));
        }
        Self(limits)
    }
}

/// Everything the forked child does before exec, prepared in the parent.
#[derive(Debug, Clone)]
pub(crate) struct ChildSetup {
    /// `cgroup.procs` files to write the child's pid ("0" = the writer) into.
    pub cgroup_procs: Vec<CString>,
    pub rlimits: Rlimits,
    /// Host uid and gid to switch to; `None` keeps the orchestrator's user.
    pub user: Option<(u32, u32)>,
}

impl ChildSetup {
    /// Runs in the child after fork and before exec.
    ///
    /// # Safety
    /// Must only be called in a freshly forked child (a `pre_exec` hook): it changes the
    /// calling process's cgroups, limits, credentials and descriptor flags. It calls only
    /// async-signal-safe functions and does not allocate.
    pub(crate) unsafe fn apply(&self) -> io::Result<()> {
        // No descriptor of the orchestrator (database or broker connections included)
        // may reach the sandbox: mark everything above stdio close-on-exec. (Marking,
        // not closing, keeps the standard library's own exec-error pipe working.)
        // SAFETY: close_range only changes descriptor flags.
        let marked = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if marked != 0 {
            // Kernels before 5.11: do it one descriptor at a time.
            for fd in 3..MAX_OPEN_FILES as libc::c_int * 64 {
                // SAFETY: F_SETFD on a closed descriptor just fails with EBADF.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }

        for path in &self.cgroup_procs {
            // SAFETY: `path` is a valid NUL-terminated string; open/write/close are
            // async-signal-safe.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(error);
                }
            }
        }

        for (resource, value) in &self.rlimits.0 {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit/setrlimit write/read the struct we pass.
            unsafe {
                if libc::getrlimit(resource.raw(), &mut current) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Never try to raise a hard limit (only root could).
                let value = (*value as libc::rlim_t).min(current.rlim_max);
                let limit = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                if libc::setrlimit(resource.raw(), &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }

        if let Some((uid, gid)) = self.user {
            // SAFETY: credential calls are async-signal-safe; setgroups(0, NULL) clears
            // the supplementary groups.
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // Belt and braces: never exec as root by accident.
                if libc::getuid() != uid
                    || libc::geteuid() != uid
                    || libc::getegid() != gid
                    || uid == 0
                {
                    return Err(io::Error::from_raw_os_error(libc::EPERM));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(cpu: &str, memory: &str) -> Resources {
        Resources {
            cpu: cpu.into(),
            memory: memory.into(),
            gpu: 0,
        }
    }

    #[test]
    fn limits_follow_the_resources() {
        let limits = Rlimits::for_request(&resources("1500m", "64Mi"), 100, 512, true);
        assert_eq!(
            limits.0,
            vec![
                (Resource::Nproc, 512),
                (Resource::Nofile, 1024),
                (Resource::Fsize, 1 << 30),
                (Resource::Core, 0),
                (Resource::Cpu, 100 * 2 + 60),
            ]
        );
        let limits = Rlimits::for_request(&resources("250m", "64Mi"), 10, 700, false);
        assert!(limits.0.contains(&(Resource::Cpu, 70)));
        assert!(limits.0.contains(&(Resource::Nproc, 700)));
        assert!(limits.0.contains(&(Resource::AddressSpace, 64 << 20)));
    }
}
