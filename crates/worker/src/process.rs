//! Starting the program in its own process group, and ending that group.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::config::{EVENTS_VAR, WORKER_PREFIX};

/// How often to look whether the group is gone during the kill grace.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// The command for the program: own process group, stdin from /dev/null, stdout and
/// stderr piped, environment without `AIRLOCK_WORKER_*`.
pub fn command(program: &OsStr, args: &[OsString], events_env: Option<&Path>) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    for (key, _) in std::env::vars_os() {
        if key.as_bytes().starts_with(WORKER_PREFIX.as_bytes()) {
            cmd.env_remove(&key);
        }
    }
    if let Some(path) = events_env {
        cmd.env(EVENTS_VAR, path);
    }
    cmd
}

/// Sends `signal` to every process of group `pgid`.
pub fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid <= 1 {
        return; // never signal "every process" or init's group by mistake
    }
    // SAFETY: killpg has no memory-safety preconditions.
    if unsafe { libc::killpg(pgid, signal) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            eprintln!("airlock-worker: cannot signal process group {pgid}: {err}");
        }
    }
}

/// Whether any process of group `pgid` is still running. Zombies do not count: once the
/// program is gone its orphans are reaped by whoever is init, maybe late.
fn group_running(pgid: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No /proc: fall back to asking the kernel, zombies included.
        // SAFETY: signal 0 only checks for existence; no memory-safety preconditions.
        let found = unsafe { libc::killpg(pgid, 0) } == 0;
        return found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| running_in_group(&stat))
            == Some(pgid)
    })
}

/// The process group of a `/proc/<pid>/stat` line, unless the process is a zombie.
fn running_in_group(stat: &str) -> Option<libc::pid_t> {
    // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    (state != "Z" && state != "X").then_some(pgrp)
}

/// Ends the program's group: SIGTERM, up to `grace` for it to go away, then SIGKILL.
/// Returns the program's exit status.
pub async fn terminate(
    child: &mut Child,
    pgid: libc::pid_t,
    grace: Duration,
) -> io::Result<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let status = tokio::time::timeout_at(deadline, child.wait()).await.ok();
    while status.is_some() && Instant::now() < deadline && group_running(pgid) {
        tokio::time::sleep(GROUP_POLL.min(deadline - Instant::now())).await;
    }
    signal_group(pgid, libc::SIGKILL);
    match status {
        Some(status) => status,
        None => child.wait().await,
    }
}

/// How the program ended, for the `Exit` event and the worker's own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The worker's exit code: the program's code, or 128 + signal.
    pub worker_code: i32,
}

impl Ending {
    pub fn of(status: &io::Result<ExitStatus>) -> Self {
        match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Self {
                    code: Some(code),
                    signal: None,
                    worker_code: code,
                },
                (None, Some(sig)) => Self {
                    code: None,
                    signal: Some(sig),
                    worker_code: 128 + sig,
                },
                (None, None) => Self {
                    code: None,
                    signal: None,
                    worker_code: 1,
                },
            },
            Err(e) => {
                eprintln!("airlock-worker: cannot wait for the program: {e}");
                Self {
                    code: None,
                    signal: None,
                    worker_code: 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read() {
        assert_eq!(running_in_group("42 (sh) S 1 40 40 0 -1"), Some(40));
        assert_eq!(running_in_group("42 (a) b) (c) R 1 41 41 0"), Some(41));
        assert_eq!(running_in_group("42 (sleep) Z 1 40 40 0"), None);
        assert_eq!(running_in_group("garbage"), None);
    }

    #[test]
    fn own_group_is_running() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() };
        assert!(group_running(own));
    }
}
