//! Host-wide exclusive locks (`flock` on a file): what one orchestrator process holds on
//! this machine, no other process can take — not another replica, not another
//! installation — and the kernel lets go when the process dies, however it dies.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A lock held for as long as this value lives.
#[derive(Debug)]
pub(crate) struct HostLock {
    path: PathBuf,
    _file: File,
}

impl HostLock {
    /// Takes the lock at `path` if no process holds it; `Ok(None)` when one does.
    pub(crate) fn try_take(path: &Path) -> io::Result<Option<Self>> {
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is involved.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if taken == 0 {
            return Ok(Some(Self {
                path: path.to_owned(),
                _file: file,
            }));
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(error)
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_cannot_be_taken_again_until_dropped() {
        let dir = std::env::temp_dir().join(format!("airlock-lock-{}", std::process::id()));
        let path = dir.join("200000");
        let held = HostLock::try_take(&path).expect("lock").expect("free");
        assert!(HostLock::try_take(&path).expect("lock").is_none());
        drop(held);
        assert!(HostLock::try_take(&path).expect("lock").is_some());
        let _ = fs::remove_dir_all(dir);
    }
}
