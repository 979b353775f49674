"""artemis-queue failures: each is an error of the trigger, never a zero, and no password
shows. The console's Jolokia policy refuses origins it does not list, which is what
``corsHeader`` is for."""

from __future__ import annotations

import re

import pytest

from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.artemis.helpers import AUTH, filled, metadata, scaler, template
from tests.support.artemis import BROKER, PASSWORD, USER, ArtemisBroker
from tests.support.servers import free_port
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration


async def test_a_wrong_password_is_refused_by_the_console(
    artemis: ArtemisBroker, queue: str
) -> None:
    s = scaler(metadata(artemis, queue), {"username": USER, "password": "not-the-password"})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert "HTTP 403" in str(info.value)
    assert "check username and password" in str(info.value)
    assert "not-the-password" not in f"{info.value}{s!r}{s.query!r}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("queueName", "no-such-queue"), ("brokerAddress", "no-such-address"), ("brokerName", "nb")],
)
async def test_an_unknown_queue_is_jolokias_404(
    artemis: ArtemisBroker, queue: str, field: str, value: str
) -> None:
    s = scaler({**metadata(artemis, queue), field: value})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    message = str(info.value)
    assert "Jolokia status 404: javax.management.InstanceNotFoundException" in message
    assert f'"{value}"' in message
    assert "check brokerName, brokerAddress and queueName" in message
    assert PASSWORD not in message


async def test_an_origin_the_policy_does_not_list_is_refused(
    artemis: ArtemisBroker, queue: str
) -> None:
    s = scaler(metadata(artemis, queue, corsHeader="http://elsewhere.example"))
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert "Jolokia status 403" in str(info.value)
    assert "Origin http://elsewhere.example is not allowed" in str(info.value)
    assert "set corsHeader" in str(info.value)


async def test_the_default_origin_follows_the_endpoint_and_cors_header_overrides_it(
    artemis: ArtemisBroker, queue: str
) -> None:
    """The policy lists http://127.0.0.1*: the same console named ``localhost`` sends
    ``Origin: http://localhost:<port>`` by default, which it refuses, as it refuses KEDA."""
    local = f"localhost:{artemis.endpoint.rpartition(':')[2]}"
    refused = re.escape(f"Origin http://{local} is not allowed")
    async with filled(artemis, queue, (4, 0, 0)):
        with pytest.raises(SourceResponseError, match=refused):
            await measure(scaler(metadata(artemis, queue, managementEndpoint=local)))
        fixed = metadata(
            artemis, queue, managementEndpoint=local, corsHeader=f"http://{artemis.endpoint}"
        )
        assert await measure(scaler(fixed)) == 4
        # A template's host gives the default origin the same way.
        with pytest.raises(SourceResponseError, match=refused):
            await measure(scaler({"restApiTemplate": template(artemis, queue, host=local)}))


async def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    meta = {
        "managementEndpoint": f"127.0.0.1:{port}",
        "brokerName": BROKER,
        "brokerAddress": "q",
        "queueName": "q",
    }
    with pytest.raises(SourceUnreachable) as info:
        await measure(scaler(meta))
    assert not isinstance(info.value, SourceTimeout)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_a_paused_broker_times_out_then_recovers(artemis: ArtemisBroker, queue: str) -> None:
    s = scaler(metadata(artemis, queue))
    artemis.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
            await measure(s, client_timeout=0.5)
    finally:
        artemis.resume()
    assert await measure(s) == 0


async def test_a_login_in_the_template_is_neither_sent_nor_shown(
    artemis: ArtemisBroker, queue: str
) -> None:
    """KEDA's SetBasicAuth overrides a URL's login: the authentication's is the one sent."""
    url = template(artemis, queue).replace("http://", f"http://{USER}:url-password@")
    s = scaler({"restApiTemplate": url})
    assert await measure(s) == 0
    assert "url-password" not in f"{s!r}{s.query!r}{s.query.describe()}"
    with pytest.raises(SourceResponseError) as info:
        await measure(scaler({"restApiTemplate": url}, {**AUTH, "password": "wrong"}))
    assert "url-password" not in str(info.value)
