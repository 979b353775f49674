"""etcd failures: each an error of the trigger, never a zero, and no secret in the message."""

from __future__ import annotations

import pytest

from scalers.clients import Clients
from scalers.errors import ScalerError, SourceResponseError, SourceTimeout, SourceUnreachable
from tests.support.etcd_server import ROOT, EtcdServer
from tests.support.pki import Pki, make_pki
from tests.support.servers import free_port, free_ports
from tests.support.triggers import poll, poll_once, trigger

pytestmark = pytest.mark.integration


def _meta(endpoints: str, key: str) -> dict[str, str]:
    return {"endpoints": endpoints, "watchKey": key, "value": "1"}


async def test_a_wrong_password_is_refused_by_name_without_the_password(
    auth_etcd: EtcdServer, key: str
) -> None:
    auth_etcd.put(key, "5")
    wrong = "not-the-r00t-pa55word"
    with pytest.raises(SourceResponseError) as info:
        await poll_once(
            "etcd", _meta(auth_etcd.endpoint, key), {"username": "root", "password": wrong}
        )
    message = str(info.value)
    assert f'{auth_etcd.endpoint} authentication of user "root": HTTP 400' in message
    assert "invalid user ID or password" in message
    assert wrong not in message and ROOT[1] not in message


async def test_no_credentials_on_a_server_that_needs_them(auth_etcd: EtcdServer, key: str) -> None:
    auth_etcd.put(key, "5")
    with pytest.raises(SourceResponseError, match="user name is empty"):
        await poll_once("etcd", _meta(auth_etcd.endpoint, key))


async def test_a_token_etcd_forgot_is_fetched_again(etcd: EtcdServer, key: str) -> None:
    """A restarted member forgets its simple tokens: the next range is refused once (invalid
    auth token), and the session authenticates again instead of failing the poll."""
    own = EtcdServer(etcd.binary, auth=True).start()
    try:
        own.put(key, "3")
        s = trigger("etcd", _meta(own.endpoint, key), {"username": ROOT[0], "password": ROOT[1]})
        clients = Clients(timeout=5)
        try:
            assert (await poll(s, clients)).value == 3
            own.restart()
            own.put(key, "4")
            before = own.handled("Authenticate")
            assert (await poll(s, clients)).value == 4
            assert own.handled("Authenticate") == before + 1
        finally:
            await clients.aclose()
    finally:
        own.cleanup()


async def test_tls_with_a_ca_that_did_not_sign_the_server(
    tls_etcd: EtcdServer, etcd_pki: Pki, key: str, tmp_path: pytest.TempPathFactory
) -> None:
    other = make_pki(tmp_path / "other")  # type: ignore[operator]
    auth = {
        "tls": "enable",
        "ca": other.ca_pem,
        "cert": etcd_pki.client_cert_pem,
        "key": etcd_pki.client_key_pem,
    }
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED") as info:
        await poll_once("etcd", _meta(tls_etcd.endpoint, key), auth)
    assert etcd_pki.client_key_pem not in str(info.value)


async def test_tls_without_a_client_certificate_is_refused(
    tls_etcd: EtcdServer, etcd_pki: Pki, key: str
) -> None:
    with pytest.raises(ScalerError) as info:
        await poll_once(
            "etcd", _meta(tls_etcd.endpoint, key), {"tls": "enable", "ca": etcd_pki.ca_pem}
        )
    assert tls_etcd.endpoint in str(info.value)


async def test_plain_http_to_a_tls_endpoint_is_an_error(tls_etcd: EtcdServer, key: str) -> None:
    plain = tls_etcd.endpoint.replace("https://", "http://")
    with pytest.raises(ScalerError, match=plain):
        await poll_once("etcd", _meta(plain, key))


async def test_an_endpoint_down_sends_the_range_to_the_next(etcd: EtcdServer, key: str) -> None:
    etcd.put(key, "7")
    down = f"127.0.0.1:{free_port()}"
    for endpoints in (f"{down},{etcd.endpoint}", f"{etcd.endpoint},{down}"):
        assert (await poll_once("etcd", _meta(endpoints, key))).value == 7


async def test_the_endpoint_that_answered_is_asked_first_next_time(
    etcd: EtcdServer, own_etcd: EtcdServer, key: str
) -> None:
    etcd.put(key, "1")
    own_etcd.put(key, "2")  # two clusters, told apart by their answers
    s = trigger("etcd", _meta(f"{own_etcd.endpoint},{etcd.endpoint}", key))
    clients = Clients(timeout=5)
    try:
        assert (await poll(s, clients)).value == 2
        own_etcd.stop()
        assert (await poll(s, clients)).value == 1
        own_etcd.start()
        assert (await poll(s, clients)).value == 1  # still the one that answered
    finally:
        await clients.aclose()


async def test_every_endpoint_down_names_each(key: str) -> None:
    down = [f"127.0.0.1:{port}" for port in free_ports(2)]
    with pytest.raises(SourceUnreachable) as info:
        await poll_once("etcd", _meta(",".join(down), key))
    message = str(info.value)
    assert "no endpoint answered" in message
    assert all(f"POST http://{d}/v3/kv/range" in message for d in down)


async def test_a_frozen_endpoint_times_out_and_the_next_answers(
    etcd: EtcdServer, own_etcd: EtcdServer, key: str
) -> None:
    etcd.put(key, "6")
    s = trigger("etcd", _meta(own_etcd.endpoint, key))
    both = trigger("etcd", _meta(f"{own_etcd.endpoint},{etcd.endpoint}", key))
    own_etcd.pause()
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5s"):
            await poll(s, client_timeout=0.5)
        assert (await poll(both, client_timeout=0.5)).value == 6
    finally:
        own_etcd.resume()
