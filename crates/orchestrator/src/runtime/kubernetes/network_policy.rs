//! The deny-all NetworkPolicy: every Airlock run pod of the namespace gets no ingress and
//! no egress. The orchestrator makes sure it exists at start-up and refuses to run
//! evaluations when it cannot.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use std::collections::BTreeMap;

use super::error::{Backoff, KubeError, retrying};
use super::pod::{MANAGED_BY, MANAGED_BY_VALUE};

pub const NAME: &str = "airlock-runs-deny-all";

pub fn deny_all(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    MANAGED_BY.to_owned(),
                    MANAGED_BY_VALUE.to_owned(),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![]),
            egress: Some(vec![]),
        }),
    }
}

/// Creates the policy unless it exists; an existing one that no longer denies
/// everything is an error (someone changed it), not something to fix silently.
pub async fn ensure(api: &Api<NetworkPolicy>, namespace: &str) -> Result<(), KubeError> {
    let wanted = deny_all(namespace);
    let params = PostParams::default();
    let existing = retrying("get networkpolicy", Backoff::API, || api.get_opt(NAME)).await?;
    let existing = match existing {
        Some(existing) => existing,
        None => match retrying("create networkpolicy", Backoff::API, || {
            api.create(&params, &wanted)
        })
        .await
        {
            Ok(created) => created,
            Err(KubeError::Refused { code: 409, .. }) => {
                retrying("get networkpolicy", Backoff::API, || api.get(NAME)).await?
            }
            Err(error) => return Err(error),
        },
    };
    if existing.spec != wanted.spec {
        return Err(KubeError::Refused {
            code: 0,
            reason: "Modified".into(),
            message: format!(
                "NetworkPolicy {NAME} in {namespace} no longer denies all ingress and egress of Airlock pods"
            ),
        });
    }
    tracing::info!(namespace, policy = NAME, "deny-all NetworkPolicy in place");
    Ok(())
}
