//! What a pod's status means for its run: the watcher's view of a pod, mapped from the
//! phase, conditions and container states Kubernetes reports to the words a researcher
//! reads (see ARCHITECTURE.md, "Kubernetes runtime").

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

use super::pod::MAIN_CONTAINER;
use crate::runtime::{SandboxExit, SandboxFailure};

/// Container waiting reasons that do not resolve by themselves.
const STUCK_IMAGE: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
const STUCK_CONFIG: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodView {
    /// Created, not yet looked at by the scheduler.
    Pending,
    /// The scheduler cannot place it; its message and since when.
    Unschedulable {
        message: String,
        since: Option<Timestamp>,
    },
    /// Placed; images are pulled and containers created.
    Starting { reason: Option<String> },
    /// It will not start without help (an image that cannot be pulled, a bad config).
    Stuck(String),
    /// The main container runs.
    Running,
    /// Finished, with how.
    Ended(SandboxExit),
}

fn waiting(status: &ContainerStatus) -> Option<(&str, &str)> {
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    Some((
        waiting.reason.as_deref()?,
        waiting.message.as_deref().unwrap_or(""),
    ))
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
}

/// The main container's status.
pub fn main_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == MAIN_CONTAINER)
}

/// Whether the main container has ended (its log is complete).
pub fn main_terminated(pod: &Pod) -> bool {
    main_status(pod).is_some_and(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

/// When the pod finished, when it has.
pub fn finished_at(pod: &Pod) -> Option<Timestamp> {
    statuses(pod)
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

fn image_of(pod: &Pod, status: &ContainerStatus) -> String {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == status.name)
            .and_then(|c| c.image.clone())
    })
    .unwrap_or_else(|| status.image.clone())
}

pub fn view(pod: &Pod) -> PodView {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    match phase {
        "Succeeded" | "Failed" => return PodView::Ended(ended(pod)),
        "Unknown" => {
            return PodView::Ended(failed("the node running the pod was lost".into(), true));
        }
        _ => {}
    }
    if let Some(reason) = status.and_then(|s| s.reason.as_deref())
        && matches!(reason, "NodeLost" | "Evicted")
    {
        return PodView::Ended(ended(pod));
    }
    for container in statuses(pod) {
        if let Some((reason, message)) = waiting(container) {
            if STUCK_IMAGE.contains(&reason) {
                return PodView::Stuck(format!(
                    "the image {} cannot be pulled ({reason}): {message}",
                    image_of(pod, container)
                ));
            }
            if STUCK_CONFIG.contains(&reason) {
                return PodView::Stuck(format!(
                    "the container cannot be created ({reason}): {message}"
                ));
            }
        }
    }
    if phase == "Running"
        && main_status(pod).is_some_and(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
    {
        return PodView::Running;
    }
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled");
    if let Some(condition) = scheduled
        && condition.status == "False"
        && condition.reason.as_deref() == Some("Unschedulable")
    {
        return PodView::Unschedulable {
            message: condition.message.clone().unwrap_or_default(),
            since: condition
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        };
    }
    let placed = scheduled.is_some_and(|c| c.status == "True")
        || pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    if !placed {
        return PodView::Pending;
    }
    let reason = statuses(pod)
        .find_map(waiting)
        .map(|(reason, _)| match reason {
            "ContainerCreating" | "PodInitializing" => {
                "pulling images and creating containers".to_owned()
            }
            other => other.to_owned(),
        });
    PodView::Starting { reason }
}

fn failed(reason: String, retryable: bool) -> SandboxExit {
    SandboxExit {
        code: None,
        signal: None,
        oom_killed: false,
        stopped: false,
        deadline_exceeded: false,
        failure: Some(SandboxFailure { reason, retryable }),
    }
}

/// How a finished pod ended.
fn ended(pod: &Pod) -> SandboxExit {
    let status = pod.status.as_ref();
    let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
    match reason {
        "DeadlineExceeded" => {
            return SandboxExit {
                deadline_exceeded: true,
                ..failed(String::new(), false)
            }
            .without_failure();
        }
        "Evicted" => {
            return failed(
                format!("the pod was evicted from its node: {message}"),
                true,
            );
        }
        "NodeLost" | "NodeShutdown" | "Terminated" | "Shutdown" => {
            return failed(
                format!("the node running the pod was lost ({reason}): {message}"),
                true,
            );
        }
        "UnexpectedAdmissionError" | "OutOfcpu" | "OutOfmemory" | "NodeAffinity" => {
            return failed(
                format!("the node refused the pod ({reason}): {message}"),
                true,
            );
        }
        _ => {}
    }
    let disruption = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    let main = main_status(pod).and_then(|c| c.state.as_ref()?.terminated.as_ref());
    if let Some(terminated) = main {
        return SandboxExit {
            code: Some(terminated.exit_code),
            signal: terminated.signal,
            oom_killed: terminated.reason.as_deref() == Some("OOMKilled"),
            stopped: false,
            deadline_exceeded: false,
            failure: None,
        };
    }
    if let Some(condition) = disruption {
        return failed(
            format!(
                "the pod was disrupted ({}): {}",
                condition.reason.as_deref().unwrap_or(""),
                condition.message.as_deref().unwrap_or("")
            ),
            true,
        );
    }
    let init_failure = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| (t.exit_code, t.reason.clone().unwrap_or_default()))
        });
    if let Some((code, reason)) = init_failure {
        return failed(
            format!(
                "the worker could not be installed in the pod (init container exited with code {code}, {reason})"
            ),
            false,
        );
    }
    failed(
        format!("the pod ended before its program ran ({reason} {message})")
            .trim()
            .to_owned(),
        false,
    )
}

impl SandboxExit {
    fn without_failure(mut self) -> Self {
        self.failure = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "run", "image": "user/image:1"}],
                     "initContainers": [{"name": "install-worker", "image": "airlock/worker:1"}]},
            "status": status
        }))
        .expect("pod")
    }

    fn main_terminated_with(code: i32, reason: &str) -> serde_json::Value {
        json!([{"name": "run", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason}}}])
    }

    #[test]
    fn pending_pods_say_why() {
        assert_eq!(view(&pod(json!({"phase": "Pending"}))), PodView::Pending);
        let unschedulable = view(&pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": "2026-01-01T00:00:05Z"}]})));
        assert!(
            matches!(unschedulable, PodView::Unschedulable { ref message, since: Some(_) } if message.contains("nvidia.com/gpu"))
        );
        let pulling = view(&pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "run", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        ));
        assert_eq!(
            pulling,
            PodView::Starting {
                reason: Some("pulling images and creating containers".into())
            }
        );
    }

    #[test]
    fn stuck_pods_name_the_image() {
        let stuck = view(&pod(json!({"phase": "Pending",
            "containerStatuses": [{"name": "run", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]})));
        assert!(
            matches!(stuck, PodView::Stuck(ref m) if m.contains("user/image:1") && m.contains("ImagePullBackOff"))
        );
        let config = view(&pod(json!({"phase": "Pending",
            "containerStatuses": [{"name": "run", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"x\" not found"}}}]})));
        assert!(matches!(config, PodView::Stuck(ref m) if m.contains("secret")));
    }

    #[test]
    fn finished_pods_map_to_exits() {
        let ok = view(&pod(
            json!({"phase": "Succeeded", "containerStatuses": main_terminated_with(0, "Completed")}),
        ));
        assert!(matches!(
            ok,
            PodView::Ended(SandboxExit {
                code: Some(0),
                failure: None,
                ..
            })
        ));
        let oom = view(&pod(
            json!({"phase": "Failed", "containerStatuses": main_terminated_with(137, "OOMKilled")}),
        ));
        assert!(matches!(
            oom,
            PodView::Ended(SandboxExit {
                oom_killed: true,
                ..
            })
        ));
        let deadline = view(&pod(
            json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"}),
        ));
        assert!(matches!(
            deadline,
            PodView::Ended(SandboxExit {
                deadline_exceeded: true,
                failure: None,
                ..
            })
        ));
        let evicted = view(&pod(
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        ));
        assert!(
            matches!(evicted, PodView::Ended(SandboxExit { failure: Some(SandboxFailure { retryable: true, ref reason }), .. }) if reason.contains("evicted"))
        );
        let lost = view(&pod(json!({"phase": "Unknown"})));
        assert!(matches!(
            lost,
            PodView::Ended(SandboxExit {
                failure: Some(SandboxFailure {
                    retryable: true,
                    ..
                }),
                ..
            })
        ));
        let init = view(&pod(
            json!({"phase": "Failed", "initContainerStatuses": [{"name": "install-worker", "image": "", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        ));
        assert!(
            matches!(init, PodView::Ended(SandboxExit { failure: Some(SandboxFailure { retryable: false, ref reason }), .. }) if reason.contains("worker"))
        );
    }
}
