"""kube-apiserver over HTTP: where it is, how it is trusted, who we are, and one aiohttp
session to it.

In a Pod (the way the adapter runs) everything comes from the ServiceAccount, read here:
``KUBERNETES_SERVICE_HOST``/``_PORT``, its CA and its token, the token read again every
minute as client-go does (kubelet rotates bound tokens). A kubeconfig file (``--kubeconfig``,
``explain``, tests) is read by kubernetes-asyncio's loader, imported only then: it brings
exec plugins and auth providers, and its client package is ~35 MiB of generated models the
adapter never uses (a third of the process, measured by RSS after import).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from metrics_adapter import __version__
from scalers.errors import ConfigError, Problem

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
"""client-go re-reads the ServiceAccount token file every minute."""
CONNECTIONS = 100
"""Connections to kube-apiserver at once (kubernetes-asyncio's default, kept): each open
watch holds one for its whole length, requests share the rest."""
READ_BUFFER = 2**21
"""A watch event may carry an object of up to etcd's 1.5 MiB request limit."""
USER_AGENT = f"metrics-adapter/{__version__}"

Token = Callable[[], Awaitable[str | None]]
"""The Authorization header's value now (``Bearer ...``), or None: none is sent."""


class ApiError(Exception):
    """kube-apiserver answered with an error status."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


@dataclass
class Connection:
    """Where kube-apiserver is and how to talk to it."""

    server: str
    """``https://host:port``, without a trailing slash."""
    ssl: ssl.SSLContext
    token: Token = field(repr=False)
    server_hostname: str | None = None
    """The name its certificate must hold, when not the server's host (tls-server-name)."""


class Transport:
    """One aiohttp session to kube-apiserver; close it."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: aiohttp.ClientSession | None = None
        self._proxy = env_proxy(connection.server)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=self.connection.ssl)
            self._session = aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER)
        return self._session

    async def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **extra}
        token = await self.connection.token()
        if token:
            headers["Authorization"] = token
        return headers

    def _url(self, path: str, query: Sequence[tuple[str, str]]) -> yarl.URL:
        url = self.connection.server + path + (f"?{urlencode(query)}" if query else "")
        return yarl.URL(url, encoded=True)

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
        seconds: float,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """One request; its JSON answer (``None`` for an empty body), status and headers. Raise
        :class:`ApiError` for an error status, aiohttp's errors or TimeoutError otherwise."""
        extra = {"Content-Type": content_type or "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        async with self._open().request(
            method,
            self._url(path, query),
            headers=await self._headers(extra),
            data=data,
            timeout=aiohttp.ClientTimeout(total=seconds),
            server_hostname=self.connection.server_hostname,
            proxy=self._proxy[0],
            proxy_auth=self._proxy[1],
        ) as response:
            answer = await response.read()
            if response.status >= 400:
                raise ApiError(response.status, response.reason or "", response.headers, answer)
            return (json.loads(answer) if answer else None), response.status, response.headers

    async def stream(
        self, path: str, query: Sequence[tuple[str, str]], limits: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """A GET whose body is read by the caller, line by line (a watch); close it."""
        return await self._open().get(
            self._url(path, query),
            headers=await self._headers({}),
            timeout=limits,
            server_hostname=self.connection.server_hostname,
            proxy=self._proxy[0],
            proxy_auth=self._proxy[1],
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def env_proxy(server: str) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """The proxy ``HTTPS_PROXY`` and ``NO_PROXY`` give for ``server`` (with its credentials),
    as kubernetes-asyncio honours them; none when they give none. Read once per transport:
    aiohttp's ``trust_env`` reads the environment and ~/.netrc again in a thread at every
    request, which was a quarter of the controller's CPU at 1,000 ScaledObjects (py-spy)."""
    try:
        return get_env_proxy_for_url(yarl.URL(server))
    except LookupError:
        return None, None


async def connect(kubeconfig: str | Path | None = None) -> Transport:
    """A transport from a kubeconfig file, else from the Pod's ServiceAccount (in-cluster).
    Raise ConfigError when neither can be read."""
    if kubeconfig is None:
        return Transport(in_cluster())
    return Transport(await from_kubeconfig(Path(kubeconfig)))


def in_cluster(
    environ: Mapping[str, str] = os.environ, account: Path = SERVICE_ACCOUNT
) -> Connection:
    """The Pod's ServiceAccount, as client-go's rest.InClusterConfig reads it."""
    subject = "in-cluster configuration"

    def refuse(problem: str) -> ConfigError:
        return ConfigError(subject, [Problem("", f"{problem} (outside a Pod, pass --kubeconfig)")])

    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise refuse("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    hostport = f"[{host}]:{port}" if ":" in host or "%" in host else f"{host}:{port}"
    token_file, ca_file = account / "token", account / "ca.crt"
    token = _TokenFile(token_file)
    try:
        token.read()
        context = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise refuse(f"cannot read {token_file} and {ca_file}: {exc}") from exc
    return Connection(f"https://{hostport}", context, token.header)


@dataclass
class _TokenFile:
    path: Path
    value: str = field(default="", repr=False)
    read_at: float = -TOKEN_REREAD_SECONDS

    def read(self) -> None:
        value = self.path.read_text().strip()
        if not value:
            raise ValueError(f"{self.path} is empty")
        self.value, self.read_at = value, time.monotonic()

    async def header(self) -> str | None:
        if time.monotonic() - self.read_at >= TOKEN_REREAD_SECONDS:
            # Unreadable: kubelet is replacing it, and the last one read is valid a while yet.
            with contextlib.suppress(OSError, ValueError):
                self.read()
        return f"Bearer {self.value}"


async def from_kubeconfig(path: Path) -> Connection:
    """A kubeconfig's current context, read by kubernetes-asyncio's loader (exec plugins,
    auth providers, certificate files and data), imported here and only here."""
    from kubernetes_asyncio.client import Configuration
    from kubernetes_asyncio.config import ConfigException, load_kube_config

    subject = f"--kubeconfig {path}"
    configuration = Configuration()
    try:
        if not await asyncio.to_thread(path.is_file):
            raise ConfigException("is not a file")
        await load_kube_config(str(path), client_configuration=configuration, persist_config=False)
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    except ConfigException as exc:
        raise ConfigError(subject, [Problem("", str(exc))]) from exc
    except (OSError, LookupError, TypeError, ValueError, ssl.SSLError, yaml.YAMLError) as exc:
        problem = Problem("", f"is not a valid kubeconfig ({exc or type(exc).__name__})")
        raise ConfigError(subject, [problem]) from exc
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    async def token() -> str | None:
        bearer: str | None = await configuration.get_api_key_with_prefix("BearerToken")
        return bearer

    server = str(configuration.host).rstrip("/")
    return Connection(server, context, token, configuration.tls_server_name)
