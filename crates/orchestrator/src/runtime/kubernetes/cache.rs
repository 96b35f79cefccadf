//! One watcher (a kube-rs reflector) over every Airlock pod of the namespace. Its cache is
//! what the runtime reads: pod states, capacity and the reaper's view all come from
//! here, never from a counter that could drift. A watch that drops resumes from its last
//! resourceVersion; one that is too old (410 Gone) re-lists, which the reflector applies
//! atomically. Waiters subscribe to one pod and wake only when that pod changes (or on a
//! re-list), so thousands of waiting runs cost nothing per unrelated event.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::phase::{PodView, view};
use super::pod::{RUN_ID, SELECTOR, TEAM};
use airlock_core::{RunId, TeamId};

/// Pods holding resources, by name (a run may have an old attempt's pod as well).
type LiveRuns = Arc<Mutex<HashMap<String, (RunId, TeamId)>>>;

/// The name, run and team of a pod that holds resources (not finished), from its labels.
fn live_run(pod: &Pod) -> Option<(String, (RunId, TeamId))> {
    if matches!(view(pod), PodView::Ended(_)) {
        return None;
    }
    let labels = pod.metadata.labels.as_ref()?;
    Some((
        pod.metadata.name.clone()?,
        (
            RunId::parse(labels.get(RUN_ID)?)?,
            TeamId::parse(labels.get(TEAM)?)?,
        ),
    ))
}

#[derive(Clone)]
pub struct PodCache {
    store: Store<Pod>,
    namespace: String,
    /// Per-pod change counters, for the pods someone waits on.
    subscribers: Arc<Subscribers>,
    /// Runs whose pods hold resources, kept current by the watcher.
    live: LiveRuns,
}

impl PodCache {
    /// Starts the watcher; it runs until `stop`.
    pub fn start(api: Api<Pod>, namespace: String, stop: CancellationToken) -> Self {
        let (store, writer) = reflector::store();
        let subscribers = Arc::new(Subscribers::default());
        let notify = subscribers.clone();
        let live: LiveRuns = Arc::default();
        let live_writer = live.clone();
        let store_reader = store.clone();
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
                    Some(Ok(event)) => {
                        let mut live = live_writer.lock().unwrap_or_else(PoisonError::into_inner);
                        match &event {
                            Event::Apply(pod) => {
                                let name = pod.metadata.name.as_deref().unwrap_or("");
                                match live_run(pod) {
                                    Some((name, run)) => live.insert(name, run),
                                    None => live.remove(name),
                                };
                                notify.notify(name);
                            }
                            Event::Delete(pod) => {
                                let name = pod.metadata.name.as_deref().unwrap_or("");
                                live.remove(name);
                                notify.notify(name);
                            }
                            Event::InitDone => {
                                *live = store_reader
                                    .state()
                                    .iter()
                                    .filter_map(|p| live_run(p))
                                    .collect();
                                notify.notify_all();
                            }
                            Event::Init | Event::InitApply(_) => {}
                        }
                        crate::metrics::live_pods(live.len());
                    }
                    Some(Err(error)) => {
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
            subscribers,
            live,
        }
    }

    /// Waits for the first complete list.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    pub fn get(&self, name: &str) -> Option<Arc<Pod>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    /// The runs whose pods hold resources now.
    pub fn live_runs(&self) -> HashMap<RunId, TeamId> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .copied()
            .collect()
    }

    /// A receiver that wakes when pod `name` changes (or the cache is re-listed).
    pub fn changes_of(&self, name: &str) -> Subscription {
        let mut receiver = self.subscribers.subscribe(name);
        receiver.borrow_and_update();
        Subscription {
            receiver,
            name: name.to_owned(),
            subscribers: self.subscribers.clone(),
        }
    }
}

#[derive(Default)]
struct Subscribers(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Subscribers {
    fn subscribe(&self, name: &str) -> watch::Receiver<u64> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(name.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn notify(&self, name: &str) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = map.get(name) {
            sender.send_modify(|v| *v += 1);
        }
    }

    fn notify_all(&self) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in map.values() {
            sender.send_modify(|v| *v += 1);
        }
    }

    /// Forgets a pod nobody waits on any more.
    fn release(&self, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(name).is_some_and(|s| s.receiver_count() == 0) {
            map.remove(name);
        }
    }
}

/// Wakes on changes of one pod; unsubscribes when dropped.
pub struct Subscription {
    receiver: watch::Receiver<u64>,
    name: String,
    subscribers: Arc<Subscribers>,
}

impl Subscription {
    pub async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The receiver is still counted here; release after it goes.
        let receiver = std::mem::replace(&mut self.receiver, watch::channel(0).1);
        drop(receiver);
        self.subscribers.release(&self.name);
    }
}
