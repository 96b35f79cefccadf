//! One watcher (a kube-rs reflector) over every Airlock pod of the namespace. Its cache is
//! what the runtime reads: pod states, capacity and the reaper's view all come from
//! here, never from a counter that could drift. A watch that drops resumes from its last
//! resourceVersion; one that is too old (410 Gone) re-lists, which the reflector applies
//! atomically.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pod::SELECTOR;

#[derive(Clone)]
pub struct PodCache {
    store: Store<Pod>,
    namespace: String,
    /// Bumped after every watch event.
    changed: watch::Receiver<u64>,
    /// Whether the last watch call succeeded.
    healthy: watch::Receiver<bool>,
}

impl PodCache {
    /// Starts the watcher; it runs until `stop`.
    pub fn start(api: Api<Pod>, namespace: String, stop: CancellationToken) -> Self {
        let (store, writer) = reflector::store();
        let (changed_tx, changed) = watch::channel(0u64);
        let (healthy_tx, healthy) = watch::channel(false);
        let config = watcher::Config::default().labels(SELECTOR);
        let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    event = stream.next() => event,
                };
                match event {
                    Some(Ok(_)) => {
                        healthy_tx.send_if_modified(|h| !std::mem::replace(h, true));
                        changed_tx.send_modify(|v| *v += 1);
                    }
                    Some(Err(error)) => {
                        healthy_tx.send_if_modified(|h| std::mem::replace(h, false));
                        crate::metrics::watch_error();
                        tracing::warn!(%error, "pod watch failed; it resumes with backoff");
                    }
                    None => return,
                }
            }
        });
        Self {
            store,
            namespace,
            changed,
            healthy,
        }
    }

    /// Waits for the first complete list.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Pod>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    /// A receiver that wakes on every change of the cache.
    pub fn changes(&self) -> watch::Receiver<u64> {
        let mut changes = self.changed.clone();
        changes.borrow_and_update();
        changes
    }
}
