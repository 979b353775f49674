"""certs/generate.sh makes what the aggregator accepts: a CA, and a serving certificate for
<service>.<namespace>.svc that the adapter serves and a client trusting the CA verifies."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

from metrics_adapter.api.tls import ServingTLS
from metrics_adapter.certs.issue import Pair
from tests.support.controlplane import REPO


def generate(out: Path) -> None:
    subprocess.run(
        [REPO / "certs" / "generate.sh", out, "adapter", "monitoring", "30"],
        check=True,
        capture_output=True,
    )


async def test_the_generated_pair_is_served_and_verified_by_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    await asyncio.to_thread(generate, out)
    assert oct((out / "tls.key").stat().st_mode & 0o777) == "0o600"
    tls = ServingTLS(tmp_path / "scratch")
    tls.set_pair(Pair((out / "tls.crt").read_bytes(), (out / "tls.key").read_bytes()), "out")

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.context)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=out / "ca.crt")
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="adapter.monitoring.svc"
        )
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
