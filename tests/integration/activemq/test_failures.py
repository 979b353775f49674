"""activemq failures: each is an error of the trigger, never a zero, and no password shows."""

from __future__ import annotations

import pytest

from scalers.errors import SourceResponseError, SourceTimeout, SourceUnreachable
from tests.integration.activemq.helpers import AUTH, metadata, scaler
from tests.support.activemq import BROKER, PASSWORD, USER, ActiveMQBroker
from tests.support.servers import free_port
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration


async def test_a_wrong_password_is_refused_by_the_agent(
    activemq: ActiveMQBroker, queue: str
) -> None:
    s = scaler(metadata(activemq, queue), {"username": USER, "password": "not-the-password"})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    assert "HTTP 401" in str(info.value)
    assert "check username and password" in str(info.value)
    assert "not-the-password" not in f"{info.value}{s!r}{s.query!r}"


@pytest.mark.parametrize(
    ("field", "value"), [("destinationName", "no-such-queue"), ("brokerName", "no-such-broker")]
)
async def test_an_unknown_queue_or_broker_is_jolokias_404(
    activemq: ActiveMQBroker, queue: str, field: str, value: str
) -> None:
    s = scaler({**metadata(activemq, queue), field: value})
    with pytest.raises(SourceResponseError) as info:
        await measure(s)
    message = str(info.value)
    assert "Jolokia status 404: javax.management.InstanceNotFoundException" in message
    assert value in message
    assert "check brokerName and destinationName" in message
    assert PASSWORD not in message


async def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    meta = {"managementEndpoint": f"127.0.0.1:{port}", "brokerName": BROKER, "destinationName": "q"}
    with pytest.raises(SourceUnreachable) as info:
        await measure(scaler(meta))
    assert not isinstance(info.value, SourceTimeout)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_a_paused_broker_times_out_then_recovers(
    activemq: ActiveMQBroker, queue: str
) -> None:
    s = scaler(metadata(activemq, queue))
    activemq.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
            await measure(s, client_timeout=0.5)
    finally:
        activemq.resume()
    assert await measure(s) == 0


async def test_a_login_in_the_template_is_neither_sent_nor_shown(
    activemq: ActiveMQBroker, queue: str
) -> None:
    """KEDA's SetBasicAuth overrides a URL's login: the authentication's is the one sent."""
    template = (
        f"http://{USER}:url-password@{activemq.endpoint}/api/jolokia/read/org.apache.activemq:"
        f"type=Broker,brokerName={BROKER},destinationType=Queue,destinationName={queue}/QueueSize"
    )
    s = scaler({"restAPITemplate": template})
    assert await measure(s) == 0
    assert "url-password" not in f"{s!r}{s.query!r}{s.query.describe()}"
    wrong = scaler({"restAPITemplate": template}, {**AUTH, "password": "wrong"})
    with pytest.raises(SourceResponseError) as info:
        await measure(wrong)
    assert "url-password" not in str(info.value)


async def test_a_path_the_agent_does_not_serve_is_a_response_error(
    activemq: ActiveMQBroker, queue: str
) -> None:
    """The web console's path (KEDA's default) on an agent mounted elsewhere, say."""
    template = (
        f"http://{activemq.endpoint}/jolokia/read/org.apache.activemq:type=Broker,"
        f"brokerName={BROKER},destinationType=Queue,destinationName={queue}/QueueSize"
    )
    with pytest.raises(SourceResponseError, match="HTTP 404"):
        await measure(scaler({"restAPITemplate": template}))
