"""Chaos on the real control plane: each scenario's time to recover, printed at the end."""

from __future__ import annotations

import pytest

RECOVERED: dict[str, dict[str, float]] = {}
"""Per scenario: seconds from the fault's end until the adapter serves a fresh value through
the aggregator (``served``) and until a ScaledObject created then gets its HPA
(``reconciled``)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: a fault on the real control plane or a source, bounded in time"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for scenario, figures in RECOVERED.items():
        shown = " ".join(f"{k}_s={v:.2f}" for k, v in figures.items())
        terminalreporter.write_line(f"chaos: scenario={scenario} {shown}")
