"""A replica taking an object over writes from kube-apiserver's copy, not its watch's: the
previous owner's last status may not have reached the watch yet."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from metrics_adapter.control.lifecycle import latest
from metrics_adapter.kube.client import SCALED_OBJECTS, status_error
from metrics_adapter.model.keda import read_scaled_object
from tests.support import triggers
from tests.support.kube_fakes import FakeKube

NS, NAME = "shop", "orders"
PATH = SCALED_OBJECTS.path(NS, NAME)


def raw(last_active: str) -> dict[str, Any]:
    doc = triggers.scaled_object(NAME, NS, triggers.always_cron(1))
    doc["status"] = {"lastActiveTime": last_active}
    return doc


WATCHED = read_scaled_object(raw("2030-01-02T03:04:05Z"))


async def test_the_copy_kube_apiserver_holds_now_is_the_one_written_from() -> None:
    kube = FakeKube({PATH: raw("2030-01-02T03:09:00Z")})
    document = await latest(kube, SCALED_OBJECTS, read_scaled_object, WATCHED)
    assert document is not None
    assert document.status.last_active_time == datetime(2030, 1, 2, 3, 9, tzinfo=UTC)
    assert kube.asked == [PATH]


async def test_an_object_gone_meanwhile_is_not_reconciled() -> None:
    gone = status_error("so", {"code": 404, "reason": "NotFound", "message": "gone"})
    assert await latest(FakeKube({PATH: gone}), SCALED_OBJECTS, read_scaled_object, WATCHED) is None


async def test_an_unreadable_copy_falls_back_to_the_watched_one_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = status_error("so", {"code": 503, "reason": "ServiceUnavailable", "message": "etcd"})
    with caplog.at_level(logging.WARNING):
        document = await latest(FakeKube({PATH: down}), SCALED_OBJECTS, read_scaled_object, WATCHED)
    assert document is WATCHED
    assert "its watched copy stands in" in caplog.text
    assert "etcd" in caplog.text
