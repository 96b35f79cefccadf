//! Each orchestrator replica keeps its sandboxes in its own directory,
//! `<sandbox dir>/<replica id>/`, locked host-wide by `<sandbox dir>/<replica id>.lock`
//! for as long as the replica's process lives. Replicas sharing a machine (and a sandbox
//! directory) so never list, stop or remove each other's sandboxes; a directory whose lock
//! is free belongs to a replica that died, and the next replica to start takes its
//! sandboxes over to clean them up.

use std::fs;
use std::path::{Path, PathBuf};

use super::host_lock::HostLock;
use super::state;
use crate::runtime::RuntimeError;

const LOCK_SUFFIX: &str = ".lock";

/// This replica's sandbox directory, locked.
#[derive(Debug)]
pub struct ReplicaDir {
    state_dir: PathBuf,
    _lock: HostLock,
}

impl ReplicaDir {
    /// Locks and prepares `<sandbox_dir>/<replica_id>/`.
    pub fn take(sandbox_dir: &Path, replica_id: &str) -> Result<Self, RuntimeError> {
        if !state::valid_name(replica_id) {
            return Err(RuntimeError::Failed(format!(
                "the replica id `{replica_id}` cannot name a directory (letters, digits, `-`, `_` and `.` only)"
            )));
        }
        // SAFETY: geteuid has no preconditions.
        let others_search = unsafe { libc::geteuid() } == 0;
        state::prepare_state_dir(sandbox_dir, others_search).map_err(RuntimeError::Failed)?;
        let lock_path = sandbox_dir.join(format!("{replica_id}{LOCK_SUFFIX}"));
        let lock = HostLock::try_take(&lock_path)
            .map_err(|e| RuntimeError::Failed(format!("cannot lock {}: {e}", lock_path.display())))?
            .ok_or_else(|| {
                RuntimeError::Failed(format!(
                    "another process on this host is replica `{replica_id}` (it holds {}): give each replica its own AIRLOCK_REPLICA_ID",
                    lock_path.display()
                ))
            })?;
        let state_dir = sandbox_dir.join(replica_id);
        state::prepare_state_dir(&state_dir, others_search).map_err(RuntimeError::Failed)?;
        Ok(Self {
            state_dir,
            _lock: lock,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Moves the sandboxes of replicas that died on this host into this replica's
    /// directory (where start-up cleanup stops and removes them); returns the dead
    /// replicas' ids. A replica that still lives holds its lock and is left alone.
    pub fn take_over_dead(&self, sandbox_dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(sandbox_dir) else {
            return Vec::new();
        };
        let mut dead = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(LOCK_SUFFIX) else {
                continue;
            };
            let dir = sandbox_dir.join(id);
            if dir == self.state_dir || !state::valid_name(id) {
                continue;
            }
            let Ok(Some(lock)) = HostLock::try_take(&entry.path()) else {
                continue;
            };
            for sandbox in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let target = self.state_dir.join(sandbox.file_name());
                if let Err(error) = fs::rename(sandbox.path(), &target) {
                    tracing::warn!(%error, from = %sandbox.path().display(), "cannot take over a dead replica's sandbox");
                }
            }
            let _ = fs::remove_dir(&dir);
            let _ = fs::remove_file(lock.path());
            tracing::warn!(
                replica = id,
                "took over the sandboxes of a replica that died on this host"
            );
            dead.push(id.to_owned());
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_replicas_directory_is_left_alone_and_a_dead_ones_is_taken_over() {
        let root =
            std::env::temp_dir().join(format!("airlock-replica-dirs-{}", std::process::id()));
        let alive = ReplicaDir::take(&root, "orchestrator-a").expect("a");
        assert!(
            ReplicaDir::take(&root, "orchestrator-a").is_err(),
            "one process per replica id"
        );
        let dead = ReplicaDir::take(&root, "orchestrator-b").expect("b");
        fs::create_dir(dead.state_dir().join("airlock-run-1")).expect("sandbox of b");
        fs::create_dir(alive.state_dir().join("airlock-run-2")).expect("sandbox of a");
        drop(dead);
        let me = ReplicaDir::take(&root, "orchestrator-c").expect("c");
        assert_eq!(me.take_over_dead(&root), vec!["orchestrator-b".to_owned()]);
        assert!(
            me.state_dir().join("airlock-run-1").is_dir(),
            "b's sandbox moved to c"
        );
        assert!(
            alive.state_dir().join("airlock-run-2").is_dir(),
            "a's sandbox untouched"
        );
        assert!(!root.join("orchestrator-b").exists());
        let _ = fs::remove_dir_all(root);
    }
}
