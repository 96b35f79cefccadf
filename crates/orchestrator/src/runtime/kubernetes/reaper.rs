//! The reaper: deletes finished pods once their retention has passed (so an operator can
//! still inspect them meanwhile) and no replica holds their attempt's claim (its
//! orchestrator, or the survivor adopting a lost replica's pod, may still be reading the
//! pod's last lines; with a retention of 0 this is what keeps them), and live Airlock
//! pods whose attempt no orchestrator replica holds a claim of (orphans; a lost
//! replica's pods keep their claims until a survivor adopts them). One replica sweeps at a time, the holder of the reaper's
//! leader lease. Every deletion is logged and counted.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashSet;
use std::time::Duration;

use super::KubernetesRuntime;
use super::phase::{PodView, finished_at, view};

/// What to do with one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    DeleteFinished,
    DeleteOrphan,
}

pub fn judge(pod: &Pod, owned: bool, retention: Duration, now: Timestamp) -> Verdict {
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Keep;
    }
    if let PodView::Ended(_) = view(pod) {
        let finished = finished_at(pod)
            .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let age = now.duration_since(finished).unsigned_abs();
        return if age >= retention && !owned {
            Verdict::DeleteFinished
        } else {
            Verdict::Keep
        };
    }
    if owned {
        Verdict::Keep
    } else {
        Verdict::DeleteOrphan
    }
}

pub(super) async fn sweep(runtime: &KubernetesRuntime, claimed: &HashSet<String>) {
    let now = Timestamp::now();
    for pod in runtime.cache.all() {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let verdict = judge(&pod, claimed.contains(&name), runtime.retention, now);
        let what = match verdict {
            Verdict::Keep => continue,
            Verdict::DeleteFinished => "finished",
            Verdict::DeleteOrphan => "orphan",
        };
        match runtime.delete_pod(&name).await {
            Ok(()) => {
                tracing::info!(pod = %name, what, "reaper deleted a pod");
                crate::metrics::pod_reaped(what);
            }
            Err(error) => {
                tracing::warn!(pod = %name, what, %error, "reaper could not delete a pod")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(phase: &str, finished: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "run", "image": "", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}]}
        }))
        .expect("pod")
    }

    #[test]
    fn finished_pods_wait_out_their_retention_and_their_claim_and_orphans_go() {
        let now: Timestamp = "2026-01-01T00:20:00Z".parse().expect("time");
        let ten = Duration::from_secs(600);
        assert_eq!(
            judge(&pod("Succeeded", "2026-01-01T00:15:00Z"), true, ten, now),
            Verdict::Keep
        );
        assert_eq!(
            judge(&pod("Failed", "2026-01-01T00:05:00Z"), false, ten, now),
            Verdict::DeleteFinished
        );
        assert_eq!(
            judge(
                &pod("Failed", "2026-01-01T00:05:00Z"),
                true,
                Duration::ZERO,
                now
            ),
            Verdict::Keep,
            "a claimed pod's last lines may still be read, whatever the retention"
        );
        assert_eq!(
            judge(&pod("Running", "2026-01-01T00:05:00Z"), true, ten, now),
            Verdict::Keep
        );
        assert_eq!(
            judge(&pod("Running", "2026-01-01T00:05:00Z"), false, ten, now),
            Verdict::DeleteOrphan
        );
    }
}
