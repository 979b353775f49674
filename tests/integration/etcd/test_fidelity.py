"""etcd against the real server: the key's value as KEDA reads it, over each way in."""

from __future__ import annotations

import math

import pytest

from scalers.base import is_active
from scalers.errors import SourceResponseError
from tests.support.etcd_server import ROOT, EtcdServer
from tests.support.pki import KEY_PASSWORD, Pki
from tests.support.triggers import poll_once, trigger

pytestmark = pytest.mark.integration

# (stored value, trigger metadata) -> (value, active, HPA replicas = ceil(value / value param))
FIDELITY = [
    ("12", {}, 12, True, 3),
    ("0", {}, 0, False, 0),
    ("2.5", {"value": "1"}, 2.5, True, 3),
    ("-3", {}, -3, False, 0),
    ("1e3", {"value": "100"}, 1000, True, 10),
    ("+7", {"activationValue": "7"}, 7, False, 2),
    ("7.5", {"activationValue": "7"}, 7.5, True, 2),
]


@pytest.mark.parametrize(
    ("stored", "meta", "value", "active", "replicas"),
    FIDELITY,
    ids=[f"{r[0]}-{','.join(f'{k}={v}' for k, v in r[1].items()) or 'defaults'}" for r in FIDELITY],
)
async def test_fidelity(
    etcd: EtcdServer,
    key: str,
    stored: str,
    meta: dict[str, str],
    value: float,
    active: bool,
    replicas: int,
) -> None:
    etcd.put(key, stored)
    s = trigger("etcd", {"endpoints": etcd.endpoint, "watchKey": key, "value": "4", **meta})
    polled = await poll_once(
        "etcd", {"endpoints": etcd.endpoint, "watchKey": key, "value": "4", **meta}
    )
    assert polled.value == value
    assert polled.active is active is is_active(value, s.activation_target)
    assert max(0, math.ceil(polled.value / s.target)) == replicas


async def test_the_exact_key_is_read_not_a_prefix(etcd: EtcdServer, key: str) -> None:
    etcd.put(f"{key}/child", "5")
    meta = {"endpoints": etcd.endpoint, "watchKey": key, "value": "1"}
    with pytest.raises(SourceResponseError, match=f'watchKey "{key}" does not exist'):
        await poll_once("etcd", meta)
    etcd.put(key, "9")
    assert (await poll_once("etcd", meta)).value == 9


@pytest.mark.parametrize("stored", ["ten", "", " 5", "5 jobs", "1_000", "NaN", "Inf", "0x1p-2"])
async def test_a_value_that_is_not_a_number_is_an_error(
    etcd: EtcdServer, key: str, stored: str
) -> None:
    etcd.put(key, stored)
    meta = {"endpoints": etcd.endpoint, "watchKey": key, "value": "1"}
    with pytest.raises(
        SourceResponseError, match=r"watchKey .*: value .* (is not a number|is out of range)"
    ):
        await poll_once("etcd", meta)


async def test_a_bare_address_is_plain_http_without_tls(etcd: EtcdServer, key: str) -> None:
    etcd.put(key, "3")
    address = etcd.endpoint.removeprefix("http://")
    meta = {"endpoints": address, "watchKey": key, "value": "1"}
    assert (await poll_once("etcd", meta)).value == 3


async def test_username_and_password_get_a_token(auth_etcd: EtcdServer, key: str) -> None:
    auth_etcd.put(key, "6")
    meta = {"endpoints": auth_etcd.endpoint, "watchKey": key, "value": "1"}
    auth = {"username": ROOT[0], "password": ROOT[1]}
    assert (await poll_once("etcd", meta, auth)).value == 6


async def test_credentials_for_a_server_without_authentication_are_not_needed(
    etcd: EtcdServer, key: str
) -> None:
    """As clientv3: etcd's "authentication is not enabled" is no refusal."""
    etcd.put(key, "4")
    meta = {"endpoints": etcd.endpoint, "watchKey": key, "value": "1"}
    assert (await poll_once("etcd", meta, {"username": "u", "password": "p"})).value == 4


@pytest.mark.parametrize("encrypted", [False, True], ids=["key", "encrypted-key"])
async def test_tls_with_a_client_certificate(
    tls_etcd: EtcdServer, etcd_pki: Pki, key: str, encrypted: bool
) -> None:
    tls_etcd.put(key, "8")
    auth = {"tls": "enable", "ca": etcd_pki.ca_pem, "cert": etcd_pki.client_cert_pem}
    if encrypted:
        auth |= {"key": etcd_pki.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD}
    else:
        auth["key"] = etcd_pki.client_key_pem
    bare = tls_etcd.endpoint.removeprefix("https://")  # tls: enable makes it https
    for endpoint in (tls_etcd.endpoint, bare):
        meta = {"endpoints": endpoint, "watchKey": key, "value": "1"}
        assert (await poll_once("etcd", meta, auth)).value == 8
