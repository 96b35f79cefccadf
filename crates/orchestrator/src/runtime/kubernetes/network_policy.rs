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

/// Whether a policy spec denies all ingress and egress of Airlock pods. Compared by
/// meaning, not field by field: an API server reads back empty rule lists as absent.
pub fn denies_all(spec: Option<&NetworkPolicySpec>) -> bool {
    let Some(spec) = spec else { return false };
    let wanted = BTreeMap::from([(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())]);
    // Our pods' label, or the empty selector (every pod of the namespace).
    let selects_ours = spec.pod_selector.as_ref().is_some_and(|selector| {
        let labels = selector.match_labels.as_ref().filter(|l| !l.is_empty());
        (labels.is_none() || labels == Some(&wanted))
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty)
    });
    let types = spec.policy_types.as_deref().unwrap_or_default();
    selects_ours
        && types.iter().any(|t| t == "Ingress")
        && types.iter().any(|t| t == "Egress")
        && spec.ingress.as_ref().is_none_or(Vec::is_empty)
        && spec.egress.as_ref().is_none_or(Vec::is_empty)
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
    if !denies_all(existing.spec.as_ref()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicyEgressRule;

    #[test]
    fn deny_all_is_recognised_however_empty_rules_are_written() {
        let ours = deny_all("runs").spec;
        assert!(denies_all(ours.as_ref()));
        let mut read_back = ours.clone().expect("spec");
        read_back.ingress = None;
        read_back.egress = None;
        assert!(denies_all(Some(&read_back)), "absent rule lists deny too");
        let mut opened = read_back.clone();
        opened.egress = Some(vec![NetworkPolicyEgressRule::default()]);
        assert!(!denies_all(Some(&opened)), "an egress rule opens traffic");
        let mut one_way = read_back.clone();
        one_way.policy_types = Some(vec!["Ingress".into()]);
        assert!(!denies_all(Some(&one_way)), "egress must be denied as well");
        let mut everything = read_back.clone();
        everything.pod_selector = Some(LabelSelector::default());
        assert!(
            denies_all(Some(&everything)),
            "every pod of the namespace includes ours"
        );
        let mut elsewhere = read_back;
        elsewhere.pod_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_owned(), "other".to_owned())])),
            match_expressions: None,
        });
        assert!(!denies_all(Some(&elsewhere)), "it must select Airlock pods");
        assert!(!denies_all(None));
    }
}
