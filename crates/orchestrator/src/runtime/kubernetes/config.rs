//! Settings of the Kubernetes runtime (`AIRLOCK_K8S_*`). The cluster itself is found the
//! usual kube-rs way: `KUBECONFIG` or `~/.kube/config`, else the in-cluster service
//! account.

use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct KubernetesConfig {
    /// Namespace the evaluation pods run in.
    #[arg(
        long = "k8s-namespace",
        env = "AIRLOCK_K8S_NAMESPACE",
        default_value = "airlock-runs"
    )]
    pub namespace: String,
    /// Image holding `/airlock-worker`, copied into every pod by its init container;
    /// pinned as given (use a digest).
    #[arg(
        long = "k8s-worker-image",
        env = "AIRLOCK_K8S_WORKER_IMAGE",
        default_value = "ghcr.io/airlock-dev/airlock-worker:0.1.0"
    )]
    pub worker_image: String,
    /// runtimeClassName of the pods (the chart sets `gvisor`); empty: the cluster default.
    #[arg(
        long = "k8s-runtime-class",
        env = "AIRLOCK_K8S_RUNTIME_CLASS",
        default_value = ""
    )]
    pub runtime_class: String,
    /// imagePullSecrets of the pods, comma-separated secret names.
    #[arg(
        long = "k8s-image-pull-secrets",
        env = "AIRLOCK_K8S_IMAGE_PULL_SECRETS",
        default_value = ""
    )]
    pub image_pull_secrets: String,
    /// nodeSelector of the pods: `key=value` pairs, comma-separated.
    #[arg(
        long = "k8s-node-selector",
        env = "AIRLOCK_K8S_NODE_SELECTOR",
        default_value = ""
    )]
    pub node_selector: String,
    /// tolerations of the pods, as a JSON array of Kubernetes tolerations.
    #[arg(
        long = "k8s-tolerations",
        env = "AIRLOCK_K8S_TOLERATIONS",
        default_value = "[]"
    )]
    pub tolerations: String,
    /// uid, gid and fsGroup the pods run as (never 0).
    #[arg(
        long = "k8s-run-as-user",
        env = "AIRLOCK_K8S_RUN_AS_USER",
        default_value_t = 65532
    )]
    pub run_as_user: i64,
    /// Added to a run's time limit for the pod's activeDeadlineSeconds.
    #[arg(
        long = "k8s-deadline-margin-secs",
        env = "AIRLOCK_K8S_DEADLINE_MARGIN_SECS",
        default_value_t = 60
    )]
    pub deadline_margin_secs: u64,
    /// Grace period when a pod is deleted (cancel, orphan, give-up).
    #[arg(
        long = "k8s-delete-grace-secs",
        env = "AIRLOCK_K8S_DELETE_GRACE_SECS",
        default_value_t = 5
    )]
    pub delete_grace_secs: i64,
    /// How long finished pods are kept for inspection before the reaper deletes them.
    #[arg(
        long = "k8s-retention-secs",
        env = "AIRLOCK_K8S_RETENTION_SECS",
        default_value_t = 600
    )]
    pub retention_secs: u64,
    /// How long a pod may stay unschedulable before its run ends as an error.
    #[arg(
        long = "k8s-unschedulable-secs",
        env = "AIRLOCK_K8S_UNSCHEDULABLE_SECS",
        default_value_t = 600
    )]
    pub unschedulable_secs: u64,
    /// How often the reaper looks for finished and orphaned pods.
    #[arg(
        long = "k8s-reaper-interval-secs",
        env = "AIRLOCK_K8S_REAPER_INTERVAL_SECS",
        default_value_t = 30
    )]
    pub reaper_interval_secs: u64,
    /// Pod creations in flight at once (a slot is freed when the pod exists).
    #[arg(
        long = "k8s-max-concurrent-creates",
        env = "AIRLOCK_K8S_MAX_CONCURRENT_CREATES",
        default_value_t = 32
    )]
    pub max_concurrent_creates: usize,
}

impl KubernetesConfig {
    pub fn deadline_margin(&self) -> Duration {
        Duration::from_secs(self.deadline_margin_secs)
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs)
    }

    pub fn unschedulable_limit(&self) -> Duration {
        Duration::from_secs(self.unschedulable_secs)
    }

    pub fn pull_secrets(&self) -> Vec<String> {
        split_list(&self.image_pull_secrets)
    }

    /// The node selector, or a message naming the bad pair.
    pub fn node_selector_pairs(&self) -> Result<Vec<(String, String)>, String> {
        split_list(&self.node_selector)
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => Err(format!(
                    "AIRLOCK_K8S_NODE_SELECTOR: `{pair}` is not key=value"
                )),
            })
            .collect()
    }

    /// Checks everything that can be checked without the cluster.
    pub fn validate(&self) -> Result<(), String> {
        if self.run_as_user <= 0 {
            return Err("AIRLOCK_K8S_RUN_AS_USER must be a non-zero uid".into());
        }
        if self.namespace.trim().is_empty() {
            return Err("AIRLOCK_K8S_NAMESPACE must not be empty".into());
        }
        self.node_selector_pairs()?;
        serde_json::from_str::<Vec<k8s_openapi::api::core::v1::Toleration>>(&self.tolerations)
            .map_err(|e| {
                format!("AIRLOCK_K8S_TOLERATIONS is not a JSON array of tolerations: {e}")
            })?;
        Ok(())
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: KubernetesConfig,
    }

    fn parse(args: &[&str]) -> KubernetesConfig {
        let mut all = vec!["test"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parse").config
    }

    #[test]
    fn settings_are_checked_before_the_cluster_is_asked() {
        let config = parse(&[
            "--k8s-node-selector",
            "pool=evals, zone = a",
            "--k8s-image-pull-secrets",
            "a,,b",
        ]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.node_selector_pairs(),
            Ok(vec![
                ("pool".into(), "evals".into()),
                ("zone".into(), "a".into())
            ])
        );
        assert_eq!(config.pull_secrets(), vec!["a".to_owned(), "b".to_owned()]);
        assert!(parse(&["--k8s-node-selector", "pool"]).validate().is_err());
        assert!(parse(&["--k8s-run-as-user", "0"]).validate().is_err());
        assert!(parse(&["--k8s-tolerations", "{}"]).validate().is_err());
        let tolerations = r#"[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]"#;
        assert_eq!(
            parse(&["--k8s-tolerations", tolerations]).validate(),
            Ok(())
        );
    }
}
