//! The pool of host uids sandboxes run as when the orchestrator is root.
//!
//! Slot `i` is uid (and gid) `base + i`. A uid belongs to at most one live sandbox on the
//! whole host: besides this process's own bookkeeping, taking a uid takes a host-wide
//! lock (`<lock dir>/<uid>`, see [`HostLock`]) that every orchestrator on the machine
//! respects, whichever replica or installation it belongs to, and a uid any process runs
//! as is skipped. So a per-uid limit (RLIMIT_NPROC) binds per sandbox, file permissions
//! keep sandboxes out of each other's scratch directories, and "every process of this
//! uid" is exactly "every process of this sandbox".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::host_lock::HostLock;

#[derive(Debug)]
pub(crate) struct UidPool {
    base: u32,
    slots: u32,
    /// Where the host-wide uid locks live; `None` when sandboxes share this process's
    /// uid (not root), so there is nothing to allocate.
    lock_dir: Option<PathBuf>,
    used: Mutex<BTreeMap<u32, Option<HostLock>>>,
}

impl UidPool {
    pub(crate) fn new(base: u32, slots: u32, lock_dir: Option<PathBuf>) -> Self {
        Self {
            base,
            slots,
            lock_dir,
            used: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    /// Whether `uid` is one of the pool's.
    pub(crate) fn contains(&self, uid: u32) -> bool {
        uid >= self.base && uid - self.base < self.slots
    }

    /// Takes `uid` (a leftover sandbox of this replica, or of a dead one, ran as it):
    /// `true` when this process holds it now, so killing its processes is ours to do.
    pub(crate) fn reserve(&self, uid: u32) -> bool {
        if !self.contains(uid) {
            return false;
        }
        let mut used = self.lock();
        if used.contains_key(&uid) {
            return true;
        }
        match self.host_lock(uid) {
            Some(lock) => {
                used.insert(uid, lock);
                true
            }
            None => false,
        }
    }

    /// Takes the lowest uid that is free here, on the host (its lock), and that no
    /// process runs as (`in_use`, asked only of a uid whose lock was free); `None` when
    /// every slot is taken.
    pub(crate) fn allocate(&self, in_use: impl Fn(u32) -> bool) -> Option<u32> {
        let mut used = self.lock();
        for uid in (0..self.slots).map(|slot| self.base + slot) {
            if used.contains_key(&uid) {
                continue;
            }
            if let Some(lock) = self.host_lock(uid) {
                if in_use(uid) {
                    // Dropping the lock lets it go again.
                    continue;
                }
                used.insert(uid, lock);
                return Some(uid);
            }
        }
        None
    }

    /// Whether this process holds `uid`.
    pub(crate) fn holds(&self, uid: u32) -> bool {
        self.lock().contains_key(&uid)
    }

    /// Gives `uid` back (and its host lock); idempotent.
    pub(crate) fn release(&self, uid: u32) {
        self.lock().remove(&uid);
    }

    /// `Some(lock)` when the uid's host lock was taken (`Some(None)`: no lock directory).
    fn host_lock(&self, uid: u32) -> Option<Option<HostLock>> {
        let Some(dir) = &self.lock_dir else {
            return Some(None);
        };
        match HostLock::try_take(&dir.join(uid.to_string())) {
            Ok(Some(lock)) => Some(Some(lock)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, uid, dir = %dir.display(), "cannot lock a sandbox uid; skipping it");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Option<HostLock>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("airlock-uids-{name}-{}", std::process::id()))
    }

    #[test]
    fn allocates_distinct_uids_until_full_and_reuses_released_ones() {
        let pool = UidPool::new(200_000, 3, None);
        let none = |_| false;
        assert_eq!(pool.allocate(none), Some(200_000));
        assert_eq!(pool.allocate(none), Some(200_001));
        assert_eq!(pool.allocate(none), Some(200_002));
        assert_eq!(pool.allocate(none), None);
        pool.release(200_001);
        pool.release(200_001);
        assert_eq!(pool.allocate(none), Some(200_001));
    }

    #[test]
    fn skips_uids_with_live_processes_and_reserved_ones() {
        let pool = UidPool::new(10, 3, None);
        assert!(pool.reserve(10));
        assert!(!pool.reserve(99));
        let busy = |uid| uid == 11;
        assert_eq!(pool.allocate(busy), Some(12));
        assert_eq!(pool.allocate(busy), None);
        assert!(pool.contains(12) && !pool.contains(13) && !pool.contains(9));
    }

    #[test]
    fn two_pools_sharing_a_host_never_hand_out_the_same_uid() {
        // Two installations with the same uid base on one machine.
        let dir = lock_dir("shared");
        let first = UidPool::new(500_000, 4, Some(dir.clone()));
        let second = UidPool::new(500_000, 4, Some(dir.clone()));
        let none = |_| false;
        let mut handed: Vec<u32> = Vec::new();
        for _ in 0..2 {
            handed.extend(first.allocate(none));
            handed.extend(second.allocate(none));
        }
        handed.sort_unstable();
        assert_eq!(handed, vec![500_000, 500_001, 500_002, 500_003]);
        assert_eq!(
            first.allocate(none),
            None,
            "every uid is held by one of them"
        );
        assert!(!second.reserve(500_000) || !first.reserve(500_000));
        second.release(500_001);
        second.release(500_003);
        assert_eq!(
            first.allocate(none),
            Some(500_001),
            "released uids are free again"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
