"""artemis-queue over TLS: the console on a port that requires a client certificate, read
through a restApiTemplate (KEDA's default URL is http://) with ``ca``, ``cert``, ``key``
and ``keyPassword`` from the authentication, or ``unsafeSsl``."""

from __future__ import annotations

import pytest

from scalers.errors import SourceUnreachable
from tests.integration.artemis.helpers import AUTH, filled, scaler, template
from tests.support.artemis import ArtemisBroker
from tests.support.pki import KEY_PASSWORD, CertificateAuthority
from tests.support.triggers import measure_once as measure

pytestmark = pytest.mark.integration


def _https(artemis: ArtemisBroker, queue: str) -> dict[str, str]:
    url = template(artemis, queue, host=f"127.0.0.1:{artemis.tls_port}")
    return {"restApiTemplate": url.replace("http://", "https://")}


def _client(artemis: ArtemisBroker) -> dict[str, str]:
    assert artemis.pki is not None
    pki = artemis.pki
    return {**AUTH, "ca": pki.ca_pem, "cert": pki.client_cert_pem, "key": pki.client_key_pem}


async def test_a_client_certificate_and_the_ca_read_the_queue(
    artemis: ArtemisBroker, queue: str
) -> None:
    assert artemis.pki is not None
    async with filled(artemis, queue, (6, 0, 0)):
        assert await measure(scaler(_https(artemis, queue), _client(artemis))) == 6
        encrypted = {
            **_client(artemis),
            "key": artemis.pki.client_key_encrypted_pem,
            "keyPassword": KEY_PASSWORD,
        }
        assert await measure(scaler(_https(artemis, queue), encrypted)) == 6
        # unsafeSsl: the server's certificate is not checked, the client's still sent.
        unchecked = {k: v for k, v in _client(artemis).items() if k != "ca"}
        meta = {**_https(artemis, queue), "unsafeSsl": "true"}
        assert await measure(scaler(meta, unchecked)) == 6


async def test_without_a_client_certificate_the_console_refuses(
    artemis: ArtemisBroker, queue: str
) -> None:
    auth = {k: v for k, v in _client(artemis).items() if k not in ("cert", "key")}
    with pytest.raises(SourceUnreachable) as info:
        await measure(scaler(_https(artemis, queue), auth))
    assert f"127.0.0.1:{artemis.tls_port}" in str(info.value)


async def test_a_server_the_ca_did_not_sign_is_refused(artemis: ArtemisBroker, queue: str) -> None:
    other = CertificateAuthority("some other CA").pem.decode()
    with pytest.raises(SourceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await measure(scaler(_https(artemis, queue), {**_client(artemis), "ca": other}))
