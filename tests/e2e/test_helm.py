"""The Helm chart, rendered by the real ``helm`` (hack/build-helm.sh) and applied to the e2e
kube-apiserver with server-side dry-run and strict field validation.

cert-manager's CRDs are not in the test cluster, so the certManager mode is checked on the
rendering only; the default mode (selfManaged) and the ServiceMonitor (with
prometheus-operator's real CRD installed) are applied.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import pytest
import yaml

from metrics_adapter import __version__
from tests.e2e.conftest import Registered
from tests.support.controlplane import DEPLOY, KubeError, load_manifests
from tests.support.helm import (
    CHART,
    HELM,
    HelmError,
    ensure_helm,
    helm,
    install_servicemonitor_crd,
    rendered,
)

pytestmark = pytest.mark.e2e

NAMESPACE = "helm-e2e"
"""Where the chart is rendered for the apply tests: apart from keda/, which the e2e adapter's
ExternalName Service occupies."""


@pytest.fixture(scope="module", autouse=True)
def helm_binary(request: pytest.FixtureRequest) -> None:
    if not os.access(HELM, os.X_OK):
        # In CI a missing helm is built (and a failed build fails the tests), never skipped.
        if not os.environ.get("CI") and shutil.which("go") is None:
            pytest.skip(f"{HELM} missing and no Go to build it")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"building helm into {HELM}: a minute or more when cold")
    ensure_helm()


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = of_kind(docs, kind)
    return doc


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(found)


def canonical(rules: list[dict[str, Any]]) -> list[str]:
    """Rules as comparable strings: order of rules and of list items does not matter."""
    return sorted(
        json.dumps({k: sorted(v) for k, v in rule.items()}, sort_keys=True) for rule in rules
    )


def rules(docs: list[dict[str, Any]], kind: str) -> list[str]:
    return canonical([rule for doc in of_kind(docs, kind) for rule in doc.get("rules", [])])


# -- lint and rendering (helm only) ------------------------------------------------------------

LINT_VALUES = [
    {},
    {"certificates": {"mode": "certManager"}},
    {"certificates": {"mode": "secret", "secret": {"caBundle": "Y2E="}}},
    {"prometheus": {"serviceMonitor": {"enabled": True, "additionalLabels": {"release": "p"}}}},
    {"prometheus": {"secure": True, "serviceMonitor": {"enabled": True}}},
    {"webhooks": {"enabled": False}},
    {"watchNamespace": "apps,jobs", "permissions": {"operator": {"restrict": {"secret": True}}}},
]


@pytest.mark.parametrize(
    "values",
    LINT_VALUES,
    ids=["default", "certManager", "secret", "sm", "secure-sm", "no-webhooks", "least-privilege"],
)
def test_helm_lint_is_clean(values: dict[str, Any]) -> None:
    sets = [f"--set-json={key}={json.dumps(value)}" for key, value in values.items()]
    output = helm("lint", str(CHART), "--strict", *sets)
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert not re.search(r"\[(WARNING|ERROR)\]", output), output


def test_chart_metadata_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__.split("+")[0]
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sorted(
        p.name for p in (DEPLOY / "crds").glob("*.yaml")
    )


def test_default_rendering_self_manages_certificates() -> None:
    docs = rendered()
    args = container(docs)["args"]
    assert args[:7] == [
        "serve",
        "--in-cluster",
        "--secure-port=6443",
        "--metrics-port=8080",
        "--cert-dir=/tmp/certs",
        "--log-format=json",
        "--log-level=info",
    ]
    assert "--cert-secret=metrics-adapter-certs" in args
    assert "--service=metrics-adapter" in args
    assert "--apiservice=v1beta1.external.metrics.k8s.io" in args
    assert "--webhook-configuration=metrics-adapter" in args
    assert not [a for a in args if a.startswith("--tls-")]
    apiservice = one(docs, "APIService")
    assert "caBundle" not in apiservice["spec"], "the adapter writes it"
    assert "annotations" not in apiservice["metadata"]
    assert apiservice["spec"]["service"] == {
        "namespace": "keda",
        "name": "metrics-adapter",
        "port": 443,
    }
    assert not of_kind(docs, "Certificate") and not of_kind(docs, "ServiceMonitor")
    crds = of_kind(docs, "CustomResourceDefinition")
    assert crds == load_manifests(DEPLOY / "crds"), "the chart installs deploy/crds unchanged"


def test_the_deployment_is_hardened() -> None:
    docs = rendered()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(docs)
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert main["livenessProbe"]["httpGet"] == {
        "path": "/livez",
        "port": "https",
        "scheme": "HTTPS",
    }
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["resources"] == {
        "requests": {"cpu": "100m", "memory": "160Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_the_values_a_keda_user_looks_for_reach_the_pod() -> None:
    docs = rendered(
        {
            "image": {"repository": "registry.example/metrics-adapter", "tag": "9.9.9"},
            "imagePullSecrets": [{"name": "regcred"}],
            "replicaCount": 3,
            "logging": {"level": "debug", "format": "text"},
            "clusterObjectNamespace": "shared",
            "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {}},
            "resources": {"requests": {"cpu": "1"}},
            "extraArgs": ["--scaler-timeout=5"],
            "podDisruptionBudget": {"minAvailable": 2},
        }
    )
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(docs)
    assert main["image"] == "registry.example/metrics-adapter:9.9.9"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert deployment["spec"]["replicas"] == 3
    assert {"--log-level=debug", "--log-format=text", "--scaler-timeout=5"} <= set(main["args"])
    assert "--cluster-object-namespace=shared" in main["args"]
    assert main["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    assert [e["name"] for e in main["env"][:-1]] == ["POD_NAME", "POD_IP"]  # sharding
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert main["resources"]["requests"] == {"cpu": "1", "memory": "160Mi"}  # Helm merges maps
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_the_cluster_object_namespace_defaults_to_the_release_namespace() -> None:
    assert (
        "--cluster-object-namespace=autoscaling"
        in container(rendered(namespace="autoscaling"))["args"]
    )


def test_cert_manager_mode_issues_a_certificate_and_injects_its_ca() -> None:
    docs = rendered({"certificates": {"mode": "certManager"}}, namespace="autoscaling")
    certificate = one(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "metrics-adapter-certs"
    assert "metrics-adapter.autoscaling.svc" in certificate["spec"]["dnsNames"]
    issuer = one(docs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    name = certificate["metadata"]["name"]
    for kind in ("APIService", "ValidatingWebhookConfiguration"):
        annotations = one(docs, kind)["metadata"]["annotations"]
        assert annotations == {"cert-manager.io/inject-ca-from": f"autoscaling/{name}"}, kind
    assert_mounts_certificate_files(docs)
    assert not [r for r in rules(docs, "Role") + rules(docs, "ClusterRole") if certificate_rule(r)]


def test_cert_manager_mode_uses_a_given_issuer() -> None:
    issuer = {"kind": "ClusterIssuer", "name": "corporate-ca"}
    docs = rendered({"certificates": {"mode": "certManager", "certManager": {"issuerRef": issuer}}})
    assert not of_kind(docs, "Issuer")
    assert one(docs, "Certificate")["spec"]["issuerRef"] == {"group": "cert-manager.io", **issuer}


def test_secret_mode_mounts_your_secret_and_sets_your_ca_bundle() -> None:
    values = {"mode": "secret", "secretName": "my-tls", "secret": {"caBundle": "Y2E="}}
    docs = rendered({"certificates": values})
    assert one(docs, "APIService")["spec"]["caBundle"] == "Y2E="
    for webhook in one(docs, "ValidatingWebhookConfiguration")["webhooks"]:
        assert webhook["clientConfig"]["caBundle"] == "Y2E=", webhook["name"]
    assert not of_kind(docs, "Certificate")
    assert_mounts_certificate_files(docs, secret="my-tls")


def assert_mounts_certificate_files(
    docs: list[dict[str, Any]], secret: str = "metrics-adapter-certs"
) -> None:
    main = container(docs)
    assert "--tls-cert-file=/certs/tls.crt" in main["args"]
    assert "--tls-private-key-file=/certs/tls.key" in main["args"]
    assert not [a for a in main["args"] if a.startswith("--cert-secret")]
    assert {"name": "certs", "mountPath": "/certs", "readOnly": True} in main["volumeMounts"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "certs", "secret": {"secretName": secret}} in volumes


def test_a_misspelled_certificate_mode_fails_the_render() -> None:
    with pytest.raises(HelmError, match=r'certificates.mode: "selfmanaged" is not one of'):
        rendered({"certificates": {"mode": "selfmanaged"}})


def test_the_servicemonitor_carries_additional_labels() -> None:
    values = {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus"},
        "interval": "15s",
    }
    docs = rendered({"prometheus": {"serviceMonitor": values}})
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s"}
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= one(docs, "Service")["metadata"]["labels"].items()


READER = "metrics-adapter-metrics-reader"
SECURE = {"prometheus": {"secure": True, "serviceMonitor": {"enabled": True}}}


def test_secure_metrics_pass_the_flag_scrape_over_tls_and_offer_a_reader_role() -> None:
    docs = rendered(SECURE, namespace="autoscaling")
    assert "--metrics-secure" in container(docs)["args"]
    assert "--metrics-secure" not in container(rendered())["args"]
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {
        "serverName": "metrics-adapter.autoscaling.svc",
        "ca": {"secret": {"name": "metrics-adapter-certs", "key": "ca.crt"}},
    }
    readers = [d for d in of_kind(docs, "ClusterRole") if d["metadata"]["name"].endswith("reader")]
    [reader] = readers
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    assert not [d for d in of_kind(rendered(), "ClusterRole") if "reader" in d["metadata"]["name"]]
    # deploy/ offers the same role (unbound: Prometheus' ServiceAccount is the user's).
    [shipped] = load_manifests(DEPLOY / "metrics-reader.yaml")
    assert canonical(shipped["rules"]) == canonical(reader["rules"])


def test_secure_metrics_take_your_tls_config() -> None:
    mine = {"insecureSkipVerify": True}
    values = {
        "prometheus": {"secure": True, "serviceMonitor": {"enabled": True, "tlsConfig": mine}}
    }
    [endpoint] = one(rendered(values), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["tlsConfig"] == mine


# -- RBAC drift ----------------------------------------------------------------------------------


def test_the_chart_rbac_rules_equal_deploy_rbac() -> None:
    """deploy/rbac.yaml and the chart grant the same, rule for rule, so they never drift."""
    chart = rendered()
    deploy = load_manifests(DEPLOY / "rbac.yaml")
    for kind in ("ClusterRole", "Role"):
        assert rules(chart, kind) == rules(deploy, kind), kind


RESTRICTED = {"permissions": {"operator": {"restrict": {"secret": True}}}}


def test_restricted_secret_access_reads_secrets_only_in_the_object_namespace() -> None:
    docs = rendered(RESTRICTED)
    assert "--restrict-secret-access" in container(docs)["args"]
    cluster = [json.loads(r) for r in rules(of_kind(docs, "ClusterRole"), "ClusterRole")]
    assert not [r for r in cluster if "secrets" in r["resources"] and "list" in r["verbs"]]
    secrets = [d for d in of_kind(docs, "Role") if d["metadata"]["name"].endswith(":secrets")]
    [role] = secrets
    assert role["metadata"]["namespace"] == "keda"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}
    ]
    # deploy/restrict-secret-access/ is the same: its ClusterRole patch and its Role.
    overlay = DEPLOY / "restrict-secret-access"
    patched = load_manifests(overlay / "clusterrole.yaml")
    shipped = load_manifests(overlay / "secrets.yaml")
    assert rules(patched, "ClusterRole") == rules(docs, "ClusterRole")
    assert rules(shipped, "Role") == rules(secrets, "Role")
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert "--restrict-secret-access" in kustomization["patches"][1]["patch"]


def test_watched_namespaces_get_roles_and_nothing_is_listed_cluster_wide() -> None:
    docs = rendered({"watchNamespace": "apps, jobs", **RESTRICTED}, namespace="autoscaling")
    assert "--watch-namespace=apps, jobs" in container(docs)["args"]
    for rule in rules(docs, "ClusterRole"):
        verbs = set(json.loads(rule)["verbs"])
        assert not verbs & {"list", "watch"}, rule  # only the named caBundle targets
    by_namespace = {d["metadata"]["namespace"]: d for d in of_kind(docs, "Role")}
    assert {"apps", "jobs"} <= by_namespace.keys()
    namespaced = rules([by_namespace["apps"]], "Role")
    default_cluster = rules(rendered(), "ClusterRole")
    # Each watched namespace's Role: the default ClusterRole's rules on namespaced objects,
    # without ClusterTriggerAuthentications, the caBundle targets and (restricted) Secrets.
    assert all(json.loads(r)["resources"] != ["clustertriggerauthentications"] for r in namespaced)
    assert not [r for r in namespaced if "secrets" in json.loads(r)["resources"]]
    assert len(namespaced) == len(default_cluster) - 2  # apiservices, webhook configurations
    bound = {
        (b["metadata"]["namespace"], b["roleRef"]["name"]) for b in of_kind(docs, "RoleBinding")
    }
    assert {("apps", "metrics-adapter"), ("jobs", "metrics-adapter")} <= bound


def certificate_rule(rule: str) -> bool:
    """A rule that only self-managed certificates need: our APIService or webhook
    configuration, or writing Secrets."""
    parsed = json.loads(rule)
    writes_secrets = parsed["resources"] == ["secrets"] and set(parsed["verbs"]) - {"list", "watch"}
    ca_bundles = parsed["resources"] in (["apiservices"], ["validatingwebhookconfigurations"])
    return ca_bundles or bool(writes_secrets)


def test_only_self_managed_certificates_add_secret_and_apiservice_rules() -> None:
    self_managed, by_files = rendered(), rendered({"certificates": {"mode": "secret"}})
    for kind in ("ClusterRole", "Role"):
        added = [r for r in rules(self_managed, kind) if certificate_rule(r)]
        assert rules(by_files, kind) == [r for r in rules(self_managed, kind) if r not in added]
    assert [r for r in rules(self_managed, "ClusterRole") if certificate_rule(r)]
    assert [r for r in rules(self_managed, "Role") if certificate_rule(r)]


# -- the admission webhook -----------------------------------------------------------------------

KEDA_WEBHOOKS = {
    "vscaledobject.kb.io": ("scaledobjects", "/validate-keda-sh-v1alpha1-scaledobject"),
    "vscaledjob.kb.io": ("scaledjobs", "/validate-keda-sh-v1alpha1-scaledjob"),
    "vstriggerauthentication.kb.io": (
        "triggerauthentications",
        "/validate-keda-sh-v1alpha1-triggerauthentication",
    ),
    "vsclustertriggerauthentication.kb.io": (
        "clustertriggerauthentications",
        "/validate-keda-sh-v1alpha1-clustertriggerauthentication",
    ),
}
"""KEDA's webhook names, resources and paths (config/webhooks/validation_webhooks.yaml)."""


def test_the_webhook_configuration_is_kedas_on_the_apiservices_service() -> None:
    docs = rendered(namespace="autoscaling")
    configuration = one(docs, "ValidatingWebhookConfiguration")
    assert configuration["metadata"]["name"] == "metrics-adapter"
    assert "annotations" not in configuration["metadata"], "the adapter writes the caBundle"
    service = one(docs, "APIService")["spec"]["service"]
    webhooks = {w["name"]: w for w in configuration["webhooks"]}
    assert webhooks.keys() == KEDA_WEBHOOKS.keys()
    for name, (resource, path) in KEDA_WEBHOOKS.items():
        webhook = webhooks[name]
        assert webhook["clientConfig"] == {"service": {**service, "path": path}}, name
        assert webhook["rules"] == [
            {
                "apiGroups": ["keda.sh"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [resource],
            }
        ]
        assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Ignore", 10)
        assert (webhook["sideEffects"], webhook["matchPolicy"]) == ("None", "Equivalent")
        assert webhook["admissionReviewVersions"] == ["v1"]
        if resource != "clustertriggerauthentications":
            [excluded] = webhook["namespaceSelector"]["matchExpressions"]
            assert excluded["operator"] == "NotIn" and excluded["values"] == ["kube-system"]


def test_deploy_registers_the_same_webhooks_as_the_chart() -> None:
    chart = one(rendered(), "ValidatingWebhookConfiguration")
    [deploy] = load_manifests(DEPLOY / "webhook.yaml")
    assert deploy["metadata"]["name"] == chart["metadata"]["name"]
    assert deploy["webhooks"] == chart["webhooks"]


def test_the_failure_policy_is_a_value_checked_at_render() -> None:
    docs = rendered({"webhooks": {"failurePolicy": "Fail"}})
    policies = {w["failurePolicy"] for w in one(docs, "ValidatingWebhookConfiguration")["webhooks"]}
    assert policies == {"Fail"}
    with pytest.raises(HelmError, match=r'webhooks.failurePolicy: "fail" is not one of'):
        rendered({"webhooks": {"failurePolicy": "fail"}})


def test_without_webhooks_nothing_is_registered_nor_granted_for_them() -> None:
    enabled, disabled = rendered(), rendered({"webhooks": {"enabled": False}})
    assert not of_kind(disabled, "ValidatingWebhookConfiguration")
    assert "--webhook-configuration=" in container(disabled)["args"]
    removed = set(rules(enabled, "ClusterRole")) - set(rules(disabled, "ClusterRole"))
    assert {tuple(json.loads(r)["resources"]) for r in removed} == {
        ("horizontalpodautoscalers",),
        ("limitranges",),
        ("validatingwebhookconfigurations",),
    }
    assert not set(rules(disabled, "ClusterRole")) - set(rules(enabled, "ClusterRole"))


def test_every_role_is_bound_to_the_service_account() -> None:
    """Every role of ours, that is, but for the metrics reader, which is Prometheus'."""
    docs = rendered(SECURE, namespace="autoscaling")
    roles = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"] != READER
    }
    bound = set()
    for binding in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "metrics-adapter", "namespace": "autoscaling"}
        ]
        bound.add((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
    assert roles <= bound
    assert {
        ("ClusterRole", "system:auth-delegator"),
        ("Role", "extension-apiserver-authentication-reader"),
    } <= bound


# -- applied to the e2e kube-apiserver -------------------------------------------------------------


def apply_all(registered: Registered, docs: list[dict[str, Any]]) -> None:
    cp = registered.cp
    cp.ensure_namespace(NAMESPACE)
    for doc in docs:
        applied = cp.apply(doc, dry_run=True, field_manager="e2e-helm-dry-run")
        assert (applied["kind"], applied["metadata"]["name"]) == (
            doc["kind"],
            doc["metadata"]["name"],
        )


@pytest.mark.parametrize(
    "values",
    [RESTRICTED, {"watchNamespace": NAMESPACE, **RESTRICTED}],
    ids=["restricted", "namespaced"],
)
def test_the_least_privilege_renderings_apply_strictly(
    registered: Registered, values: dict[str, Any]
) -> None:
    apply_all(registered, rendered(values, namespace=NAMESPACE))


def test_the_default_rendering_applies_strictly(registered: Registered) -> None:
    docs = rendered(namespace=NAMESPACE)
    assert {d["kind"] for d in docs} >= {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "APIService",
        "ValidatingWebhookConfiguration",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }
    apply_all(registered, docs)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_the_servicemonitor_rendering_applies_with_prometheus_operators_crd(
    registered: Registered, secure: bool
) -> None:
    install_servicemonitor_crd(registered.cp)
    monitor = {"enabled": True, "additionalLabels": {"a": "b"}}
    docs = rendered(
        {"prometheus": {"secure": secure, "serviceMonitor": monitor}}, namespace=NAMESPACE
    )
    assert of_kind(docs, "ServiceMonitor")
    apply_all(registered, docs)


def test_a_misspelled_value_in_a_rendering_is_rejected(registered: Registered) -> None:
    """The apply tests can fail: an unknown field passed through values is an error."""
    docs = rendered({"podSecurityContext": {"runAsNonRot": True}}, namespace=NAMESPACE)
    registered.cp.ensure_namespace(NAMESPACE)
    with pytest.raises(KubeError, match="runAsNonRot"):
        registered.cp.apply(one(docs, "Deployment"), dry_run=True)
