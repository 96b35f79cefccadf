//! The pool of host uids sandboxes run as when the orchestrator is root.
//!
//! Slot `i` is uid (and gid) `base + i`. A uid belongs to at most one live sandbox, so a
//! per-uid limit (RLIMIT_NPROC) binds per sandbox, file permissions keep sandboxes out
//! of each other's scratch directories, and "every process of this uid" is exactly
//! "every process of this sandbox".

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

#[derive(Debug)]
pub(crate) struct UidPool {
    base: u32,
    slots: u32,
    used: Mutex<BTreeSet<u32>>,
}

impl UidPool {
    pub(crate) fn new(base: u32, slots: u32) -> Self {
        Self {
            base,
            slots,
            used: Mutex::new(BTreeSet::new()),
        }
    }

    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    /// Whether `uid` is one of the pool's.
    pub(crate) fn contains(&self, uid: u32) -> bool {
        uid >= self.base && uid - self.base < self.slots
    }

    /// Marks `uid` as taken (a sandbox left by an earlier process still holds it).
    pub(crate) fn reserve(&self, uid: u32) {
        if self.contains(uid) {
            self.lock().insert(uid);
        }
    }

    /// Takes the lowest free uid that no process currently runs as (`busy`); `None`
    /// when every slot is taken.
    pub(crate) fn allocate(&self, busy: &HashSet<u32>) -> Option<u32> {
        let mut used = self.lock();
        let uid = (0..self.slots)
            .map(|slot| self.base + slot)
            .find(|uid| !used.contains(uid) && !busy.contains(uid))?;
        used.insert(uid);
        Some(uid)
    }

    /// Gives `uid` back; idempotent.
    pub(crate) fn release(&self, uid: u32) {
        self.lock().remove(&uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_uids_until_full_and_reuses_released_ones() {
        let pool = UidPool::new(200_000, 3);
        let none = HashSet::new();
        assert_eq!(pool.allocate(&none), Some(200_000));
        assert_eq!(pool.allocate(&none), Some(200_001));
        assert_eq!(pool.allocate(&none), Some(200_002));
        assert_eq!(pool.allocate(&none), None);
        pool.release(200_001);
        pool.release(200_001);
        assert_eq!(pool.allocate(&none), Some(200_001));
    }

    #[test]
    fn skips_uids_with_live_processes_and_reserved_ones() {
        let pool = UidPool::new(10, 3);
        pool.reserve(10);
        pool.reserve(99);
        let busy = HashSet::from([11]);
        assert_eq!(pool.allocate(&busy), Some(12));
        assert_eq!(pool.allocate(&busy), None);
        assert!(pool.contains(12) && !pool.contains(13) && !pool.contains(9));
    }
}
