//! When the worker is the sandbox's pid 1 (the local runtime starts bubblewrap with
//! `--as-pid-1`, so no separate init process is needed), every process the program
//! leaves behind is reparented to the worker. This reaps them as they end, so they hold
//! no pid (zombies count against the sandbox's process limit). The program itself is
//! left to its `Child` handle. When the worker exits, the kernel ends whatever is left
//! in the namespace.

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// Starts reaping when this process is pid 1; `program` is the pid not to touch.
pub fn spawn_if_init(program: libc::pid_t) -> Option<JoinHandle<()>> {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        return None;
    }
    let mut children = match signal(SignalKind::child()) {
        Ok(children) => children,
        Err(e) => {
            eprintln!("airlock-worker: cannot watch for ended processes: {e}");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        reap(program);
        while children.recv().await.is_some() {
            reap(program);
        }
    }))
}

/// Reaps every ended child of this process but `program`.
fn reap(program: libc::pid_t) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if pid == program {
            continue;
        }
        let ended_child = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .is_some_and(|stat| is_ended_child_of_init(&stat));
        if ended_child {
            let mut status = 0;
            // SAFETY: waitpid writes only to `status`; WNOHANG never blocks.
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
    }
}

/// Whether a `/proc/<pid>/stat` line is of a zombie whose parent is pid 1.
fn is_ended_child_of_init(stat: &str) -> bool {
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 1..].split_whitespace();
    matches!((fields.next(), fields.next()), (Some("Z"), Some("1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ended_children_of_init_are_reaped() {
        assert!(is_ended_child_of_init("7 (sleep) Z 1 7 7 0"));
        assert!(is_ended_child_of_init("7 (a) b) Z 1 7 7 0"));
        assert!(!is_ended_child_of_init("7 (sleep) S 1 7 7 0"));
        assert!(!is_ended_child_of_init("7 (sleep) Z 2 7 7 0"));
        assert!(!is_ended_child_of_init("garbage"));
    }
}
