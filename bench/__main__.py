"""Every benchmark in sequence, the summary lines of all of them at the end: ``make bench``.

.venv/bin/python -m bench [api gate forward upstream activation footprint jobs webhook attack]
.venv/bin/python -m bench soak     # an hour on its own, never part of the default sequence
.venv/bin/python -m bench keda     # KEDA itself beside us (make bench-keda), never by default
.venv/bin/python -m bench shards   # 1, 2, 4 replicas with --shards, 70,000 objects: named only
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from bench import (
    activation,
    api,
    attack,
    footprint,
    forward,
    gate,
    jobs,
    shards,
    soak,
    upstream,
    webhook,
)
from bench.keda import run as keda
from bench.report import note

BENCHMARKS: dict[str, Callable[[Sequence[str] | None], list[str]]] = {
    "api": api.run,
    "gate": gate.run,
    "forward": forward.run,
    "upstream": upstream.run,
    "activation": activation.run,
    "footprint": footprint.run,
    "jobs": jobs.run,
    "webhook": webhook.run,
    "attack": attack.run,
    "soak": soak.run,
    "keda": keda.run,
    "shards": shards.run,
}
LONG = {"soak", "keda", "shards"}
"""Run only when named: the soak takes an hour; KEDA is built cold once, then runs ~30 min;
shards creates 7 x 10,000 objects on three control planes by default."""


def main() -> None:
    chosen = sys.argv[1:] or [name for name in BENCHMARKS if name not in LONG]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}: one of {', '.join(BENCHMARKS)}")
    lines: list[str] = []
    for name in chosen:
        began = time.monotonic()
        note(f"=== bench.{name}")
        lines += BENCHMARKS[name]([])
        note(f"=== bench.{name}: {time.monotonic() - began:.0f}s")
    print()
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
