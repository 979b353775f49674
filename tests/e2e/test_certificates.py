"""Self-managed certificates against the real API server, with the adapter's own RBAC: the
Secret is created once and shared, renewed two thirds into its life, the CA reaches the
APIService's caBundle, and the aggregator trusts what the adapter serves."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
from collections.abc import AsyncIterator

import pytest
from cryptography import x509

from metrics_adapter.certs.issue import Pair, issue_serving, new_ca
from metrics_adapter.certs.self_managed import CA_NAME_PREFIX, SelfManaged, Stored
from metrics_adapter.errors import KubeError
from metrics_adapter.kube.client import SECRETS, KubeClient
from tests.e2e.conftest import Registered
from tests.support.controlplane import (
    ADAPTER_NAMESPACE,
    ADAPTER_SERVICE,
    APISERVICE,
    Adapter,
    ControlPlane,
    adapter_kubeconfig,
    load_manifests,
    route_apiservice,
    serving_pair,
    wait_for,
)
from tests.support.controlplane.adapter import DEPLOY

pytestmark = pytest.mark.e2e

SECRET = "metrics-adapter-certs"  # the one name deploy/rbac.yaml lets the adapter update


def ship_empty_secret(cp: ControlPlane) -> None:
    """The Secret as deploy/ ships it, empty: the adapter may update it, never create one."""
    cp.delete("v1", "Secret", SECRET, ADAPTER_NAMESPACE)
    [shipped] = [d for d in load_manifests(DEPLOY / "rbac.yaml") if d["kind"] == "Secret"]
    assert shipped["metadata"]["name"] == SECRET
    cp.apply(shipped)


@pytest.fixture
async def kube(registered: Registered) -> AsyncIterator[KubeClient]:
    ship_empty_secret(registered.cp)
    async with await KubeClient.connect(adapter_kubeconfig(registered.cp)) as client:
        yield client
    ship_empty_secret(registered.cp)


def manager(kube: KubeClient, served: list[Pair]) -> SelfManaged:
    return SelfManaged(kube, ADAPTER_NAMESPACE, SECRET, ADAPTER_SERVICE, None, served.append)


async def test_replicas_share_one_secret_and_serve_the_same_pair(kube: KubeClient) -> None:
    first: list[Pair] = []
    second: list[Pair] = []
    a, b = manager(kube, first), manager(kube, second)
    made = await a.ensure()
    again = await b.ensure()
    assert made.serving == again.serving and first == second == [made.serving]
    assert made.serving.signed_by(made.ca)
    names = made.serving.cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    assert f"{ADAPTER_SERVICE}.{ADAPTER_NAMESPACE}.svc" in names
    assert (await a.ensure()).resource_version == made.resource_version  # nothing rewritten


async def test_a_serving_certificate_due_for_renewal_is_renewed_under_the_same_ca(
    kube: KubeClient,
) -> None:
    served: list[Pair] = []
    keeper = manager(kube, served)
    made = await keeper.ensure()
    # Two thirds of a 6-minute life (backdated 5 minutes) have passed: due now.
    due = issue_serving(made.ca, keeper.hosts, validity=dt.timedelta(minutes=1))
    stale = Stored(made.ca, made.older_cas, due)
    await keeper._write(stale, await kube.get(SECRETS, SECRET, ADAPTER_NAMESPACE))
    renewed = await manager(kube, []).ensure()
    assert renewed.ca == made.ca and renewed.serving not in (made.serving, due)
    assert renewed.serving.not_after - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


async def test_a_ca_due_for_renewal_keeps_the_old_one_trusted(kube: KubeClient) -> None:
    keeper = manager(kube, [])
    await keeper.ensure()
    old_ca = new_ca("old", validity=dt.timedelta(minutes=1))
    await keeper._write(
        Stored(old_ca, (), issue_serving(old_ca, keeper.hosts)),
        await kube.get(SECRETS, SECRET, ADAPTER_NAMESPACE),
    )
    renewed = await keeper.ensure()
    assert renewed.ca != old_ca and renewed.serving.signed_by(renewed.ca)
    assert renewed.older_cas == (old_ca.cert_pem,)  # still valid: trusted until it expires


async def test_a_new_ca_is_served_only_after_the_aggregator_had_time_to_trust_it(
    kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metrics_adapter.certs.self_managed")
    served: list[Pair] = []
    keeper = SelfManaged(
        kube, ADAPTER_NAMESPACE, SECRET, ADAPTER_SERVICE, None, served.append, trust_delay=1.0
    )
    first = await keeper.ensure()
    ca2 = new_ca(f"{CA_NAME_PREFIX}next")
    renewed = Stored(ca2, (first.ca.cert_pem,), issue_serving(ca2, keeper.hosts))
    await keeper._write(renewed, await kube.get(SECRETS, SECRET, ADAPTER_NAMESPACE))
    await keeper.ensure()
    await keeper.ensure()
    assert served == [first.serving]  # the new CA is published, not yet relied on
    waiting = [r for r in caplog.records if r.getMessage().startswith("a new CA is in")]
    assert len(waiting) == 1  # said once, not at every look (the soak found one a second)
    await asyncio.sleep(1.1)
    await keeper.ensure()
    assert served == [first.serving, renewed.serving]


async def test_a_damaged_secret_is_replaced_not_served(kube: KubeClient) -> None:
    keeper = manager(kube, [])
    made = await keeper.ensure()
    found = await kube.get(SECRETS, SECRET, ADAPTER_NAMESPACE)
    other = issue_serving(new_ca("elsewhere"), keeper.hosts)
    found["data"]["tls.key"] = base64.b64encode(other.key_pem).decode()  # not tls.crt's key
    await kube.request("PUT", SECRETS.path(ADAPTER_NAMESPACE, SECRET), "tamper", body=found)
    served: list[Pair] = []
    repaired = await manager(kube, served).ensure()
    assert repaired.serving != made.serving and served == [repaired.serving]
    assert repaired.serving.problem() == ""


async def test_without_the_shipped_secret_the_error_says_to_apply_deploy(
    registered: Registered, kube: KubeClient
) -> None:
    registered.cp.delete("v1", "Secret", SECRET, ADAPTER_NAMESPACE)
    with pytest.raises(KubeError, match=r"403 Forbidden: .*; apply deploy/ \(or the Helm chart\)"):
        await manager(kube, []).ensure()


def test_the_aggregator_trusts_a_self_managed_adapter(registered: Registered) -> None:
    """A second adapter with --cert-secret takes over the APIService, writes its CA into the
    caBundle itself, and the aggregator reads values from it; then the first is restored."""
    cp = registered.cp
    ship_empty_secret(cp)
    managed = Adapter(
        objects=registered.adapter.objects,
        state=cp.state / "self-managed",
        pair=serving_pair(ADAPTER_SERVICE, ADAPTER_NAMESPACE, cp.ca),  # unused: no --tls-*
        ca_pem=b"",
        auth_kubeconfig=adapter_kubeconfig(cp),
        args=[f"--cert-secret={SECRET}", f"--apiservice={APISERVICE}"],
        self_managed=True,
    )
    [apiservice] = load_manifests(DEPLOY / "apiservice.yaml")
    try:
        managed.start()
        apiservice["spec"]["service"]["port"] = managed.port
        cp.apply(apiservice, field_manager="e2e-self-managed")  # no caBundle of ours

        def ca_published() -> bool:
            current = cp.get("apiregistration.k8s.io/v1", "APIService", APISERVICE) or {}
            secret = cp.get("v1", "Secret", SECRET, ADAPTER_NAMESPACE) or {}
            bundle = (current.get("spec") or {}).get("caBundle")
            return bool(secret) and bundle == (secret.get("data") or {}).get("ca.crt")

        wait_for("our CA in the APIService caBundle", ca_published, 30)
        path = registered.metric_path(registered.worker)
        wait_for(
            "a value from the self-managed adapter",
            lambda: cp.client.get(path).status_code == 200,
            60,
        )
        secret = cp.get("v1", "Secret", SECRET, ADAPTER_NAMESPACE)
        assert secret is not None
        assert base64.b64decode(secret["data"]["ca.crt"]) != registered.adapter.ca_pem
    finally:
        managed.stop()
        route_apiservice(cp, registered.adapter)
        ship_empty_secret(cp)
