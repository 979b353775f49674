"""KEDA's ``filePath`` source (ClusterTriggerAuthentication only): a JSON object of
authParams in a file under the directory ``--filepath-auth-root-path`` names, typically a
mounted Secret. Its parameters replace every other source's, as in KEDA.

The file is read again every :data:`FILE_REFRESH` seconds; a changed content re-binds the
objects using it (a mounted Secret is replaced in place by the kubelet)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from metrics_adapter.binding.auth_sources.base import ReadContext, SourceValues
from metrics_adapter.errors import AuthSourceError

FILE_REFRESH = 5.0
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class FileRead:
    """The file ``path`` (relative, as written in the authentication) under the root."""

    path: str

    def describe(self) -> str:
        return f"filePath {self.path}"

    async def read(self, context: ReadContext) -> SourceValues:
        return SourceValues(await asyncio.to_thread(self._load, context.file_root), FILE_REFRESH)

    def _load(self, root: Path | None) -> dict[str, str]:
        where = self.describe()
        if root is None:
            raise AuthSourceError(f"{where}: --filepath-auth-root-path is not set")
        relative = PurePosixPath(self.path)
        if relative.is_absolute() or ".." in self.path:  # KEDA's rule, ".." anywhere
            raise AuthSourceError(f"{where}: must be relative and not contain '..'")
        full = root / relative
        try:
            with full.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise AuthSourceError(f"{where}: cannot read {full}: {exc.strerror or exc}") from exc
        if len(data) > MAX_FILE_BYTES:
            raise AuthSourceError(f"{where}: {full} is larger than {MAX_FILE_BYTES} bytes")
        try:
            params = json.loads(data)
        except ValueError as exc:  # the message quotes no content: it is a secret
            raise AuthSourceError(f"{where}: {full} is not JSON") from exc
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise AuthSourceError(f"{where}: {full} must be a JSON object of strings")
        return {str(k): v for k, v in params.items()}
