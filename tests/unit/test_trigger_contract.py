"""The contract every registered trigger type keeps, checked on its declared example.

For each type in :data:`scalers.registry.KINDS`: its :class:`~scalers.base.Example`
builds; each required parameter taken away is a ConfigError that names it; no secret
parameter shows in the ``repr`` of the scaler or of its query (log lines and errors are
made from those); and a source that cannot be reached is an error, never a zero. A new
trigger type gets all of this by declaring its example: nothing to add here.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from scalers.base import ScalerKind
from scalers.errors import ConfigError, Problems, ScalerError
from scalers.params import TriggerInputs, declared_params, parse_params
from scalers.registry import KINDS
from tests.support.servers import free_port
from tests.support.triggers import poll_once, trigger

KIND_NAMES = sorted(KINDS)
REQUIRED = [
    (name, spec.name)
    for name in KIND_NAMES
    for _, spec in declared_params(KINDS[name].metadata)
    if spec.required
]
REACHING = [name for name in KIND_NAMES if KINDS[name].example.source is not None]


@pytest.fixture(autouse=True)
def only_what_the_test_gives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy, AWS configuration or instance metadata from the machine: a client may use
    only the example's parameters, and reach only the loopback address they name."""
    for key in [k for k in os.environ if "PROXY" in k.upper()]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("type_name", KIND_NAMES)
def test_the_example_builds(type_name: str) -> None:
    example = KINDS[type_name].example
    built = trigger(type_name, example.metadata, example.auth)
    assert built.metric_name and built.target > 0


@pytest.mark.parametrize(("type_name", "param"), REQUIRED, ids=[f"{k}-{p}" for k, p in REQUIRED])
def test_a_missing_required_parameter_is_named(type_name: str, param: str) -> None:
    example = KINDS[type_name].example
    metadata = {k: v for k, v in example.metadata.items() if k != param}
    auth = {k: v for k, v in example.auth.items() if k != param}
    with pytest.raises(ConfigError) as error:
        trigger(type_name, metadata, auth)
    assert f".{param}: is required" in str(error.value)


@pytest.mark.parametrize("type_name", KIND_NAMES)
def test_no_secret_shows_in_the_scaler_or_its_query(type_name: str) -> None:
    kind = KINDS[type_name]
    meta = _example_metadata(kind)
    secrets = {
        f.name: _secret_in(getattr(meta, f.name), spec.name)
        for f, spec in declared_params(kind.metadata)
        if spec.secret
    }
    scaler = kind.build(
        dataclasses.replace(meta, **{f: value for f, (value, _) in secrets.items()})
    )
    shown = f"{scaler!r}\n{scaler.query!r}"
    for value, secret in secrets.values():
        assert secret not in shown, f"{type_name}: {value!r} shows in {shown}"


@pytest.mark.parametrize("type_name", REACHING)
async def test_an_unreachable_source_is_an_error_not_a_zero(type_name: str) -> None:
    example = KINDS[type_name].example
    source = example.source
    assert source is not None
    closed = free_port()  # nothing listens there: every connection is refused at once
    metadata, auth = dict(example.metadata), dict(example.auth)
    where = auth if source in auth else metadata
    where[source] = _at(where.get(source), closed)
    # A value here, zero or not, would fail the test: pytest.raises says it did not raise.
    with pytest.raises(ScalerError, match=re.escape(f"127.0.0.1:{closed}")):
        await poll_once(type_name, metadata, auth)


def _example_metadata(kind: ScalerKind[Any]) -> Any:
    problems = Problems()
    inputs = TriggerInputs(dict(kind.example.metadata), {}, dict(kind.example.auth))
    meta = parse_params(kind.metadata, inputs, problems)
    assert meta is not None, [str(p) for p in problems]
    return meta


def _secret_in(example: str | None, name: str) -> tuple[str, str]:
    """A value for secret parameter ``name``, and the part of it that must never show: the
    whole value, or the password of a URL's login (the rest of a URL is no secret)."""
    secret = f"hush-{name}-hush"
    if example is None or "://" not in example:
        return secret, secret
    parts = urlsplit(example)
    netloc = f"user:{secret}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc)), secret


def _at(value: str | None, port: int) -> str:
    """``value`` (a URL, or ``host:port`` items) pointed at 127.0.0.1:``port``, its login
    and path kept; an unset source parameter (``awsEndpoint``) becomes a URL. A Go MySQL
    DSN (``user:pw@tcp(host:3306)/db``) keeps everything but its address."""
    if value is None:
        return f"http://127.0.0.1:{port}"
    if "tcp(" in value:
        return re.sub(r"tcp\([^)]*\)", f"tcp(127.0.0.1:{port})", value)
    if "://" not in value:
        return f"127.0.0.1:{port}"
    parts = urlsplit(value)
    login, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{login}{at}127.0.0.1:{port}"))
