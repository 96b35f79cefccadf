//! Container logs as the kubelet keeps them: timestamped lines per container, read once
//! or followed until the container ends.

use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

#[derive(Default)]
struct Log {
    lines: Vec<(DateTime<Utc>, String)>,
    done: bool,
}

pub struct Logs {
    inner: Mutex<HashMap<String, Log>>,
    changed: watch::Sender<u64>,
    /// Bumped to end every open follow.
    cuts: watch::Sender<u64>,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            cuts: watch::channel(0).0,
        }
    }
}

pub fn key(namespace: &str, pod: &str, container: &str) -> String {
    format!("{namespace}/{pod}/{container}")
}

/// What a reader asked for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub follow: bool,
    pub timestamps: bool,
    pub since: Option<DateTime<Utc>>,
}

impl LogQuery {
    /// From the query parameters of a log request (`follow`, `timestamps`, `sinceTime`,
    /// `sinceSeconds`); `Err` says what is wrong.
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, String> {
        let flag = |name: &str| params.get(name).is_some_and(|v| v == "true" || v == "1");
        let since = match params.get("sinceTime") {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| format!("invalid sinceTime {text}"))?
                    .with_timezone(&Utc),
            ),
            None => params
                .get("sinceSeconds")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| Utc::now() - chrono::Duration::seconds(s)),
        };
        Ok(Self {
            follow: flag("follow"),
            timestamps: flag("timestamps"),
            since,
        })
    }
}

impl Logs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Log>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The container started: its log exists from now on (empty).
    pub fn open(&self, key: &str) {
        self.lock().entry(key.to_owned()).or_default();
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn append(&self, key: &str, line: String) {
        self.lock()
            .entry(key.to_owned())
            .or_default()
            .lines
            .push((Utc::now(), line));
        self.changed.send_modify(|v| *v += 1);
    }

    /// The container ended: follows end once they have read everything.
    pub fn finish(&self, key: &str) {
        self.lock().entry(key.to_owned()).or_default().done = true;
        self.changed.send_modify(|v| *v += 1);
    }

    /// Every container of a pod ended (the pod was deleted or hit its deadline).
    pub fn finish_pod(&self, namespace: &str, pod: &str) {
        let prefix = format!("{namespace}/{pod}/");
        for (key, log) in self.lock().iter_mut() {
            if key.starts_with(&prefix) {
                log.done = true;
            }
        }
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn cut_follows(&self) {
        self.cuts.send_modify(|v| *v += 1);
    }

    /// The log's lines from `from` on (as formatted for the reader), and whether the
    /// container has ended.
    fn read(&self, key: &str, from: usize, query: &LogQuery) -> (Vec<String>, usize, bool) {
        let inner = self.lock();
        let Some(log) = inner.get(key) else {
            return (Vec::new(), from, true);
        };
        let lines = log.lines[from.min(log.lines.len())..]
            .iter()
            .filter(|(at, _)| query.since.is_none_or(|since| *at >= since))
            .map(|(at, line)| {
                if query.timestamps {
                    format!(
                        "{} {line}\n",
                        at.to_rfc3339_opts(SecondsFormat::Nanos, true)
                    )
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        (lines, log.lines.len(), log.done)
    }

    /// The log as a stream of chunks: what is there, then (when following) what comes,
    /// until the container ends or the follow is cut.
    pub fn stream(
        self: std::sync::Arc<Self>,
        key: String,
        query: LogQuery,
    ) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send {
        let changed = self.changed.subscribe();
        let mut cuts = self.cuts.subscribe();
        cuts.borrow_and_update();
        let state = Some((0usize, changed, cuts));
        futures_util::stream::unfold(state, move |state| {
            let logs = self.clone();
            let key = key.clone();
            let query = query.clone();
            async move {
                let (mut cursor, mut changed, mut cuts) = state?;
                loop {
                    if cuts.has_changed().unwrap_or(true) {
                        return None;
                    }
                    changed.borrow_and_update();
                    let (lines, next, done) = logs.read(&key, cursor, &query);
                    cursor = next;
                    if !lines.is_empty() {
                        let more = query.follow.then_some((cursor, changed, cuts));
                        return Some((Ok(lines.concat()), more));
                    }
                    if done || !query.follow {
                        return None;
                    }
                    tokio::select! {
                        _ = changed.changed() => {}
                        _ = cuts.changed() => return None,
                    }
                }
            }
        })
    }
}
