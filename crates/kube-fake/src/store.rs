//! The API server's objects and their change history. Every change gets the next
//! resourceVersion; watches replay the history after the version they start from, and a
//! version older than the history reaches back answers 410 Gone.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// The API server's limit on an object's annotations, keys and values together.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// Changes kept for watches; older ones are compacted away.
const HISTORY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Pods,
    NetworkPolicies,
}

impl Resource {
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Pods => "v1",
            Self::NetworkPolicies => "networking.k8s.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Self::Pods => "Pod",
            Self::NetworkPolicies => "NetworkPolicy",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::NetworkPolicies => "networkpolicies",
        }
    }
}

/// An API failure, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub fn not_found(resource: Resource, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", resource.plural()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub version: u64,
    pub resource: Resource,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

type Key = (Resource, String, String);

struct Inner {
    version: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Watches from a version below this answer 410 Gone.
    compacted: u64,
    created: HashMap<Resource, u64>,
    creation_times: Vec<(String, DateTime<Utc>)>,
}

pub struct Store {
    inner: Mutex<Inner>,
    /// The latest resourceVersion, for watches waiting on changes.
    latest: watch::Sender<u64>,
    /// Bumped to end every open watch.
    watch_generation: watch::Sender<u64>,
    available: watch::Sender<bool>,
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Store {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                version: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                compacted: 0,
                created: HashMap::new(),
                creation_times: Vec::new(),
            }),
            latest: watch::channel(1).0,
            watch_generation: watch::channel(0).0,
            available: watch::channel(true).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.watch_generation.subscribe()
    }

    pub fn drop_watches(&self) {
        self.watch_generation.send_modify(|g| *g += 1);
    }

    pub fn is_available(&self) -> bool {
        *self.available.borrow()
    }

    pub fn set_available(&self, available: bool) {
        self.available.send_replace(available);
        if !available {
            self.drop_watches();
        }
    }

    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.version;
        inner.history.clear();
    }

    fn record(
        &self,
        inner: &mut Inner,
        resource: Resource,
        namespace: &str,
        kind: &'static str,
        object: Value,
    ) {
        inner.history.push(Change {
            version: inner.version,
            resource,
            namespace: namespace.to_owned(),
            kind,
            object,
        });
        if inner.history.len() > HISTORY {
            let drop = inner.history.len() - HISTORY / 2;
            inner.compacted = inner.history[drop - 1].version;
            inner.history.drain(..drop);
        }
        self.latest.send_replace(inner.version);
    }

    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn list(&self, resource: Resource, namespace: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every object of `resource` in every namespace, with the current version.
    pub fn list_all(&self, resource: Resource) -> (Vec<(String, Value)>, u64) {
        let inner = self.lock();
        let objects = inner
            .objects
            .iter()
            .filter(|((r, _, _), _)| *r == resource)
            .map(|((_, ns, _), v)| (ns.clone(), v.clone()))
            .collect();
        (objects, inner.version)
    }

    pub fn create(
        &self,
        resource: Resource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, Failure> {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() || name.len() > 253 || !is_dns_subdomain(&name) {
            return Err(Failure {
                code: 422,
                reason: "Invalid",
                message: format!(
                    "{} \"{name}\" is invalid: metadata.name: Invalid value",
                    resource.plural()
                ),
            });
        }
        let annotations: usize = object["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if annotations > MAX_ANNOTATION_BYTES {
            return Err(Failure {
                code: 422,
                reason: "Invalid",
                message: format!(
                    "{} \"{name}\" is invalid: metadata.annotations: Too long: must have at most {MAX_ANNOTATION_BYTES} bytes",
                    resource.kind()
                ),
            });
        }
        let mut inner = self.lock();
        let key = (resource, namespace.to_owned(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(Failure {
                code: 409,
                reason: "AlreadyExists",
                message: format!("{} \"{name}\" already exists", resource.plural()),
            });
        }
        inner.version += 1;
        let version = inner.version;
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind());
        let metadata = &mut object["metadata"];
        metadata["namespace"] = json!(namespace);
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["creationTimestamp"] = json!(now_rfc3339());
        metadata["resourceVersion"] = json!(version.to_string());
        if resource == Resource::Pods && object["status"]["phase"].is_null() {
            object["status"] = json!({"phase": "Pending", "qosClass": "Guaranteed"});
        }
        inner.objects.insert(key, object.clone());
        *inner.created.entry(resource).or_default() += 1;
        if resource == Resource::Pods {
            inner.creation_times.push((name, Utc::now()));
        }
        self.record(&mut inner, resource, namespace, "ADDED", object.clone());
        Ok(object)
    }

    /// Changes an object's status in place (the kubelet's and the status subresource's
    /// write); `None` when the object is gone.
    pub fn update(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let mut inner = self.lock();
        inner.version += 1;
        let version = inner.version;
        let object = inner
            .objects
            .get_mut(&(resource, namespace.to_owned(), name.to_owned()))?;
        change(object);
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let object = object.clone();
        self.record(&mut inner, resource, namespace, "MODIFIED", object.clone());
        Some(object)
    }

    /// Keeps a copy of an object another API server holds, as it is there: inserted when
    /// new (ADDED), otherwise changed by `merge` (MODIFIED).
    pub fn mirror(
        &self,
        resource: Resource,
        namespace: &str,
        object: Value,
        merge: impl FnOnce(&mut Value, Value),
    ) {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let mut inner = self.lock();
        inner.version += 1;
        let key = (resource, namespace.to_owned(), name.clone());
        let (kind, stored) = match inner.objects.get_mut(&key) {
            Some(current) => {
                merge(current, object);
                ("MODIFIED", current.clone())
            }
            None => {
                inner.objects.insert(key, object.clone());
                *inner.created.entry(resource).or_default() += 1;
                if resource == Resource::Pods {
                    inner.creation_times.push((name, Utc::now()));
                }
                ("ADDED", object)
            }
        };
        self.record(&mut inner, resource, namespace, kind, stored);
    }

    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let mut inner = self.lock();
        let mut object =
            inner
                .objects
                .remove(&(resource, namespace.to_owned(), name.to_owned()))?;
        inner.version += 1;
        object["metadata"]["resourceVersion"] = json!(inner.version.to_string());
        self.record(&mut inner, resource, namespace, "DELETED", object.clone());
        Some(object)
    }

    /// The changes after `version`, or `Err` (410 Gone) when they are no longer known.
    pub fn changes_after(&self, version: u64) -> Result<Vec<Change>, u64> {
        let inner = self.lock();
        if version < inner.compacted {
            return Err(inner.compacted);
        }
        let start = inner.history.partition_point(|c| c.version <= version);
        Ok(inner.history[start..].to_vec())
    }

    pub fn created(&self, resource: Resource) -> u64 {
        self.lock().created.get(&resource).copied().unwrap_or(0)
    }

    pub fn creation_times(&self, resource: Resource) -> Vec<(String, DateTime<Utc>)> {
        if resource == Resource::Pods {
            self.lock().creation_times.clone()
        } else {
            Vec::new()
        }
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    name.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    })
}
