"""aws-sqs-queue failures: each is an error of the trigger, never a zero."""

from __future__ import annotations

import json

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.aws_sqs_queue.helpers import (
    KEYS,
    CannedEndpoint,
    endpoint_metadata,
    keys_authentication,
    metadata,
    scaled_object,
    scaler,
)
from tests.support.moto import MotoServer, iam_keys, make_queue
from tests.support.servers import free_port
from tests.support.triggers import measure_once as measure
from tests.support.triggers import new_poller

pytestmark = pytest.mark.integration


async def test_server_down_is_unreachable(own_moto: MotoServer, queue_name: str) -> None:
    url = await make_queue(own_moto, queue_name, visible=1)
    s = scaler(metadata(own_moto, url))
    own_moto.stop()
    with pytest.raises(SourceUnreachable) as info:
        await measure(s)
    assert not isinstance(info.value, SourceTimeout)
    assert f'Could not connect to the endpoint URL: "{own_moto.endpoint}/"' in str(info.value)


async def test_nothing_listening_is_unreachable() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    s = scaler(endpoint_metadata(endpoint, f"{endpoint}/1/jobs"))
    with pytest.raises(SourceUnreachable, match="Could not connect"):
        await measure(s)


async def test_a_paused_server_times_out_then_recovers(
    own_moto: MotoServer, queue_name: str
) -> None:
    url = await make_queue(own_moto, queue_name, visible=6)
    s = scaler(metadata(own_moto, url))
    own_moto.pause()
    try:
        # botocore's own read timeout (the clients' timeout)...
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
            await measure(s, client_timeout=0.5)
        # ...and the poller's, when it is the shorter.
        clients = Clients(timeout=10)
        poller = Poller(MetricStore(), clients, Telemetry(), timeout=0.5)
        try:
            with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
                await poller.fetch(s.query)
        finally:
            await clients.aclose()
    finally:
        own_moto.resume()
    assert await measure(s) == 6


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>not SQS</html>", "the answer has no queue Attributes"),
        (200, b'{"Attributes": "many"}', "unreadable answer"),
        (500, b"<html>Internal Server Error</html>", "HTTP 500"),
        (503, b"", "HTTP 503"),
    ],
)
async def test_an_endpoint_that_is_not_sqs_is_a_response_error(
    canned: CannedEndpoint, status: int, body: bytes, message: str
) -> None:
    canned.status, canned.body = status, body
    s = scaler(endpoint_metadata(canned.url, f"{canned.url}/1/jobs"))
    with pytest.raises(SourceResponseError, match=message):
        await measure(s)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"ApproximateNumberOfMessages": "3"}, "ApproximateNumberOfMessagesNotVisible not found"),
        (
            {"ApproximateNumberOfMessages": "lots", "ApproximateNumberOfMessagesNotVisible": "0"},
            'ApproximateNumberOfMessages is "lots", not an integer',
        ),
    ],
)
async def test_wrong_attributes_are_response_errors(
    canned: CannedEndpoint, attributes: dict[str, str], message: str
) -> None:
    canned.body = json.dumps({"Attributes": attributes}).encode()
    s = scaler(endpoint_metadata(canned.url, f"{canned.url}/1/jobs"))
    with pytest.raises(SourceResponseError, match=message):
        await measure(s)


async def test_moto_accepts_any_keys_by_default(moto: MotoServer, queue_name: str) -> None:
    """A fidelity limit, not a feature: real SQS answers InvalidClientTokenId (see below)."""
    url = await make_queue(moto, queue_name, visible=2)
    made_up = {"awsAccessKeyID": "AKIAMADEUP", "awsSecretAccessKey": "anything"}
    assert await measure(scaler(metadata(moto, url), auth=made_up)) == 2


async def test_wrong_keys_are_errors_when_moto_enforces_iam(
    own_moto: MotoServer, queue_name: str
) -> None:
    url = await make_queue(own_moto, queue_name, visible=4)
    good = await iam_keys(own_moto, "keda", ["sqs:GetQueueAttributes"])
    own_moto.enforce_auth()
    assert await measure(scaler(metadata(own_moto, url), auth=good)) == 4

    wrong_secret = {**good, "awsSecretAccessKey": "wrong-secret-value"}
    with pytest.raises(SourceResponseError) as info:
        await measure(scaler(metadata(own_moto, url), auth=wrong_secret))
    assert "SignatureDoesNotMatch" in str(info.value)
    assert "check the AWS credentials of the trigger's authentication" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)

    with pytest.raises(SourceResponseError, match="InvalidClientTokenId"):
        await measure(scaler(metadata(own_moto, url), auth=KEYS))


async def test_operator_identity_uses_the_adapters_environment(
    moto: MotoServer, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await make_queue(moto, queue_name, visible=5)
    s = scaler(metadata(moto, url, identityOwner="operator"), auth={})
    assert s.query.identity.credentials is None
    # No keys anywhere (and instance metadata disabled by the fixture): an error, not a zero.
    with pytest.raises(SourceUnreachable, match="the adapter has no AWS credentials"):
        await measure(s)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    assert await measure(s) == 5


async def test_a_stopped_server_keeps_the_error_and_not_a_zero(
    own_moto: MotoServer, queue_name: str
) -> None:
    url = await make_queue(own_moto, queue_name, visible=9)
    inventory = Inventory()
    for doc in keys_authentication("sqs-keys", "sqs-secret"):
        inventory.add(doc, "test")
    so = parse_scaled_object(scaled_object("w", metadata(own_moto, url)))
    (bound,) = bind(so, inventory)
    # The adapter's default timeouts, not 1 s: the first poll builds the boto client, CPU-bound
    # work a loaded machine slows; a stopped server is refused at once whatever the timeout.
    poller = new_poller()
    store, clients, telemetry = poller.store, poller.clients, poller.telemetry
    poller.set_triggers(so.ref, [bound])
    try:
        await poller.poll(bound.scaler.query)
        assert store.readings(so.ref)[bound.metric_name.lower()].value == 9
        own_moto.stop()
        await poller.poll(bound.scaler.query)
        reading = store.readings(so.ref)[bound.metric_name.lower()]
        assert reading.error is not None and "Could not connect" in reading.error
        assert reading.value == 9 and not reading.active and reading.failures == 1
        labels = {
            "namespace": "default",
            "metric": bound.metric_name,
            "scaledObject": "w",
            "scaler": "awsSqsQueueScaler",
            "triggerIndex": "0",
            "type": "scaledobject",
        }
        assert telemetry.registry.get_sample_value("keda_scaler_detail_errors_total", labels) == 1
    finally:
        await clients.aclose()
