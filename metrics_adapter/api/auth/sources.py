"""Where authentication's trust comes from, followed while the process runs.

kube-apiserver publishes its client CA and its front proxy's CA, allowed names and headers in
the ConfigMap kube-system/extension-apiserver-authentication; the adapter watches it, so a CA
rotation needs no restart. ``--client-ca-file`` and ``--requestheader-client-ca-file`` (with
``--requestheader-allowed-names``) take precedence over it, and are re-read when they change.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from metrics_adapter.api.auth.identity import AuthConfig, CaBundle, RequestHeaderConfig
from metrics_adapter.certs.files import WatchedFiles
from metrics_adapter.errors import KubeError, KubeNotFound
from metrics_adapter.kube.client import CONFIG_MAPS, KubeClient
from metrics_adapter.kube.watch import watch

log = logging.getLogger(__name__)

NAMESPACE, NAME = "kube-system", "extension-apiserver-authentication"
ORIGIN = f"ConfigMap {NAMESPACE}/{NAME}"


def from_config_map(data: Mapping[str, str]) -> AuthConfig:
    """kube-apiserver's published authentication settings; ValueError naming the key."""

    def bundle(key: str) -> CaBundle:
        pem = data.get(key)
        return CaBundle.parse(pem.encode(), f"{ORIGIN}: {key}") if pem else CaBundle()

    def names(key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = data.get(key)
        if raw is None:
            return default
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{ORIGIN}: {key}: {raw!r} is not a JSON list: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{ORIGIN}: {key}: {raw!r} is not a JSON list of strings")
        return tuple(value)

    base = RequestHeaderConfig()
    return AuthConfig(
        bundle("client-ca-file"),
        RequestHeaderConfig(
            bundle("requestheader-client-ca-file"),
            names("requestheader-allowed-names"),
            names("requestheader-username-headers", base.username_headers),
            names("requestheader-group-headers", base.group_headers),
            names("requestheader-extra-headers-prefix", base.extra_prefixes),
            names("requestheader-uid-headers", base.uid_headers),
        ),
    )


@dataclass
class AuthSources:
    """The current :class:`AuthConfig`, pushed to ``listeners`` whenever a source changes."""

    client_ca_file: Path | None = None
    requestheader_ca_file: Path | None = None
    allowed_names: tuple[str, ...] = ()
    kube: KubeClient | None = None
    reload_interval: float = 10.0
    listeners: list[Callable[[AuthConfig], None]] = field(default_factory=list)
    config_map: tuple[str, str] = (NAMESPACE, NAME)
    """Where kube-apiserver publishes its settings (another place only in tests)."""
    cluster: AuthConfig = field(default_factory=AuthConfig)
    files: dict[str, CaBundle] = field(default_factory=dict)
    current: AuthConfig = field(default_factory=AuthConfig)

    @property
    def configured(self) -> bool:
        """Whether anything says whom to trust (else the API is open: standalone only)."""
        return self.kube is not None or bool(self.client_ca_file or self.requestheader_ca_file)

    def __post_init__(self) -> None:
        paths = [p for p in (self.client_ca_file, self.requestheader_ca_file) if p]
        self.watched: WatchedFiles | None = None
        """The flags' CA files, re-read by ``watched.run()`` (see :meth:`load`)."""
        if paths:
            self.watched = WatchedFiles(paths, self._files_changed, self.reload_interval)

    async def load(self) -> AuthConfig:
        """Read every source once. Flag files must read; the ConfigMap may be missing or the
        API down for now, and is followed by :meth:`follow`."""
        if self.watched is not None:
            self.watched.load()
        if self.kube is not None:
            namespace, name = self.config_map
            try:
                obj = await self.kube.get(CONFIG_MAPS, name, namespace)
            except KubeNotFound:
                log.warning("%s does not exist: no front proxy or client CA from it", ORIGIN)
            except KubeError as exc:
                log.warning("cannot read %s yet (%s); following it", ORIGIN, exc)
            else:
                self._config_map_changed(obj.get("data") or {})
        self._publish()
        return self.current

    async def follow(self) -> None:
        """Apply every change of the ConfigMap until cancelled."""
        assert self.kube is not None
        namespace, name = self.config_map
        selector = f"metadata.name={name}"
        events = watch(self.kube, CONFIG_MAPS, namespace, field_selector=selector)
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if event.type in ("ADDED", "MODIFIED"):
                    with contextlib.suppress(ValueError):  # logged; the old config stays
                        self._config_map_changed(event.object.get("data") or {})
                        self._publish()

    def _config_map_changed(self, data: Mapping[str, str]) -> None:
        try:
            self.cluster = from_config_map(data)
        except ValueError as exc:
            log.error("%s; keeping the previous authentication settings", exc)
            raise

    def _files_changed(self, contents: list[bytes]) -> None:
        assert self.watched is not None
        files = {}
        for path, pem in zip(self.watched.paths, contents, strict=True):
            files[str(path)] = CaBundle.parse(pem, str(path))
        self.files = files
        self._publish()

    def _publish(self) -> None:
        config = self.cluster
        if self.client_ca_file:
            config = replace(config, client_ca=self.files[str(self.client_ca_file)])
        if self.requestheader_ca_file:
            rh = replace(
                RequestHeaderConfig(),
                ca=self.files[str(self.requestheader_ca_file)],
                allowed_names=self.allowed_names,
            )
            config = replace(config, requestheader=rh)
        if config == self.current:
            return
        self.current = config
        for listener in self.listeners:
            listener(config)
