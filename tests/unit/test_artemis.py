"""artemis-queue's parameters, URL, origin, TLS and metric name, as KEDA reads them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scalers import artemis
from scalers.errors import Problems
from scalers.params import TriggerInputs

BASE = {
    "managementEndpoint": "artemis.svc:8161",
    "queueName": "jobs",
    "brokerName": "broker0",
    "brokerAddress": "work",
}
LOGIN = {"username": "admin", "password": "s3cret-pw"}
DEFAULT_URL = (
    'http://artemis.svc:8161/console/jolokia/read/org.apache.activemq.artemis:broker="broker0",'
    'component=addresses,address="work",subcomponent=queues,routing-type="anycast",'
    'queue="jobs"/MessageCount'
)


def _parse(
    meta: dict[str, str], auth: dict[str, str] | None = None
) -> tuple[artemis.ArtemisScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(meta, {}, LOGIN if auth is None else auth)
    built = artemis.KIND.create(inputs, problems)
    assert built is None or isinstance(built, artemis.ArtemisScaler)
    return built, [str(p) for p in problems]


def test_defaults_url_origin_and_metric_name_as_keda() -> None:
    built, problems = _parse(BASE)
    assert built is not None, problems
    # KEDA's activationQueueLength defaults to 10, not 0.
    assert (built.target, built.activation_target) == (10, 10)
    assert built.metric_name == "artemis-jobs"
    assert built.query.url == DEFAULT_URL
    assert built.query.origin == "http://artemis.svc:8161"
    assert built.query.identity.verify and built.query.identity.cert_pem is None


@pytest.mark.parametrize("quote", ['"', "%22"])
def test_a_template_gives_the_names_quotes_and_all(quote: str) -> None:
    template = DEFAULT_URL.replace('"', quote).replace("artemis.svc:8161", "h:1")
    built, problems = _parse({"restApiTemplate": template})
    assert built is not None, problems
    assert built.meta.names == ("h:1", '"broker0"', '"work"', '"jobs"')
    assert built.metric_name == 'artemis-"jobs"'  # as KEDA names it
    assert built.query.url == template
    assert built.query.origin == "http://h:1"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (DEFAULT_URL.replace('broker="broker0"', 'broker=""'), 'has no broker="..." (brokerName)'),
        (DEFAULT_URL.replace(',queue="jobs"', ""), 'has no queue="..." (queueName)'),
        (DEFAULT_URL.replace('address="work",', ""), 'has no address="..." (brokerAddress)'),
        ("/console/jolokia/read/x:y=z/MessageCount", "is not an http(s)://host:port/... URL"),
    ],
)
def test_a_template_keda_cannot_use_is_refused(template: str, message: str) -> None:
    built, problems = _parse({"restApiTemplate": template})
    assert built is None
    assert any(p.startswith("metadata.restApiTemplate: ") and message in p for p in problems)


def test_without_a_template_every_missing_name_is_reported_at_once() -> None:
    built, problems = _parse({})
    assert built is None
    for name in ("managementEndpoint", "queueName", "brokerName", "brokerAddress"):
        assert f"metadata.{name}: is required unless restApiTemplate is given" in problems


def test_the_login_may_come_from_the_trigger_metadata() -> None:
    built, _ = _parse({**BASE, "username": "u", "password": "p"}, {})
    assert built is not None and (built.query.username, built.query.password) == ("u", "p")
    assert "'p'" not in repr(built.query)


def _key(password: bytes | None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def test_tls_parameters_as_keda_reads_them() -> None:
    _, problems = _parse(BASE, {**LOGIN, "cert": "CERT"})
    assert problems == ["metadata.cert: and key must be given together (from the authentication)"]
    _, problems = _parse(BASE, {**LOGIN, "cert": "CERT", "key": _key(b"pw"), "keyPassword": "no"})
    assert len(problems) == 1 and problems[0].startswith(
        "metadata.keyPassword: does not decrypt key"
    )
    built, _ = _parse(
        {**BASE, "unsafeSsl": "true"},
        {**LOGIN, "ca": "CA", "cert": "CERT", "key": _key(b"pw"), "keyPassword": "pw"},
    )
    assert built is not None
    identity = built.query.identity
    assert (identity.verify, identity.ca_pem, identity.cert_pem) == (False, "CA", "CERT")
    assert identity.key_pem is not None and "ENCRYPTED" not in identity.key_pem
    assert "pw" not in repr(built.meta).replace("s3cret-pw", "")


def test_equal_requests_are_one_query() -> None:
    a, _ = _parse({**BASE, "queueLength": "3"})
    b, _ = _parse({**BASE, "activationQueueLength": "0"})
    c, _ = _parse(BASE, {**LOGIN, "password": "other"})
    assert a is not None and b is not None and c is not None
    assert a.query == b.query and a.query != c.query
