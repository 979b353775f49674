"""What the Azure Storage triggers share: the connection string, the service URL, SharedKey
signing, SAS, one HTTP client per endpoint, and Azure's errors. No Azure SDK: two ``GET``s
(queue metadata or peek, blob listing) do not justify one.

A connection string is read as the Azure SDK for Go reads it (``shared.ParseConnectionString``,
which KEDA uses): ``Key=Value`` pairs separated by ``;``, keys case-sensitive; the service's
URL is ``QueueEndpoint``/``BlobEndpoint`` when given (Azurite's path-style
``http://127.0.0.1:10001/devstoreaccount1``), else
``<DefaultEndpointsProtocol|https>://<AccountName>.<queue|blob>.<EndpointSuffix|core.windows.net>``;
``AccountName`` with ``AccountKey`` signs each request with SharedKey, else
``SharedAccessSignature`` is added to each URL's query. ``UseDevelopmentStorage=true`` is not
understood, as by the Go SDK.

Azure AD (``podIdentity: azure-workload``) is not supported: a trigger with it is refused, so
``accountName``, ``endpointSuffix`` and ``cloud`` (which only that identity uses in KEDA) are
only checked as KEDA checks them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import hashlib
import hmac
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from scalers.base import Scaler, ScalerKind
from scalers.clients import HTTP_IN_FLIGHT, MAX_BODY_BYTES, Clients, HttpIdentity, tls_context
from scalers.errors import Problems, SourceResponseError, SourceTimeout, SourceUnreachable
from scalers.errors import quote as quoted
from scalers.params import Source, TriggerInputs, TriggerMetadata, param, parse_params
from scalers.turns import Turns

API_VERSION = "2021-12-02"
"""``x-ms-version`` of every request: one Azure and Azurite 3 both answer."""

_CLOUDS = {
    "AZURECLOUD": "core.windows.net",
    "AZUREPUBLICCLOUD": "core.windows.net",
    "AZURECHINACLOUD": "core.chinacloudapi.cn",
    "AZUREGERMANCLOUD": "core.cloudapi.de",
    "AZUREUSGOVERNMENT": "core.usgovcloudapi.net",
    "AZUREUSGOVERNMENTCLOUD": "core.usgovcloudapi.net",
}
"""KEDA's cloud names (case-insensitive) and their storage suffixes."""
PRIVATE_CLOUD = "private"
_AZURE_STACK = "AZURESTACKCLOUD"


@dataclass(frozen=True)
class StorageAccount:
    """One storage service as a connection string gives it: what the shared HTTP client,
    the requests and their signatures depend on. The key and the SAS are compared (they
    make queries differ) and never shown."""

    service_url: str
    """Without a trailing ``/`` or a query: ``http://127.0.0.1:10001/devstoreaccount1``."""
    account_name: str = ""
    account_key: bytes = field(default=b"", repr=False)
    sas: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def credential_kind(self) -> str:
        return "SharedKey" if self.account_key else "SAS"


def parse_connection_string(text: str, service: str) -> StorageAccount:
    """The ``service`` (``queue`` or ``blob``) of a connection string; ``ValueError`` with a
    message that never holds the string's values."""
    pairs: dict[str, str] = {}
    for part in text.rstrip(";").split(";"):
        key, equals, value = part.partition("=")
        if not equals:
            raise ValueError("is not a storage connection string (Key=Value pairs separated by ;)")
        pairs[key] = value
    protocol = pairs.get("DefaultEndpointsProtocol", "https")
    suffix = pairs.get("EndpointSuffix", "core.windows.net")
    endpoint_key = f"{service.capitalize()}Endpoint"
    name = pairs.get("AccountName")
    if endpoint_key in pairs:
        url = pairs[endpoint_key]
    elif name is not None:
        url = f"{protocol}://{name}.{service}.{suffix}"
    else:
        raise ValueError(f"needs either AccountName or {endpoint_key}")
    parts = urlsplit(url)
    if parts.query or parts.fragment:  # a SAS in the URL: never quoted, nor kept in it
        raise ValueError(f"{endpoint_key} holds a query: give a SAS as SharedAccessSignature")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{endpoint_key}: {quoted(url)} is not an http:// or https:// URL")
    service_url = url.rstrip("/")
    if name is not None and "AccountKey" in pairs:
        try:
            secret = base64.b64decode(pairs["AccountKey"], validate=True)
        except binascii.Error:
            raise ValueError("AccountKey is not base64") from None
        return StorageAccount(service_url, name, secret)
    if "SharedAccessSignature" in pairs:
        sas = tuple(parse_qsl(pairs["SharedAccessSignature"].lstrip("?"), keep_blank_values=True))
        return StorageAccount(service_url, name or "", sas=sas)
    raise ValueError("needs either AccountKey (with AccountName) or SharedAccessSignature")


def canonical_resource(account: str, path: str, params: Mapping[str, str]) -> str:
    """SharedKey's CanonicalizedResource: ``/<account><encoded path>``, then each query
    parameter as ``\\n<lowercase name>:<value>``, sorted by name."""
    lines = [f"/{account}{path}"]
    lines += [f"{k.lower()}:{v}" for k, v in sorted(params.items(), key=lambda kv: kv[0].lower())]
    return "\n".join(lines)


def string_to_sign(method: str, headers: Mapping[str, str], resource: str) -> str:
    """SharedKey's string to sign for the Blob and Queue services (version 2009-09-19 on):
    the verb, eleven standard headers (empty here but ``Range``), the ``x-ms-*`` headers
    sorted, and the canonical resource."""
    standard = (
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-MD5",
        "Content-Type",
        "Date",
        "If-Modified-Since",
        "If-Match",
        "If-None-Match",
        "If-Unmodified-Since",
        "Range",
    )
    lower = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    values = [lower.get(h.lower(), "") for h in standard]
    ms = [f"{k}:{v}" for k, v in sorted(lower.items()) if k.startswith("x-ms-")]
    return "\n".join([method, *values, *ms, resource])


def sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def shared_key_header(
    account: StorageAccount,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    text = string_to_sign(method, headers, canonical_resource(account.account_name, path, params))
    return f"SharedKey {account.account_name}:{sign(account.account_key, text)}"


async def storage_get(
    clients: Clients, account: StorageAccount, segments: tuple[str, ...], params: Mapping[str, str]
) -> httpx.Response:
    """``GET`` a resource of the account (``segments`` below the service URL) with our query
    ``params``, signed or with the SAS; a ``200`` answer, or a ScalerError naming the URL
    without the SAS."""
    base = urlsplit(account.service_url)
    path = base.path + "".join("/" + quote(s, safe="") for s in segments)
    shown = f"{base.scheme}://{base.netloc}{path}" + (f"?{urlencode(params)}" if params else "")
    what = f"GET {shown}"
    query = urlencode([*params.items(), *account.sas])
    url = f"{base.scheme}://{base.netloc}{path}" + (f"?{query}" if query else "")
    headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": API_VERSION}
    if account.account_key:
        headers["Authorization"] = shared_key_header(account, "GET", path, params, headers)
    http = await _client(clients, f"{base.scheme}://{base.netloc}")
    try:
        async with http.turns.take():
            response = await http.client.get(url, headers=headers)
    except httpx.TimeoutException as exc:
        raise SourceTimeout(f"{what}: no answer within {clients.timeout:g}s") from exc
    except (httpx.HTTPError, ssl.SSLError) as exc:
        raise SourceUnreachable(f"{what}: {type(exc).__name__}: {exc}") from exc
    if len(response.content) > MAX_BODY_BYTES:
        raise SourceResponseError(f"{what}: answer larger than {MAX_BODY_BYTES} bytes")
    if response.status_code != 200:
        raise SourceResponseError(f"{what}: {_refusal(response, account)}")
    return response


def _refusal(response: httpx.Response, account: StorageAccount) -> str:
    """Azure's error code and the first line of its message, with what to do about a refused
    credential; ``AuthenticationErrorDetail`` (which quotes signatures) is never shown."""
    code = response.headers.get("x-ms-error-code", "")
    message = ""
    try:
        root = ET.fromstring(response.content)
        code = root.findtext("Code") or code
        message = (root.findtext("Message") or "").strip().splitlines()[0]
    except (ET.ParseError, IndexError):
        pass
    text = f"HTTP {response.status_code} {code}".rstrip() + (f": {message}" if message else "")
    if response.status_code == 403:
        part = "AccountKey" if account.account_key else "SharedAccessSignature"
        text += (
            f" (the {account.credential_kind} credential was refused: check the {part} of "
            "the connection string)"
        )
    return text


def xml_root(response: httpx.Response, what: str) -> ET.Element:
    try:
        return ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise SourceResponseError(f"{what}: the answer is not XML: {exc}") from exc


class _Endpoint:
    """The client of one storage endpoint, and the turns of its requests: as
    :data:`scalers.clients.HTTP_IN_FLIGHT` explains, more wait here, not in httpx's pool."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.turns = Turns(HTTP_IN_FLIGHT)


async def _client(clients: Clients, origin: str) -> _Endpoint:
    """One client per storage endpoint (scheme, host, port), shared by every trigger and
    credential of it: credentials are per request."""

    async def open_client() -> _Endpoint:
        limits = httpx.Limits(
            max_connections=HTTP_IN_FLIGHT, max_keepalive_connections=HTTP_IN_FLIGHT
        )
        client = httpx.AsyncClient(
            verify=tls_context(HttpIdentity()),
            timeout=httpx.Timeout(clients.timeout),
            limits=limits,
            follow_redirects=False,
            trust_env=False,
        )
        return _Endpoint(client)

    async def close(endpoint: _Endpoint) -> None:
        await endpoint.client.aclose()

    return await clients.shared(("azure-storage", origin), open_client, close)


DEV_CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1"
)
"""Azurite's well-known development account (its key is public), for examples."""

_AUTH_TRIGGER_ENV = (Source.AUTH, Source.TRIGGER, Source.ENV)


@dataclass(frozen=True)
class StorageMetadata(TriggerMetadata):
    """The account parameters every Azure Storage trigger has; subclass it with the trigger's."""

    connection: str | None = param(
        "connection",
        order=_AUTH_TRIGGER_ENV,
        optional=True,
        secret=True,
        doc="the storage account's connection string (AccountKey or SharedAccessSignature)",
    )
    account_name: str | None = param(
        "accountName", optional=True, doc="with Azure AD workload identity only: not supported"
    )
    endpoint_suffix: str | None = param(
        "endpointSuffix", optional=True, doc="with Azure AD only; required with cloud: Private"
    )
    cloud: str | None = param("cloud", optional=True, doc="with Azure AD only")

    SERVICE = "queue"

    def check(self) -> Iterator[tuple[str, str]]:
        if self.cloud:
            private = self.cloud.lower() == PRIVATE_CLOUD
            if private and not self.endpoint_suffix:
                yield "endpointSuffix", "is required with cloud: Private"
            elif not private and self.cloud.upper() not in (*_CLOUDS, _AZURE_STACK):
                names = ", ".join(("AzurePublicCloud", "AzureUSGovernmentCloud", "AzureChinaCloud"))
                yield "cloud", f"{quoted(self.cloud)} is not a known Azure cloud ({names}, Private)"
        if not self.connection:
            yield (
                "connection",
                "is required: the storage account's connection string, in the trigger's "
                "authentication or with connectionFromEnv",
            )
            return
        try:
            parse_connection_string(self.connection, self.SERVICE)
        except ValueError as exc:
            yield "connection", f"the connection string {exc}"

    @property
    def account(self) -> StorageAccount:
        assert self.connection is not None, "check() requires it"
        return parse_connection_string(self.connection, self.SERVICE)


M = TypeVar("M", bound=TriggerMetadata)


@dataclass(frozen=True, slots=True)
class StorageKind(ScalerKind[M]):
    """A storage trigger type: only a connection string authenticates it. KEDA's other
    identity, Azure AD workload identity (``podIdentity: azure-workload``), is refused
    here, as any other provider is by KEDA."""

    def create(self, inputs: TriggerInputs, problems: Problems) -> Scaler[Any] | None:
        pod = inputs.pod_identity
        refused = pod is not None and pod.provider != "none"
        if pod is not None and refused:
            why = (
                "Azure AD workload identity is not supported by metrics-adapter"
                if pod.provider == "azure-workload"
                else "KEDA supports only none and azure-workload"
            )
            problems.add(
                inputs.auth_path,
                f"podIdentity {pod.provider} cannot authenticate {self.type_name} ({why}): "
                "give the storage account's connection string (connection) instead",
            )
            inputs = dataclasses.replace(inputs, pod_identity=None)
        meta = parse_params(self.metadata, inputs, problems)
        return None if meta is None or refused else self.build(meta)
