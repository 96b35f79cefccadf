//! Pod Security admission at the "restricted" level (which includes "baseline"), written
//! from the published Pod Security Standards
//! (https://kubernetes.io/docs/concepts/security/pod-security-standards/), as if the
//! namespace were labelled `pod-security.kubernetes.io/enforce: restricted`.
//!
//! A pod that breaks any rule is refused with 403 and a message in the API server's form.

use serde_json::Value;

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];
const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every way `pod` breaks the restricted profile; empty when it is admitted.
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let spec = &pod["spec"];
    let pod_sc = &spec["securityContext"];
    let mut out = Vec::new();
    let containers: Vec<(&str, &Value)> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| spec[*field].as_array().into_iter().flatten())
        .map(|c| (c["name"].as_str().unwrap_or(""), c))
        .collect();

    // baseline: host namespaces, host process, privileged, host ports, hostPath.
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == Value::Bool(true) {
            out.push(format!("host namespaces ({field}=true)"));
        }
    }
    if pod_sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        out.push(
            "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)".into(),
        );
    }
    for (name, c) in &containers {
        let sc = &c["securityContext"];
        if sc["privileged"] == Value::Bool(true) {
            out.push(format!(
                "privileged (container \"{name}\" must not set securityContext.privileged=true)"
            ));
        }
        if sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
            out.push(format!("hostProcess (container \"{name}\")"));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().unwrap_or(0) != 0 {
                out.push(format!(
                    "hostPort (container \"{name}\" uses hostPort {})",
                    port["hostPort"]
                ));
            }
        }
        if !matches!(sc["procMount"].as_str(), None | Some("Default")) {
            out.push(format!(
                "procMount (container \"{name}\" must not set securityContext.procMount)"
            ));
        }
        if let Some(profile) = sc["appArmorProfile"]["type"].as_str()
            && !matches!(profile, "RuntimeDefault" | "Localhost")
        {
            out.push(format!(
                "forbidden AppArmor profile (container \"{name}\": {profile})"
            ));
        }
        out.extend(selinux(&sc["seLinuxOptions"], name));
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("");
        if !volume["hostPath"].is_null() {
            out.push(format!("hostPath volumes (volume \"{name}\")"));
        }
        let kind = volume
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "name").cloned())
            .unwrap_or_default();
        if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
            out.push(format!(
                "restricted volume types (volume \"{name}\" uses restricted volume type \"{kind}\")"
            ));
        }
    }
    out.extend(selinux(&pod_sc["seLinuxOptions"], "pod"));
    if let Some(profile) = pod_sc["appArmorProfile"]["type"].as_str()
        && !matches!(profile, "RuntimeDefault" | "Localhost")
    {
        out.push(format!("forbidden AppArmor profile (pod: {profile})"));
    }
    for (key, value) in pod["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && let Some(value) = value.as_str()
            && value != "runtime/default"
            && !value.starts_with("localhost/")
        {
            out.push(format!("forbidden AppArmor profile ({key}={value})"));
        }
    }
    for sysctl in pod_sc["sysctls"].as_array().into_iter().flatten() {
        let name = sysctl["name"].as_str().unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            out.push(format!("forbidden sysctls ({name})"));
        }
    }

    // restricted: privilege escalation, non-root, seccomp, capabilities.
    let pod_non_root = pod_sc["runAsNonRoot"] == Value::Bool(true);
    if pod_sc["runAsUser"].as_i64() == Some(0) {
        out.push("runAsUser=0 (pod must not set runAsUser=0)".into());
    }
    let pod_seccomp = pod_sc["seccompProfile"]["type"].as_str();
    if let Some(kind) = pod_seccomp
        && !matches!(kind, "RuntimeDefault" | "Localhost")
    {
        out.push(format!(
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"{kind}\")"
        ));
    }
    for (name, c) in &containers {
        let sc = &c["securityContext"];
        if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
            out.push(format!(
                "allowPrivilegeEscalation != false (container \"{name}\" must set securityContext.allowPrivilegeEscalation=false)"
            ));
        }
        match sc["runAsNonRoot"].as_bool() {
            Some(false) => out.push(format!("runAsNonRoot != true (container \"{name}\" must not set securityContext.runAsNonRoot=false)")),
            None if !pod_non_root => out.push(format!(
                "runAsNonRoot != true (pod or container \"{name}\" must set securityContext.runAsNonRoot=true)"
            )),
            _ => {}
        }
        if sc["runAsUser"].as_i64() == Some(0) {
            out.push(format!(
                "runAsUser=0 (container \"{name}\" must not set runAsUser=0)"
            ));
        }
        match sc["seccompProfile"]["type"].as_str() {
            Some("RuntimeDefault" | "Localhost") => {}
            Some(kind) => out.push(format!(
                "seccompProfile (container \"{name}\" must not set securityContext.seccompProfile.type to \"{kind}\")"
            )),
            None if !matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost")) => out.push(format!(
                "seccompProfile (pod or container \"{name}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            )),
            None => {}
        }
        let caps = &sc["capabilities"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        if !strings(&caps["drop"]).iter().any(|c| c == "ALL") {
            out.push(format!(
                "unrestricted capabilities (container \"{name}\" must set securityContext.capabilities.drop=[\"ALL\"])"
            ));
        }
        for added in strings(&caps["add"]) {
            if added != "NET_BIND_SERVICE" {
                let level = if BASELINE_CAPABILITIES.contains(&added.as_str()) {
                    "restricted"
                } else {
                    "baseline"
                };
                out.push(format!(
                    "unrestricted capabilities (container \"{name}\" must not include \"{added}\" in securityContext.capabilities.add; {level})"
                ));
            }
        }
    }
    out
}

fn selinux(options: &Value, owner: &str) -> Vec<String> {
    let mut out = Vec::new();
    if options.is_null() {
        return out;
    }
    if let Some(kind) = options["type"].as_str()
        && !SELINUX_TYPES.contains(&kind)
    {
        out.push(format!("seLinuxOptions ({owner}: type \"{kind}\")"));
    }
    for field in ["user", "role"] {
        if options[field].as_str().is_some_and(|v| !v.is_empty()) {
            out.push(format!("seLinuxOptions ({owner} must not set {field})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compliant() -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "main", "image": "x", "securityContext": {
                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
                "volumes": [{"name": "tmp", "emptyDir": {}}]
            }
        })
    }

    #[test]
    fn a_compliant_pod_is_admitted() {
        assert_eq!(restricted_violations(&compliant()), Vec::<String>::new());
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "host namespaces",
                Box::new(|p| p["spec"]["hostNetwork"] = json!(true)),
            ),
            ("hostPID", Box::new(|p| p["spec"]["hostPID"] = json!(true))),
            (
                "privileged",
                Box::new(|p| {
                    p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true)
                }),
            ),
            (
                "allowPrivilegeEscalation",
                Box::new(|p| {
                    p["spec"]["containers"][0]["securityContext"]
                        .as_object_mut()
                        .map(|o| o.remove("allowPrivilegeEscalation"));
                }),
            ),
            (
                "runAsNonRoot",
                Box::new(|p| p["spec"]["securityContext"]["runAsNonRoot"] = json!(false)),
            ),
            (
                "runAsUser=0",
                Box::new(|p| p["spec"]["securityContext"]["runAsUser"] = json!(0)),
            ),
            (
                "seccompProfile",
                Box::new(|p| {
                    p["spec"]["securityContext"]
                        .as_object_mut()
                        .map(|o| o.remove("seccompProfile"));
                }),
            ),
            (
                "seccompProfile",
                Box::new(|p| {
                    p["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
                        json!({"type": "Unconfined"})
                }),
            ),
            (
                "unrestricted capabilities",
                Box::new(|p| {
                    p["spec"]["containers"][0]["securityContext"]["capabilities"] =
                        json!({"drop": ["NET_RAW"]})
                }),
            ),
            (
                "unrestricted capabilities",
                Box::new(|p| {
                    p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] =
                        json!(["SYS_ADMIN"])
                }),
            ),
            (
                "hostPath",
                Box::new(|p| {
                    p["spec"]["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}])
                }),
            ),
            (
                "hostPort",
                Box::new(|p| {
                    p["spec"]["containers"][0]["ports"] =
                        json!([{"containerPort": 80, "hostPort": 80}])
                }),
            ),
            (
                "initContainers",
                Box::new(|p| p["spec"]["initContainers"] = json!([{"name": "init", "image": "x"}])),
            ),
        ];
        for (what, change) in cases {
            let mut pod = compliant();
            change(&mut pod);
            let violations = restricted_violations(&pod);
            assert!(!violations.is_empty(), "{what} must be refused");
            if what != "initContainers" {
                assert!(
                    violations.iter().any(|v| v.contains(what)),
                    "{what}: {violations:?}"
                );
            }
        }
    }
}
