"""A scaler that cannot be read is an error, never a zero: refused, failing, silent, empty,
or speaking TLS with a stranger. Credentials never show in the messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import grpc
import pytest

from scalers.clients import Clients
from scalers.errors import ScalerError, SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.external import ExternalScaler
from tests.integration.external.helpers import make
from tests.support.external_scaler import ExternalScalerServer
from tests.support.pki import Pki
from tests.support.servers import free_port
from tests.support.triggers import Polled, poll

pytestmark = pytest.mark.integration

WITHIN = 30.0
"""Seconds for what takes milliseconds: a loaded 2-core machine's margin."""


async def test_nothing_listening(scaler: ExternalScalerServer) -> None:
    closed = free_port()
    with pytest.raises(SourceUnreachable, match=re.escape(f"127.0.0.1:{closed}: unavailable")):
        await _poll(make({"scalerAddress": f"127.0.0.1:{closed}"}))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, SourceUnreachable),
        (grpc.StatusCode.INTERNAL, SourceResponseError),
        (grpc.StatusCode.NOT_FOUND, SourceResponseError),
    ],
)
async def test_an_error_status_is_an_error(
    scaler: ExternalScalerServer, status: grpc.StatusCode, error: type[ScalerError]
) -> None:
    scaler.answer.error = (status, "queue orders is gone")
    built = make({"scalerAddress": scaler.address})
    with pytest.raises(error, match=r"GetMetricSpec for shop/orders .*queue orders is gone"):
        await _settle(built)
    with pytest.raises(error, match="queue orders is gone"):
        await _poll(built)


async def test_a_failing_is_active_is_an_error_not_inactive(scaler: ExternalScalerServer) -> None:
    async with contextlib.aclosing(Clients(timeout=5.0)) as clients:
        settled = await make({"scalerAddress": scaler.address}).settle(clients)
        scaler.answer.values, scaler.answer.active = [(9, 0.0)], True
        assert (await poll(settled, clients)).active
        scaler.answer.error = (grpc.StatusCode.INTERNAL, "no idea")
        with pytest.raises(SourceResponseError, match="INTERNAL: no idea"):
            await poll(settled, clients)


@pytest.mark.parametrize(
    ("specs", "size", "message"),
    [(0, 5, "has no metric spec"), (1, 0, "the target must be above 0")],
)
async def test_a_spec_without_a_usable_metric(
    scaler: ExternalScalerServer, specs: int, size: int, message: str
) -> None:
    scaler.answer.specs, scaler.answer.target_size = specs, size
    with pytest.raises(SourceResponseError, match=message):
        await _settle(make({"scalerAddress": scaler.address}))


async def test_a_missing_metric_is_an_error_never_a_zero(scaler: ExternalScalerServer) -> None:
    scaler.answer.values = []
    with pytest.raises(
        SourceResponseError,
        match=r'GetMetrics "queue" for shop/orders .*: the answer has no metric value',
    ):
        await _poll(make({"scalerAddress": scaler.address}))


async def test_a_silent_scaler_times_out(scaler: ExternalScalerServer) -> None:
    """The deadline is the clients' timeout; the server's own wait is far longer."""
    built = make({"scalerAddress": scaler.address})
    async with contextlib.aclosing(Clients(timeout=5.0)) as clients:
        settled = await built.settle(clients)
    scaler.answer.delay = 10 * WITHIN
    with pytest.raises(SourceTimeout, match=r"GetMetrics .* no answer within 0\.5s"):
        await _poll(settled, client_timeout=0.5)


async def test_a_restarted_scaler_is_read_again(scaler: ExternalScalerServer) -> None:
    """The shared channel reconnects by itself; the polls meanwhile are errors."""
    scaler.answer.values = [(3, 0.0)]
    async with contextlib.aclosing(Clients(timeout=5.0)) as clients:
        settled = await make({"scalerAddress": scaler.address}).settle(clients)
        assert (await poll(settled, clients)).value == 3
        await scaler.stop()
        with pytest.raises(SourceUnreachable):
            await poll(settled, clients)
        scaler.answer.values = [(8, 0.0)]
        await scaler.start()
        async with asyncio.timeout(WITHIN):
            while True:  # the channel's reconnect backoff is at most 5 s
                try:
                    polled = await poll(settled, clients)
                    break
                except SourceUnreachable:
                    await asyncio.sleep(0.1)
        assert polled.value == 8


# TLS


def _tls(pki: Pki, *, client: bool) -> dict[str, str]:
    auth = {"caCert": pki.ca_pem}
    if client:
        auth |= {"tlsClientCert": pki.client_cert_pem, "tlsClientKey": pki.client_key_pem}
    return auth


async def test_tls_with_the_scalers_ca(tls_scaler: ExternalScalerServer, pki: Pki) -> None:
    tls_scaler.answer.values = [(2, 0.0)]
    assert (
        await _poll(make({"scalerAddress": tls_scaler.address}, _tls(pki, client=False)))
    ).value == 2


async def test_enable_tls_without_a_ca_does_not_trust_a_private_one(
    tls_scaler: ExternalScalerServer,
) -> None:
    built = make({"scalerAddress": tls_scaler.address, "enableTLS": "true"})
    with pytest.raises(SourceUnreachable, match="unavailable"):
        await _poll(built)


async def test_plain_text_to_a_tls_scaler_fails(tls_scaler: ExternalScalerServer) -> None:
    with pytest.raises(ScalerError):
        await _poll(make({"scalerAddress": tls_scaler.address}))


async def test_a_wrong_ca_is_refused_clearly(
    tls_scaler: ExternalScalerServer, other_pki: Pki
) -> None:
    built = make({"scalerAddress": tls_scaler.address}, _tls(other_pki, client=False))
    with pytest.raises(SourceUnreachable) as error:
        await _poll(built)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value), error.value
    assert "caCert" in str(error.value)


async def test_mtls(
    mtls_scaler: ExternalScalerServer, pki: Pki, other_pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mtls_scaler.answer.values = [(6, 0.0)]
    address = {"scalerAddress": mtls_scaler.address}
    assert (await _poll(make(address, _tls(pki, client=True)))).value == 6

    with pytest.raises(ScalerError) as without:  # no client certificate
        await _poll(make(address, _tls(pki, client=False)))
    stranger = _tls(pki, client=True) | {
        "tlsClientCert": other_pki.client_cert_pem,
        "tlsClientKey": other_pki.client_key_pem,
    }
    with pytest.raises(ScalerError) as refused:  # a client certificate of another CA
        await _poll(make(address, stranger))

    built = make(address, _tls(pki, client=True))
    key = pki.client_key_pem.strip().splitlines()[1]
    shown = f"{without.value}\n{refused.value}\n{built!r}\n{built.query!r}\n{caplog.text}"
    assert key not in shown


async def _settle(built: ExternalScaler, client_timeout: float = 5.0) -> ExternalScaler:
    async with contextlib.aclosing(Clients(timeout=client_timeout)) as clients:
        return await built.settle(clients)


async def _poll(built: ExternalScaler, client_timeout: float = 5.0) -> Polled:
    async with contextlib.aclosing(Clients(timeout=client_timeout)) as clients:
        return await poll(built, clients)
