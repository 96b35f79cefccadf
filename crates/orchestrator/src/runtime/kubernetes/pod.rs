//! The pod of one attempt: Pod Security Standards "restricted", read-only root with
//! emptyDir scratch and /tmp, no service account token, no service links, Guaranteed QoS
//! (requests = limits), a deadline, labels naming the run, and the worker copied in by
//! an init container so the user's image needs nothing of Airlock.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    EnvVar, LocalObjectReference, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

use super::config::KubernetesConfig;
use crate::runtime::SandboxRequest;
use crate::runtime::environment::{Layout, environment};

pub const MANAGED_BY: &str = "airlock.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "airlock";
pub const RUN_ID: &str = "airlock.dev/run-id";
pub const EVALUATION_ID: &str = "airlock.dev/evaluation-id";
pub const ATTEMPT: &str = "airlock.dev/attempt";
pub const TEAM: &str = "airlock.dev/team";
pub const TASK_INPUT: &str = "airlock.dev/task-input";
/// The selector of every Airlock run pod.
pub const SELECTOR: &str = "airlock.dev/managed-by=airlock";

/// The container running the worker and the user's program; its log is the event stream.
pub const MAIN_CONTAINER: &str = "run";
const INIT_CONTAINER: &str = "install-worker";
/// Where the worker image keeps the worker.
const WORKER_IN_IMAGE: &str = "/airlock-worker";
const BIN_DIR: &str = "/airlock/bin";
const INPUT_DIR: &str = "/airlock/input";
const SCRATCH_DIR: &str = "/scratch";

/// Everything of the configuration the pod needs, parsed once.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    pub namespace: String,
    pub worker_image: String,
    pub runtime_class: Option<String>,
    pub pull_secrets: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub run_as_user: i64,
    pub deadline_margin_secs: u64,
    pub termination_grace_secs: i64,
}

impl PodTemplate {
    pub fn from_config(config: &KubernetesConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self {
            namespace: config.namespace.clone(),
            worker_image: config.worker_image.clone(),
            runtime_class: Some(config.runtime_class.trim().to_owned()).filter(|c| !c.is_empty()),
            pull_secrets: config.pull_secrets(),
            node_selector: config.node_selector_pairs()?.into_iter().collect(),
            tolerations: serde_json::from_str(&config.tolerations).map_err(|e| e.to_string())?,
            run_as_user: config.run_as_user,
            deadline_margin_secs: config.deadline_margin_secs,
            termination_grace_secs: config.delete_grace_secs.max(0),
        })
    }
}

/// The labels of an attempt's pod.
pub fn labels(request: &SandboxRequest) -> BTreeMap<String, String> {
    [
        (MANAGED_BY, MANAGED_BY_VALUE.to_owned()),
        (RUN_ID, request.run_id.to_string()),
        (EVALUATION_ID, request.evaluation_id.to_string()),
        (ATTEMPT, request.attempt.to_string()),
        (TEAM, request.team_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn restricted_container_context(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(read_only_root),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, limit: Option<String>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: limit.map(Quantity),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn equal_requirements(pairs: &[(&str, String)]) -> ResourceRequirements {
    let map: BTreeMap<String, Quantity> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity(v.clone())))
        .collect();
    ResourceRequirements {
        requests: Some(map.clone()),
        limits: Some(map),
        ..ResourceRequirements::default()
    }
}

/// The environment of the main container ([`environment`]), with this runtime's paths;
/// the worker makes the events fifo itself.
fn container_env(request: &SandboxRequest) -> Vec<EnvVar> {
    let input = format!("{INPUT_DIR}/input.json");
    let layout = Layout {
        path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        home: SCRATCH_DIR,
        input: &input,
        events: None,
    };
    environment(request, &layout)
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect()
}

/// The pod of `request`, named `name`.
pub fn build(template: &PodTemplate, request: &SandboxRequest, name: &str) -> Pod {
    let mut main_resources = vec![
        ("cpu", format!("{}m", request.resources.cpu_millis())),
        ("memory", request.resources.memory_bytes().to_string()),
    ];
    if request.resources.gpu > 0 {
        main_resources.push(("nvidia.com/gpu", request.resources.gpu.to_string()));
    }
    let mut command = vec![format!("{BIN_DIR}/airlock-worker"), "--".to_owned()];
    command.extend(request.command.iter().cloned());
    let main = Container {
        name: MAIN_CONTAINER.into(),
        image: Some(request.image.clone()),
        command: Some(command),
        working_dir: Some(SCRATCH_DIR.into()),
        env: Some(container_env(request)),
        resources: Some(equal_requirements(&main_resources)),
        security_context: Some(restricted_container_context(true)),
        volume_mounts: Some(vec![
            mount("airlock-bin", BIN_DIR, true),
            mount("input", INPUT_DIR, true),
            mount("scratch", SCRATCH_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let init = Container {
        name: INIT_CONTAINER.into(),
        image: Some(template.worker_image.clone()),
        command: Some(vec![
            WORKER_IN_IMAGE.into(),
            "--install".into(),
            BIN_DIR.into(),
        ]),
        resources: Some(equal_requirements(&[
            ("cpu", "100m".into()),
            ("memory", "64Mi".into()),
        ])),
        security_context: Some(restricted_container_context(true)),
        volume_mounts: Some(vec![mount("airlock-bin", BIN_DIR, false)]),
        ..Container::default()
    };
    let input = serde_json::to_string(&request.input).unwrap_or_else(|_| "null".into());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(template.namespace.clone()),
            labels: Some(labels(request)),
            annotations: Some(BTreeMap::from([(TASK_INPUT.to_owned(), input)])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            share_process_namespace: Some(false),
            termination_grace_period_seconds: Some(template.termination_grace_secs),
            active_deadline_seconds: Some(
                i64::try_from(
                    request
                        .timeout_secs
                        .saturating_add(template.deadline_margin_secs),
                )
                .unwrap_or(i64::MAX),
            ),
            runtime_class_name: template.runtime_class.clone(),
            node_selector: (!template.node_selector.is_empty())
                .then(|| template.node_selector.clone()),
            tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
            image_pull_secrets: (!template.pull_secrets.is_empty()).then(|| {
                template
                    .pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(template.run_as_user),
                run_as_group: Some(template.run_as_user),
                fs_group: Some(template.run_as_user),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(vec![init]),
            containers: vec![main],
            volumes: Some(vec![
                empty_dir("airlock-bin", Some("64Mi".into())),
                empty_dir("scratch", None),
                empty_dir("tmp", None),
                Volume {
                    name: "input".into(),
                    downward_api: Some(DownwardAPIVolumeSource {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "input.json".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.annotations['{TASK_INPUT}']"),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                        ..DownwardAPIVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::spec::Resources;
    use airlock_core::{EvaluationId, RunId, TeamId};

    fn template() -> PodTemplate {
        PodTemplate {
            namespace: "evals".into(),
            worker_image: "registry/worker@sha256:abc".into(),
            runtime_class: Some("gvisor".into()),
            pull_secrets: vec!["regcred".into()],
            node_selector: BTreeMap::from([("pool".into(), "evals".into())]),
            tolerations: vec![],
            run_as_user: 65532,
            deadline_margin_secs: 60,
            termination_grace_secs: 5,
        }
    }

    fn request() -> SandboxRequest {
        SandboxRequest {
            run_id: RunId::new(),
            evaluation_id: EvaluationId::new(),
            team_id: TeamId::new(),
            attempt: 2,
            task_id: "t1".into(),
            epoch: 1,
            image: "python:3.12-slim".into(),
            command: vec!["python".into(), "eval.py".into()],
            env: BTreeMap::from([
                ("MODE".into(), "fast".into()),
                ("HOME".into(), "/elsewhere".into()),
            ]),
            resources: Resources {
                cpu: "500m".into(),
                memory: "1Gi".into(),
                gpu: 2,
            },
            timeout_secs: 300,
            input: serde_json::json!({"q": 1}),
            worker_env: vec![("AIRLOCK_WORKER_MAX_OUTPUT_BYTES".into(), "1000".into())],
        }
    }

    #[test]
    fn the_pod_is_guaranteed_named_labelled_and_deadlined() {
        let request = request();
        let pod = build(&template(), &request, &request.sandbox_name());
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some(request.sandbox_name().as_str())
        );
        let labels = pod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[RUN_ID], request.run_id.to_string());
        assert_eq!(labels[ATTEMPT], "2");
        assert_eq!(labels[MANAGED_BY], "airlock");
        assert_eq!(spec.active_deadline_seconds, Some(360));
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        let main = &spec.containers[0];
        let resources = main.resources.as_ref().expect("resources");
        assert_eq!(resources.requests, resources.limits);
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["cpu"], Quantity("500m".into()));
        assert_eq!(limits["memory"], Quantity((1u64 << 30).to_string()));
        assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
        for c in spec.init_containers.iter().flatten() {
            let r = c.resources.as_ref().expect("init resources");
            assert_eq!(r.requests, r.limits, "init containers keep Guaranteed QoS");
        }
        let command = main.command.as_ref().expect("command");
        assert_eq!(
            command[..2],
            ["/airlock/bin/airlock-worker".to_owned(), "--".to_owned()]
        );
        assert_eq!(command[2..], request.command[..]);
        let env = main.env.as_ref().expect("env");
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("MODE").as_deref(), Some("fast"));
        assert_eq!(
            value("HOME").as_deref(),
            Some("/elsewhere"),
            "the spec may set HOME"
        );
        assert_eq!(value("AIRLOCK_WORKER_TIMEOUT_SECS").as_deref(), Some("300"));
        assert_eq!(
            value("AIRLOCK_WORKER_MAX_OUTPUT_BYTES").as_deref(),
            Some("1000")
        );
        assert_eq!(env.iter().filter(|e| e.name == "HOME").count(), 1);
    }
}
