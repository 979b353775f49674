"""``azure-blob``: the blobs of an Azure Storage container, as KEDA counts them.

KEDA lists the container (every page) and counts:

- by default, the blobs directly under ``blobPrefix`` (``<prefix>/``: the delimiter is
  appended to a prefix): a hierarchical listing split at ``blobDelimiter`` (``/``), whose
  "directories" (BlobPrefix entries) are not counted;
- with ``recursive: true``, every blob under the prefix, at any depth (no delimiter, and
  none appended to the prefix);
- with ``globPattern``, the blobs under the prefix, at any depth, whose whole name matches
  the pattern (a leading ``/`` of the pattern is dropped: blob names have none).

A query is one listing (container, prefix, delimiter), so a recursive trigger and glob
triggers with the same prefix share it; each glob trigger counts its own matches.

Unlike KEDA, a listing stops with an error after :data:`MAX_PAGES` pages (50 million blobs)
rather than holding a poll for ever. ``connection`` is looked up in the authentication, then
``connectionFromEnv``, then the metadata (``azure-queue`` reads the metadata second), as KEDA.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from scalers.azure_glob import compile_glob
from scalers.azure_storage import (
    DEV_CONNECTION,
    StorageAccount,
    StorageKind,
    StorageMetadata,
    storage_get,
    xml_root,
)
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import Source, param

PAGE_SIZE = 5000
"""Blobs a page holds (``maxresults``): Azure's default and maximum, which KEDA gets."""
MAX_PAGES = 10_000
"""Pages one listing may take before it is an error rather than a hang."""


@dataclass(frozen=True)
class Metadata(StorageMetadata):
    connection: str | None = param(
        "connection",
        aliases=("connectionFromEnv",),
        order=(Source.AUTH, Source.ENV, Source.TRIGGER),
        optional=True,
        secret=True,
        doc="the storage account's connection string (AccountKey or SharedAccessSignature)",
    )
    blob_container_name: str = param("blobContainerName")
    blob_count: int = param("blobCount", default="5", gt=0, doc="blobs per replica")
    activation_blob_count: int = param("activationBlobCount", default="0")
    blob_delimiter: str = param("blobDelimiter", default="/")
    blob_prefix: str | None = param("blobPrefix", optional=True)
    recursive: bool = param("recursive", default="false", doc="count blobs at any depth")
    glob_pattern: str | None = param(
        "globPattern", optional=True, doc="count the blobs whose whole name matches (*, ?, [], {})"
    )

    SERVICE = "blob"

    def check(self) -> Iterator[tuple[str, str]]:
        yield from super().check()
        if self.glob_pattern:
            try:
                compile_glob(self.glob_pattern.removeprefix("/"))
            except ValueError as exc:
                yield "globPattern", f"{quote(self.glob_pattern)} is not a glob pattern: {exc}"

    @property
    def delimiter(self) -> str:
        return "" if self.recursive else self.blob_delimiter

    @property
    def prefix(self) -> str:
        """KEDA's prefix: the delimiter appended to a given prefix."""
        return self.blob_prefix + self.delimiter if self.blob_prefix else ""


@dataclass(frozen=True, slots=True)
class Listed:
    """What a listing found: its blobs (not its "directories"), and their names where a glob
    may need them (a flat listing)."""

    count: int
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlobListing:
    """Every page of one container listing."""

    account: StorageAccount
    container: str
    prefix: str
    delimiter: str
    """Empty: a flat listing, every blob under the prefix."""

    async def run(self, clients: Clients) -> Listed:
        params = {"restype": "container", "comp": "list", "maxresults": str(PAGE_SIZE)}
        if self.prefix:
            params["prefix"] = self.prefix
        if self.delimiter:
            params["delimiter"] = self.delimiter
        count, names = 0, list[str]()
        for _ in range(MAX_PAGES):
            response = await storage_get(clients, self.account, (self.container,), params)
            root = xml_root(response, self.describe())
            found = root.findall("Blobs/Blob/Name")
            count += len(found)
            if not self.delimiter:  # only a glob needs names, and it lists flat
                names += (_name(e) for e in found)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return Listed(count, tuple(names))
            params["marker"] = marker
        raise SourceResponseError(f"{self.describe()}: more than {MAX_PAGES} pages")

    def describe(self) -> str:
        how = f"delimiter {quote(self.delimiter)}" if self.delimiter else "flat"
        return (
            f"azure blobs {self.account.service_url}/{self.container} "
            f"(prefix {quote(self.prefix)}, {how})"
        )


def _name(element: ET.Element) -> str:
    """A blob's name; one with characters XML cannot hold comes percent-encoded."""
    text = element.text or ""
    return unquote(text) if element.get("Encoded") == "true" else text


@dataclass(frozen=True, kw_only=True)
class AzureBlobScaler(Scaler[Listed]):
    meta: Metadata
    query: BlobListing
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def measure(self, answer: Listed) -> float:
        if self.pattern is None:
            return float(answer.count)
        return float(sum(1 for name in answer.names if self.pattern.match(name)))


def build(meta: Metadata) -> AzureBlobScaler:
    pattern = compile_glob(meta.glob_pattern.removeprefix("/")) if meta.glob_pattern else None
    # A glob is matched against a flat listing of the prefix, as in KEDA.
    delimiter = "" if pattern is not None else meta.delimiter
    return AzureBlobScaler(
        meta=meta,
        query=BlobListing(meta.account, meta.blob_container_name, meta.prefix, delimiter),
        pattern=pattern,
        metric_name=normalize(f"azure-blob-{meta.blob_container_name}"),
        target=float(meta.blob_count),
        activation_target=float(meta.activation_blob_count),
        value_label="blobs",
    )


KIND = StorageKind(
    type_name="azure-blob",
    keda_name="azureBlobScaler",
    metadata=Metadata,
    build=build,
    summary="Blobs in an Azure Storage container: under a prefix, at any depth, or by glob.",
    example=Example(
        {"blobContainerName": "uploads", "blobCount": "10", "blobPrefix": "incoming"},
        {"connection": DEV_CONNECTION},
    ),
)
