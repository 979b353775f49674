"""The cache of outside authentication sources, and the filePath source on a real file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from metrics_adapter.binding.auth_sources.base import ReadContext, SourceValues
from metrics_adapter.binding.auth_sources.cache import SourceCache
from metrics_adapter.binding.auth_sources.file_path import FileRead
from metrics_adapter.errors import AuthSourceError
from scalers.clients import Clients


@dataclass(eq=False)
class Script:
    """What a fake source answers, read after read: values, or an error to raise."""

    answers: list[dict[str, str] | str]
    refresh_in: float = 0.0
    calls: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class FakeRead:
    name: str
    script: Script = field(compare=False, hash=False)

    def describe(self) -> str:
        return f"fake {self.name}"

    async def read(self, context: ReadContext) -> SourceValues:
        s = self.script
        answer = s.answers[min(s.calls, len(s.answers) - 1)]
        s.calls += 1
        s.gate.set()
        if isinstance(answer, str):
            raise AuthSourceError(f"fake {self.name}: {answer}")
        return SourceValues(answer, s.refresh_in)


def cache(changes: list[str] | None = None) -> SourceCache:
    def changed(read: object) -> None:
        if changes is not None:
            changes.append(read.describe())  # type: ignore[attr-defined]

    return SourceCache(ReadContext(Clients()), changed, retry=0.01, max_retry=0.02, min_refresh=0.0)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll a condition the cache's own tasks make true; the limit only stops a hang."""
    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


async def test_one_read_shared_by_its_owners_and_waited_for_by_settle() -> None:
    script = Script([{"token": "a"}], refresh_in=3600)
    read = FakeRead("r", script)
    sources = cache()
    try:
        await sources.settle("so-1", [read], within=10)
        await sources.settle("so-2", [FakeRead("r", script)], within=10)
        assert sources.get(read) == SourceValues({"token": "a"}, 3600)
        assert script.calls == 1
        assert sorted(map(str, sources.owners(read))) == ["so-1", "so-2"]
    finally:
        await sources.aclose()


async def test_refreshed_after_refresh_in_and_a_change_reported() -> None:
    changes: list[str] = []
    script = Script([{"token": "a"}, {"token": "a"}, {"token": "b"}])
    read = FakeRead("r", script)
    sources = cache(changes)
    try:
        await sources.settle("so", [read], within=10)
        await until(lambda: script.calls >= 3)
        await until(lambda: sources.get(read) == SourceValues({"token": "b"}, 0.0))
        assert changes == ["fake r", "fake r"]  # first answer, then a; a again is no change
    finally:
        await sources.aclose()


async def test_a_failed_refresh_keeps_the_last_good_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes: list[str] = []
    script = Script([{"token": "a"}, "403 permission denied"])
    read = FakeRead("r", script)
    sources = cache(changes)
    try:
        await sources.settle("so", [read], within=10)
        await until(lambda: script.calls >= 4)  # the failure, retried
        assert sources.get(read) == SourceValues({"token": "a"}, 0.0)
        assert changes == ["fake r"]
        assert "fake r: 403 permission denied; keeping the values last read" in caplog.text
        assert "'a'" not in caplog.text
    finally:
        await sources.aclose()


async def test_a_read_that_never_succeeded_is_its_error_until_it_does() -> None:
    changes: list[str] = []
    script = Script(["connection refused", "connection refused", {"token": "a"}])
    read = FakeRead("r", script)
    sources = cache(changes)
    try:
        await sources.settle("so", [read], within=10)
        state = sources.get(read)
        assert isinstance(state, AuthSourceError)
        assert str(state) == "fake r: connection refused"
        await until(lambda: isinstance(sources.get(read), SourceValues))
        assert changes == ["fake r", "fake r"]  # the error, then the values
    finally:
        await sources.aclose()


async def test_settle_gives_up_after_its_wait_and_the_answer_comes_later() -> None:
    class Slow(FakeRead):
        async def read(self, context: ReadContext) -> SourceValues:
            await self.script.gate.wait()
            return SourceValues({"k": "v"}, 3600)

    script = Script([{}])
    read = Slow("slow", script)
    changes: list[str] = []
    sources = cache(changes)
    try:
        await sources.settle("so", [read], within=0.01)
        assert sources.get(read) is None
        script.gate.set()
        await until(lambda: changes == ["fake slow"])
    finally:
        await sources.aclose()


async def test_a_read_no_owner_needs_is_stopped() -> None:
    script = Script([{"k": "v"}])
    read = FakeRead("r", script)
    sources = cache()
    try:
        await sources.settle("a", [read], within=10)
        await sources.settle("b", [read], within=10)
        sources.release("a")
        assert sources.get(read) is not None
        await sources.settle("b", [], within=10)  # b's object no longer reads it
        assert sources.get(read) is None
        calls = script.calls
        await asyncio.sleep(0.05)
        assert script.calls == calls
    finally:
        await sources.aclose()


# filePath, on a real file.


async def test_file_path_is_read_under_the_root_and_again_when_it_changes(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    file = tmp_path / "creds" / "app.json"
    file.write_text(json.dumps({"token": "one"}))
    context = ReadContext(Clients(), file_root=tmp_path)
    read = FileRead("creds/app.json")
    assert (await read.read(context)).values == {"token": "one"}
    file.write_text(json.dumps({"token": "two", "user": "u"}))
    assert (await read.read(context)).values == {"token": "two", "user": "u"}


@pytest.mark.parametrize(
    ("path", "content", "root", "message"),
    [
        ("a.json", None, True, "filePath a.json: cannot read {root}/a.json: No such file"),
        ("../etc/passwd", None, True, "filePath ../etc/passwd: must be relative and not contain"),
        ("/etc/passwd", None, True, "filePath /etc/passwd: must be relative"),
        ("a.json", "token=secret", True, "filePath a.json: {root}/a.json is not JSON"),
        ("a.json", '{"n": 1}', True, "must be a JSON object of strings"),
        ("a.json", "{}", False, "filePath a.json: --filepath-auth-root-path is not set"),
    ],
)
async def test_file_path_errors_name_the_file_never_its_content(
    tmp_path: Path, path: str, content: str | None, root: bool, message: str
) -> None:
    if content is not None:
        (tmp_path / "a.json").write_text(content)
    context = ReadContext(Clients(), file_root=tmp_path if root else None)
    with pytest.raises(AuthSourceError) as info:
        await FileRead(path).read(context)
    assert message.format(root=tmp_path) in str(info.value)
    assert "secret" not in str(info.value)
