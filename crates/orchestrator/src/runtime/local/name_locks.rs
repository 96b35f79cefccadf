//! One async lock per sandbox name: creating and removing one sandbox never waits for
//! another sandbox's set-up or tear-down, while two operations on the same name (a
//! redelivered request racing its original, a remove racing a create) still run one
//! after the other. A name's lock is forgotten once nobody holds or waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Default)]
pub(crate) struct NameLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while one operation on a sandbox runs.
pub(crate) struct NameGuard<'a> {
    locks: &'a NameLocks,
    name: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl NameLocks {
    pub(crate) async fn lock(&self, name: &str) -> NameGuard<'_> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(name.to_owned()).or_default())
        };
        let guard = mutex.lock_owned().await;
        NameGuard {
            locks: self,
            name: name.to_owned(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for NameGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self
            .locks
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map holds it now: nobody waits for this name.
        if locks
            .get(&self.name)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            locks.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_name_waits_for_itself_but_not_for_others() {
        let locks = Arc::new(NameLocks::default());
        let first = locks.lock("a").await;
        // Another name is not held up.
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("b"))
            .await
            .expect("another name locks at once");
        drop(other);
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _second = locks.lock("a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the same name waits");
        drop(first);
        waiter.await.expect("the waiter gets the lock");
        assert_eq!(locks.len(), 0, "unused locks are forgotten");
    }
}
