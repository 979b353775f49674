"""The log lines a user reads: uvicorn's lines once each, without terminal escape codes."""

from __future__ import annotations

import json
import logging

from metrics_adapter.metrics.telemetry import JsonFormatter, OncePerBurst, TextFormatter


def record(message: str, created: float = 1000.0, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, None, None)
    made.created = created
    made.__dict__.update(extra)
    return made


def test_uvicorns_color_message_is_not_printed() -> None:
    colored = record("Started server process [7]", color_message="\x1b[36m%d\x1b[0m", pid=7)
    text = TextFormatter().format(colored)
    assert text.endswith("Started server process [7]  pid=7"), text
    assert "color_message" not in json.loads(JsonFormatter().format(colored))


def test_the_same_line_from_each_server_is_said_once() -> None:
    once = OncePerBurst(seconds=2)
    said = [
        once.filter(record("Started server process [7]", 1000.0)),
        once.filter(record("Started server process [7]", 1000.1)),  # the second server
        once.filter(record("Uvicorn running on http://127.0.0.1:8080", 1000.1)),
        once.filter(record("Started server process [7]", 1003.0)),  # later: news again
    ]
    assert said == [True, False, True, True]
