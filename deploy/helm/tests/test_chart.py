"""Assertions on the Airlock chart's rendered output (no cluster needed).

Run by scripts/check-deploy.sh: `python -m pytest deploy/helm/tests`.
"""

from __future__ import annotations

import base64
import pathlib
import sys

import helm_python as helm
import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import chart  # noqa: E402

PRODUCTION = chart.load_values(chart.VALUES_SETS["production"])
DEV = {"devMode": {"enabled": True}}

# The orchestrator's Role, exactly: what the Kubernetes runtime calls, nothing more.
ORCHESTRATOR_RULES = {
    ("", "pods"): {"create", "get", "list", "watch", "delete"},
    ("", "pods/log"): {"get"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create"},
}

VALUE_SETS = {"default": {}, "production": PRODUCTION, "dev": DEV}


@pytest.fixture(scope="module", params=list(VALUE_SETS), ids=list(VALUE_SETS))
def rendered(request):
    return chart.documents(VALUE_SETS[request.param])


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def deployment_of(docs, component):
    name = f"airlock-{component}"
    return next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == name)


def env_of(docs, component):
    """The environment a component's container gets: ConfigMap entries and env."""
    deployment = deployment_of(docs, component)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    env = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def test_runs_namespace_is_labelled_restricted(rendered):
    namespaces = of_kind(rendered, "Namespace")
    assert len(namespaces) == 1
    labels = namespaces[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespaces[0]["metadata"]["name"] != chart.NAMESPACE


def test_orchestrator_role_is_exactly_what_it_uses(rendered):
    roles = of_kind(rendered, "Role")
    assert len(roles) == 1
    role = roles[0]
    runs_namespace = of_kind(rendered, "Namespace")[0]["metadata"]["name"]
    assert role["metadata"]["namespace"] == runs_namespace
    granted = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                assert key not in granted, f"{key} granted twice"
                granted[key] = set(rule["verbs"])
    assert granted == ORCHESTRATOR_RULES
    binding = of_kind(rendered, "RoleBinding")[0]
    assert binding["metadata"]["namespace"] == runs_namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airlock-orchestrator", "namespace": chart.NAMESPACE}
    ]


def test_nothing_cluster_wide(rendered):
    kinds = {d["kind"] for d in rendered}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_only_the_orchestrator_mounts_a_service_account_token(rendered):
    for name, spec in pod_specs(rendered):
        assert spec["automountServiceAccountToken"] is (name == "airlock-orchestrator"), name


def test_run_pods_are_denied_all_traffic(rendered):
    runs_namespace = of_kind(rendered, "Namespace")[0]["metadata"]["name"]
    policy = next(
        p for p in of_kind(rendered, "NetworkPolicy") if p["metadata"]["name"] == "airlock-runs-deny-all"
    )
    assert policy["metadata"]["namespace"] == runs_namespace
    # The very spec the orchestrator checks at start-up (network_policy.rs).
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"airlock.dev/managed-by": "airlock"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    for kind in ("ResourceQuota", "LimitRange"):
        assert [d["metadata"]["namespace"] for d in of_kind(rendered, kind)] == [runs_namespace]


def test_no_secret_value_in_any_configmap(rendered):
    secrets = []
    for secret in of_kind(rendered, "Secret"):
        secrets += list(secret.get("stringData", {}).values())
        secrets += [base64.b64decode(v).decode() for v in secret.get("data", {}).values()]
    config = "\n".join(
        f"{k}={v}" for cm in of_kind(rendered, "ConfigMap") for k, v in cm.get("data", {}).items()
    )
    for value in secrets:
        for line in value.splitlines() or [value]:
            if len(line.strip()) >= 8:
                assert line.strip() not in config
    for cm in of_kind(rendered, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not key.endswith(("DATABASE_URL", "AMQP_URL", "CLIENT_SECRET", "PASSWORD")), key
    # The connection URLs and the OIDC client secret reach the pods from Secrets only.
    for component in ("gateway", "orchestrator", "result-processor"):
        env = env_of(rendered, component)
        for name in ("AIRLOCK_DATABASE_URL", "AIRLOCK_AMQP_URL"):
            assert "secretKeyRef" in env[name], (component, name)
        assert "AIRLOCK_DEV_LOGIN" not in env


def test_oidc_client_secret_comes_from_its_secret():
    env = env_of(chart.documents(PRODUCTION), "gateway")
    assert env["AIRLOCK_OIDC_CLIENT_SECRET"] == {
        "secretKeyRef": {"name": "airlock-oidc", "key": "client-secret"}
    }
    assert env["AIRLOCK_OIDC_ISSUER"] == "https://login.example.com/realms/research"
    assert env["AIRLOCK_PUBLIC_URL"] == "https://airlock.example.com"
    assert env["AIRLOCK_COOKIE_SECURE"] == "true"


def test_every_container_is_non_root_read_only_without_capabilities(rendered):
    for name, spec in pod_specs(rendered):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["runAsNonRoot"] is True, where
            assert context.get("runAsUser", pod.get("runAsUser", 0)) > 0, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            assert container["resources"]["limits"] and container["resources"]["requests"], where


def test_pods_outlive_the_services_drain(rendered):
    grace = int(
        of_kind(rendered, "ConfigMap")[0]["data"]["AIRLOCK_SHUTDOWN_GRACE_SECS"]
    )
    for name, spec in pod_specs(rendered):
        if name.startswith("airlock-") and not name.startswith("airlock-dev-") and name != "airlock-migrate":
            assert spec["terminationGracePeriodSeconds"] > grace, name


def test_probes_on_healthz_and_readyz(rendered):
    for name, spec in pod_specs(rendered):
        if name in ("airlock-gateway", "airlock-orchestrator", "airlock-result-processor"):
            container = spec["containers"][0]
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


ACTIVE_ACTIVE = ("orchestrator", "result-processor")
SERVICES = ("gateway",) + ACTIVE_ACTIVE


def test_orchestrators_and_result_processors_roll_over_several_replicas(rendered):
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(rendered, "HorizontalPodAutoscaler")}
    for component in ACTIVE_ACTIVE:
        deployment = deployment_of(rendered, component)
        if deployment["metadata"]["name"] in autoscaled:
            assert "replicas" not in deployment["spec"], component
        else:
            assert deployment["spec"]["replicas"] == 2, component
        # Never fewer than the wanted replicas, one extra at a time (no Recreate).
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }, component


def test_two_replicas_of_everything_by_default():
    docs = chart.documents({})
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    for component in SERVICES:
        assert deployment_of(docs, component)["spec"]["replicas"] == 2, component
    assert deployment_of(chart.documents({"orchestrator": {"replicas": 5}}), "orchestrator")["spec"]["replicas"] == 5


def test_replicas_know_their_id_and_lease(rendered):
    for component in ACTIVE_ACTIVE:
        env = env_of(rendered, component)
        # The pod's name, from the downward API: unique among live replicas.
        assert env["AIRLOCK_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}, component
        assert env["AIRLOCK_REPLICA_LEASE_SECS"] == "15", component
        assert "AIRLOCK_NODE_NAME" not in env, component
    assert "AIRLOCK_REPLICA_ID" not in env_of(rendered, "gateway")
    docs = chart.documents({"replicaLeaseSeconds": 30})
    for component in ACTIVE_ACTIVE:
        assert env_of(docs, component)["AIRLOCK_REPLICA_LEASE_SECS"] == "30", component


def test_concurrency_limits():
    env = env_of(chart.documents({}), "orchestrator")
    assert env["AIRLOCK_MAX_CONCURRENT_RUNS"] == "32"
    assert env["AIRLOCK_PREFETCH"] == "32"
    # null: no global limit, no per-team limit.
    assert "AIRLOCK_PLATFORM_MAX_CONCURRENT_RUNS" not in env
    assert "AIRLOCK_TEAM_MAX_CONCURRENT_RUNS" not in env
    env = env_of(
        chart.documents({"orchestrator": {"platformMaxConcurrentRuns": 300, "teamMaxConcurrentRuns": 20}}),
        "orchestrator",
    )
    assert env["AIRLOCK_PLATFORM_MAX_CONCURRENT_RUNS"] == "300"
    assert env["AIRLOCK_TEAM_MAX_CONCURRENT_RUNS"] == "20"


def test_every_service_has_a_disruption_budget_matching_its_pods(rendered):
    budgets = {p["metadata"]["name"]: p for p in of_kind(rendered, "PodDisruptionBudget")}
    for component in SERVICES:
        deployment = deployment_of(rendered, component)
        budget = budgets[deployment["metadata"]["name"]]
        assert budget["apiVersion"] == "policy/v1"
        assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
        # maxUnavailable, not minAvailable: valid with any number of replicas (with one, a
        # drain may still evict it; minAvailable 1 would block the drain forever).
        assert budget["spec"]["maxUnavailable"] == 1, component
        assert "minAvailable" not in budget["spec"], component
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector == deployment["spec"]["selector"]["matchLabels"], component
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), component


def test_disruption_budgets_can_be_turned_off():
    values = {key: {"podDisruptionBudget": {"enabled": False, "maxUnavailable": 1}}
              for key in ("gateway", "orchestrator", "resultProcessor")}
    assert not of_kind(chart.documents(values), "PodDisruptionBudget")
    only = chart.documents({"orchestrator": {"podDisruptionBudget": {"enabled": False, "maxUnavailable": 1}}})
    names = {p["metadata"]["name"] for p in of_kind(only, "PodDisruptionBudget")}
    assert names == {"airlock-gateway", "airlock-result-processor"}


def test_orchestrator_on_the_kubernetes_runtime(rendered):
    env = env_of(rendered, "orchestrator")
    assert env["AIRLOCK_RUNTIME"] == "kubernetes"
    assert env["AIRLOCK_K8S_NAMESPACE"] == of_kind(rendered, "Namespace")[0]["metadata"]["name"]
    assert env["AIRLOCK_K8S_RUNTIME_CLASS"] == "gvisor"


def test_runtime_class_can_be_changed():
    env = env_of(chart.documents({"runs": {"runtimeClassName": "kata"}}), "orchestrator")
    assert env["AIRLOCK_K8S_RUNTIME_CLASS"] == "kata"


def test_dev_databases_absent_by_default_present_when_enabled():
    def dev_objects(docs):
        return [d for d in docs if d["metadata"]["name"].startswith("airlock-dev-")]

    assert dev_objects(chart.documents({})) == []
    assert dev_objects(chart.documents(PRODUCTION)) == []
    dev = dev_objects(chart.documents(DEV))
    names = {(d["kind"], d["metadata"]["name"]) for d in dev}
    assert ("Deployment", "airlock-dev-postgresql") in names
    assert ("Deployment", "airlock-dev-rabbitmq") in names
    assert ("Secret", "airlock-dev-connections") in names
    env = env_of(chart.documents(DEV), "gateway")
    assert env["AIRLOCK_DATABASE_URL"]["secretKeyRef"]["name"] == "airlock-dev-connections"


@pytest.mark.parametrize(
    "values",
    [
        {"gatway": {"replicas": 2}},
        {"gateway": {"replicaz": 2}},
        {"gateway": {"replicas": "2"}},
        {"runs": {"namespace": {"name": "runs", "create": "yes"}}},
        {"monitoring": {"serviceMonitor": {"enabled": True, "extra": 1}}},
        {"orchestrator": {"replicas": -1}},
        {"replicaLeaseSeconds": 2},
        {"replicaLeaseSeconds": 301},
        {"replicaLeaseSeconds": "15"},
        {"orchestrator": {"platformMaxConcurrentRuns": 0}},
        {"orchestrator": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 70}}},
        {"gateway": {"pdbMaxUnavailable": 1}},
        {"images": {"digests": {"gateway": "latest"}}},
    ],
)
def test_schema_rejects_unknown_or_wrongly_typed_values(values):
    with pytest.raises(helm.HelmError):
        chart.render(values)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"runs": {"namespace": {"name": chart.NAMESPACE, "create": True}}}, "must differ"),
        ({"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
        ({"oidc": {"enabled": True}}, "publicUrl"),
        ({"oidc": {"enabled": True, "issuer": "https://idp.example.com"}, "publicUrl": "https://a.example.com"}, "clientId"),
        ({"ingress": {"enabled": True}}, "ingress.hosts"),
    ],
)
def test_inconsistent_values_fail_with_a_message(values, message):
    with pytest.raises(helm.HelmError, match=message):
        chart.render(values)


def test_app_version_is_the_workspace_version():
    assert chart.app_version() == chart.workspace_version()


def test_alerts_file_is_a_rules_file_used_by_the_prometheus_rule():
    alerts = yaml.safe_load((chart.CHART / "files" / "alerts.yaml").read_text())
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    for wanted in (
        "AirlockServiceDown",
        "AirlockNotReady",
        "AirlockOutboxBacklogAging",
        "AirlockMessagesDeadLettered",
        "AirlockSandboxCreateFailures",
        "AirlockRunsWaitingLong",
        "AirlockHigh5xxRate",
        "AirlockDatabasePoolSaturated",
    ):
        assert wanted in names
    rule = of_kind(chart.documents(PRODUCTION), "PrometheusRule")[0]
    assert rule["spec"] == alerts
    monitor = of_kind(chart.documents(PRODUCTION), "ServiceMonitor")[0]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    services = [s for s in of_kind(chart.documents(PRODUCTION), "Service")]
    jobs = {s["metadata"]["labels"].get("airlock.dev/job") for s in services}
    assert jobs >= {"airlock-gateway", "airlock-orchestrator", "airlock-result-processor"}


def test_dashboard_is_shipped_when_asked():
    assert not [cm for cm in of_kind(chart.documents({}), "ConfigMap") if cm["metadata"]["name"].endswith("dashboard")]
    dashboards = [
        cm for cm in of_kind(chart.documents(PRODUCTION), "ConfigMap") if cm["metadata"]["name"].endswith("dashboard")
    ]
    assert len(dashboards) == 1
    assert '"uid": "airlock"' in dashboards[0]["data"]["airlock.json"]


def test_every_checkov_skip_carries_a_reason():
    """A finding is only ever skipped with its reason written beside it."""
    for name, path in chart.VALUES_SETS.items():
        for doc in chart.documents(chart.load_values(path)):
            for key, value in (doc["metadata"].get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check.startswith("CKV") and len(reason) >= 30, (name, doc["metadata"]["name"], value)


def autoscaled_metrics(hpa):
    """(type, metric name, target) of every metric an autoscaler follows."""
    found = []
    for metric in hpa["spec"]["metrics"]:
        kind = metric["type"]
        source = metric[kind[0].lower() + kind[1:]]
        name = source["name"] if kind == "Resource" else source["metric"]["name"]
        found.append((kind, name, source["target"]))
    return found


def test_autoscalers_replace_fixed_replicas():
    enabled = {"autoscaling": {"enabled": True}}
    docs = chart.documents({"gateway": enabled, "orchestrator": enabled, "resultProcessor": enabled})
    autoscalers = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == {"airlock-gateway", "airlock-orchestrator", "airlock-result-processor"}
    for name, hpa in autoscalers.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["metadata"]["name"] == name
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10), name
    for deployment in of_kind(docs, "Deployment"):
        if deployment["metadata"]["name"] in autoscalers:
            assert "replicas" not in deployment["spec"]
    assert autoscaled_metrics(autoscalers["airlock-gateway"]) == [
        ("Resource", "cpu", {"type": "Utilization", "averageUtilization": 70})
    ]
    # Per-pod metrics the services export, served by a Prometheus adapter (docs/metrics.md).
    assert autoscaled_metrics(autoscalers["airlock-orchestrator"]) == [
        ("Pods", "airlock_runs_waiting", {"type": "AverageValue", "averageValue": "10"})
    ]
    assert autoscaled_metrics(autoscalers["airlock-result-processor"]) == [
        ("Resource", "cpu", {"type": "Utilization", "averageUtilization": 70}),
        ("Pods", "airlock_events_ingested", {"type": "AverageValue", "averageValue": "2000"}),
    ]


def test_autoscaler_targets_can_be_changed():
    docs = chart.documents(
        {
            "orchestrator": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 8, "targetWaitingRuns": 4}},
            "resultProcessor": {"autoscaling": {"enabled": True, "targetEventsPerSecond": 500}},
        }
    )
    autoscalers = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == {"airlock-orchestrator", "airlock-result-processor"}
    orchestrator = autoscalers["airlock-orchestrator"]
    assert (orchestrator["spec"]["minReplicas"], orchestrator["spec"]["maxReplicas"]) == (3, 8)
    assert autoscaled_metrics(orchestrator)[0][2]["averageValue"] == "4"
    assert autoscaled_metrics(autoscalers["airlock-result-processor"])[1][2]["averageValue"] == "500"
