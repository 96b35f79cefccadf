//! Sandboxes known only from disk, left by an earlier orchestrator process: whether
//! anything of them still runs, and killing it. They are found by their recorded bwrap
//! pid (checked against its start time), their cgroup and their pool uid.

use super::cgroup::{Cgroups, SandboxCgroup};
use super::procfs;
use super::state::Meta;
use super::uids::UidPool;
use crate::runtime::RuntimeError;
use std::time::Duration;

pub(crate) struct Leftover<'m> {
    name: String,
    meta: &'m Meta,
    cgroup: Option<SandboxCgroup>,
    /// Only a pool uid this process holds identifies the sandbox's processes (another
    /// holder's processes are not ours to kill).
    pool_uid: Option<u32>,
}

impl<'m> Leftover<'m> {
    pub(crate) fn new(name: &str, meta: &'m Meta, cgroups: &Cgroups, uids: &UidPool) -> Self {
        Self {
            name: name.to_owned(),
            meta,
            cgroup: cgroups.sandbox(name),
            pool_uid: meta.host_uid.filter(|uid| uids.holds(*uid)),
        }
    }

    fn recorded_pid(&self) -> Option<i32> {
        self.meta
            .pid
            .filter(|pid| procfs::is_running(*pid, self.meta.pid_start))
            .and_then(|pid| i32::try_from(pid).ok())
    }

    /// Whether any of its processes still runs.
    pub(crate) fn alive(&self) -> bool {
        self.recorded_pid().is_some()
            || self.cgroup.as_ref().is_some_and(|c| !c.pids().is_empty())
            || self
                .pool_uid
                .is_some_and(|uid| !procfs::pids_of_uid(uid).is_empty())
    }

    /// SIGKILLs everything of it until nothing is left, for at most `grace`.
    #[tracing::instrument(skip_all, fields(sandbox = %self.name))]
    pub(crate) async fn kill(&self, grace: Duration) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let mut found = false;
            if let Some(pid) = self.recorded_pid() {
                found = true;
                procfs::sigkill(pid);
            }
            if let Some(cgroup) = &self.cgroup {
                found |= cgroup.kill_pass();
            }
            if let Some(uid) = self.pool_uid {
                for pid in procfs::pids_of_uid(uid) {
                    found = true;
                    procfs::sigkill(pid);
                }
            }
            if !found {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Failed(format!(
                    "processes of sandbox {} survived {grace:?} of SIGKILL",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
