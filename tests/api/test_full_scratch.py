"""A full filesystem under --cert-dir: OpenSSL loads keys only from files, so each new
serving certificate is staged in the scratch directory first. When that cannot be written,
the rotation is refused naming the directory, and the port keeps serving the certificate it
had, on a real socket. The filesystem is a real tmpfs of a few KiB, mounted and filled here
(the tests run as root, as CI does)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.responses import Response

from metrics_adapter.api.tls import ServingTLS
from metrics_adapter.certs.issue import self_signed
from tests.support.servers import serving


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        assert not os.environ.get("CI"), "CI runs as root: this test must not skip there"
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory: Path) -> None:
    with contextlib.suppress(OSError), (directory / "ballast").open("wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


async def served_certificate(context: ssl.SSLContext) -> bytes:
    """The certificate a server on ``context`` presents, DER, from a real handshake."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    async with serving(Response("ok"), context=context) as url:
        port = int(url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        try:
            der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        return der


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


async def test_a_rotation_that_cannot_be_staged_is_refused_and_the_old_pair_kept(
    full_tmpfs: Path,
) -> None:
    tls = ServingTLS(full_tmpfs / "live")
    first = self_signed(["localhost"])
    tls.set_pair(first, "the first pair")
    fill(full_tmpfs)

    second = self_signed(["localhost"])
    with pytest.raises(ValueError, match="cannot stage it for OpenSSL") as refused:
        tls.set_pair(second, "the renewed pair")
    message = str(refused.value)
    assert message.startswith("the renewed pair: cannot stage it for OpenSSL in ")
    assert str(full_tmpfs / "live") in message and "No space left on device" in message
    assert tls.pair == first
    assert await served_certificate(tls.context) == der(first.cert_pem)
    assert list((full_tmpfs / "live").iterdir()) == []  # no half-written key left behind
