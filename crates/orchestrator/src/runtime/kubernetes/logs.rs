//! The worker's event stream, read with the pod log follow API. A follow can end early
//! (kubelet log rotation, a dropped connection, an API server restart): it is then
//! reopened with `sinceTime` at the last line's timestamp, and lines already passed on
//! (by the worker's `seq`) are skipped, so the stream is read once, in order, to its end.
//! It ends when a follow that began after the container (or the pod) had ended is read
//! out.

use bytes::Bytes;
use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::cache::PodCache;
use super::error::{Backoff, KubeError};
use super::phase::{PodView, main_terminated, view};
use super::pod::MAIN_CONTAINER;
use crate::runtime::OutputStream;

/// Lines passed on, as far as the stream has got.
#[derive(Debug, Default)]
struct Position {
    since: Option<Timestamp>,
    last_seq: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Seq {
    seq: u64,
}

impl Position {
    /// The line to pass on (without its timestamp), or `None` when it was passed on
    /// before.
    fn accept(&mut self, raw: &str) -> Option<String> {
        let (line, at) = match raw.split_once(' ') {
            Some((ts, rest)) => match ts.parse::<Timestamp>() {
                Ok(at) => (rest, Some(at)),
                Err(_) => (raw, None),
            },
            None => (raw, None),
        };
        if let Some(at) = at {
            self.since = Some(at);
        }
        if let Ok(Seq { seq }) = serde_json::from_str::<Seq>(line) {
            if self.last_seq.is_some_and(|last| seq <= last) {
                return None;
            }
            self.last_seq = Some(seq);
        }
        Some(line.to_owned())
    }

    /// `sinceTime` for a reopened follow: the last line's second (the API rounds to
    /// seconds), so nothing after it is missed; the overlap is skipped by seq.
    fn reopen_since(&self) -> Option<Timestamp> {
        self.since
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
    }
}

/// Follows the main container's log of pod `name` from its first line.
pub fn follow(api: Api<Pod>, cache: PodCache, name: String) -> OutputStream {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(64);
    // The follow logs in the span of the run that reads it.
    tokio::spawn(
        async move {
            if let Err(error) = pump(&api, &cache, &name, &tx).await {
                tracing::warn!(pod = %name, %error, "pod log follow gave up");
            }
        }
        .in_current_span(),
    );
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::new(tokio_util::io::StreamReader::new(Box::pin(stream)))
}

async fn pump(
    api: &Api<Pod>,
    cache: &PodCache,
    name: &str,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<(), KubeError> {
    let mut position = Position::default();
    let mut failures = 0u32;
    // Follows in a row that brought nothing new: waits between them grow.
    let mut idle = 0u32;
    loop {
        // Terminated before the follow opens: this follow reads everything that is left.
        let complete = match cache.get(name) {
            Some(pod) => main_terminated(&pod) || matches!(view(&pod), PodView::Ended(_)),
            None => true,
        };
        let params = LogParams {
            container: Some(MAIN_CONTAINER.into()),
            follow: true,
            timestamps: true,
            since_time: position.reopen_since(),
            ..LogParams::default()
        };
        let opened = api.log_stream(name, &params).await.map_err(KubeError::from);
        match opened {
            Ok(reader) => {
                failures = 0;
                idle += 1;
                let mut lines = std::pin::pin!(reader.lines());
                loop {
                    match lines.try_next().await {
                        Ok(Some(raw)) => {
                            if let Some(mut line) = position.accept(&raw) {
                                idle = 0;
                                line.push('\n');
                                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            tracing::info!(pod = %name, %error, "pod log follow broke; resuming");
                            break;
                        }
                    }
                }
                if complete {
                    return Ok(());
                }
                crate::metrics::log_follow_resumed();
                tracing::info!(pod = %name, since = ?position.reopen_since(), "pod log follow ended before the container; resuming");
            }
            // Gone, or ended without a log: nothing more will come.
            Err(KubeError::Refused { code: 404, .. }) => return Ok(()),
            Err(KubeError::Refused { .. }) if complete => return Ok(()),
            Err(error) => {
                failures += 1;
                if failures > Backoff::API.attempts * 4 {
                    return Err(error);
                }
                tracing::info!(pod = %name, %error, "cannot open the pod log; retrying");
            }
        }
        tokio::time::sleep(Backoff::API.delay(failures.max(idle).max(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_after_a_resume_is_skipped_by_seq() {
        let mut p = Position::default();
        assert_eq!(
            p.accept("2026-01-01T00:00:01.5Z {\"seq\":1}").as_deref(),
            Some("{\"seq\":1}")
        );
        assert_eq!(
            p.accept("2026-01-01T00:00:01.7Z {\"seq\":2}").as_deref(),
            Some("{\"seq\":2}")
        );
        assert_eq!(p.reopen_since(), "2026-01-01T00:00:01Z".parse().ok());
        assert_eq!(p.accept("2026-01-01T00:00:01.5Z {\"seq\":1}"), None);
        assert_eq!(p.accept("2026-01-01T00:00:01.7Z {\"seq\":2}"), None);
        assert_eq!(
            p.accept("2026-01-01T00:00:02Z {\"seq\":3}").as_deref(),
            Some("{\"seq\":3}")
        );
        assert_eq!(p.accept("not json").as_deref(), Some("not json"));
    }
}
