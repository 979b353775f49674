"""One MBean attribute read through a Jolokia agent's REST API: what ``activemq`` and
``artemis-queue`` share.

Both KEDA scalers send ``GET <agent>/read/<mbean>/<attribute>`` with HTTP basic auth and an
``Origin`` header (a Jolokia policy with ``<strict-checking/>``, Artemis' default, refuses
any other origin), and accept only an answer whose ``status`` is 200 and whose ``value`` is
a whole number. Jolokia reports most failures (an unknown MBean, a refused origin) inside
an HTTP 200, as ``status``, ``error_type`` and ``error``: those become errors here, never
a zero. The request is the query: triggers with the same URL, login and origin share one
request per interval. A login written into the URL is dropped, as KEDA's ``SetBasicAuth``
overrides it, so no URL shown in a log or message carries one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus, urlsplit

import httpx

from scalers.clients import HttpIdentity
from scalers.errors import SourceResponseError, SourceUnreachable, quote

if TYPE_CHECKING:
    from scalers.clients import Clients


@dataclass(frozen=True, slots=True)
class JolokiaRead:
    """``GET url`` as KEDA's two Jolokia scalers send it; the answer is the value read."""

    url: str
    """The read URL, without a login."""
    username: str
    password: str = field(repr=False)
    origin: str
    identity: HttpIdentity = field(default_factory=HttpIdentity, repr=False)
    hint: str = field(default="", compare=False)
    """What to check when the MBean is not there (the parameters that name it)."""

    async def run(self, clients: Clients) -> int:
        login = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {login}", "Origin": self.origin}
        try:
            document = await clients.get_json(self.url, headers=headers, identity=self.identity)
        except httpx.InvalidURL as exc:  # KEDA's request fails the same way, when it polls
            raise SourceUnreachable(f"{self.describe()}: not a URL that can be requested") from exc
        except SourceResponseError as exc:
            if ": HTTP 401:" in str(exc) or ": HTTP 403:" in str(exc):
                raise SourceResponseError(
                    f"{exc} (the agent refused the login: check username and password)"
                ) from exc
            raise
        return read_value(document, self.describe(), self.hint)

    def describe(self) -> str:
        return f"GET {self.url}"


def read_value(document: object, what: str, hint: str = "") -> int:
    """The ``value`` of a Jolokia read answer, as KEDA decodes it into a Go ``int``: a
    ``status`` other than 200 is Jolokia's error, and anything but a whole number is an
    error too (where Go would read ``null`` as 0, this is an error: never a zero)."""
    if not isinstance(document, dict) or "status" not in document:
        raise SourceResponseError(
            f"{what}: the answer is not a Jolokia response: {quote(document)}"
        )
    status = document["status"]
    if status != 200:
        error = str(document.get("error") or "no error message")
        kind = str(document.get("error_type") or "")
        reason = error if not kind or error.startswith(kind) else f"{kind}: {error}"
        advice = f" ({hint})" if hint and "InstanceNotFoundException" in kind else ""
        if "Origin" in error and "not allowed" in error:
            advice = " (set corsHeader to an origin the agent's policy allows)"
        raise SourceResponseError(f"{what}: Jolokia status {quote(status)}: {reason}{advice}")
    value = document.get("value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceResponseError(f"{what}: value is {quote(value)}, not a whole number")
    if not -(2**63) <= value < 2**63:
        raise SourceResponseError(f"{what}: value {value} is beyond a 64-bit integer")
    return value


def without_login(url: str) -> str:
    """``url`` without a ``user:password@`` part, which KEDA never sends either; split by
    hand, so that no URL, however broken, keeps its login."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def default_origin(endpoint: str) -> str:
    """KEDA's default ``corsHeader``: ``http://<managementEndpoint>``, less any login."""
    return f"http://{endpoint.rpartition('@')[2]}"


@dataclass(frozen=True, slots=True)
class ParsedTemplate:
    """What KEDA takes from a user's read URL: the agent's ``host:port`` and the MBean's
    key properties (``brokerName=b,destinationName=q`` → their values)."""

    host: str
    properties: Mapping[str, str]


def parse_template(template: str, drop: str = "") -> ParsedTemplate | str:
    """A read URL split as KEDA splits it: its host, and the key properties between the
    path's first ``:`` and the next ``/``, each ``k=v`` URL-unescaped (and ``drop`` taken
    out of values, as artemis takes ``""`` out); else the reason it cannot be, as a message."""
    try:
        parts = urlsplit(template)
        shown = quote(without_login(template))
    except ValueError as exc:
        return f"is not a URL: {exc}"
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        return f"{shown} is not an http(s)://host:port/... URL"
    if ":" not in parts.path:
        return f"{shown} names no MBean (domain:key=value,...) in its path"
    names = parts.path.split(":")[1].split("/")[0]
    properties: dict[str, str] = {}
    for item in names.split(","):
        key, _, value = item.partition("=")
        value = unquote_plus(value)
        properties.setdefault(unquote_plus(key), value.replace(drop, "") if drop else value)
    return ParsedTemplate(host, properties)
