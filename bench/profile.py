"""Where the adapter's time goes, sampled with py-spy at 10,000 ScaledObjects: the API under
wrk load, the polling loop's startup burst, and its steady state.

    .venv/bin/python -m bench.profile [--objects 10000] [--seconds 20] [--top 12]

py-spy (a dev extra) attaches to the running adapter (ptrace: root, or CAP_SYS_PTRACE) and
samples it 200 times a second without pausing it (``--nonblocking``); idle samples (the event
loop waiting in epoll) are left out, so percentages are of the time the process was busy.
Self time is the innermost frame of a sample; the package table sums self time by where the
code lives (a site-packages distribution, the standard library module, or our packages).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import footprint
from bench.adapter import Bench, metric_url, scaled_object
from bench.api import CRON, LUA, METRIC, NAMESPACE, PATH, WRK_INSTALL
from bench.report import main, note, print_table
from tests.support.value_server import ValueServer

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def record(pid: int, seconds: float, out: Path) -> Path:
    """``py-spy record`` of ``pid`` for ``seconds`` into a collapsed-stacks file."""
    spy = shutil.which("py-spy") or str(Path(__file__).parents[1] / ".venv" / "bin" / "py-spy")
    options = ["--duration", str(int(seconds)), "--rate", "200", "--nonblocking", "--threads"]
    options += ["--full-filenames", "--format", "raw"]
    subprocess.run(
        [spy, "record", "--pid", str(pid), *options, "--output", str(out)],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )
    return out


def stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Stack (outermost first, after the thread) -> samples; threads other than the event
    loop's (the default executor's) are kept, under their own thread frame."""
    found: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            found[tuple(stack.split(";"))] += int(count)
    return found


def where(frame: str) -> tuple[str, str]:
    """(``function (file.py)``, package) of one py-spy frame."""
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    file = match["file"]
    short = f"{match['function']} ({Path(file).name}:{match['line']})"
    if "site-packages/" in file:
        return short, file.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for ours in ("metrics_adapter", "scalers"):
        if f"/{ours}/" in file:
            return short, ours
    parent = Path(file).parent
    module = parent.name if not parent.name.startswith("python3") else Path(file).stem
    return short, f"stdlib {module}"


def report(title: str, path: Path, top: int) -> None:
    samples = stacks(path)
    total = sum(samples.values())
    if not total:
        note(f"profile: {title}: no busy samples")
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for stack, count in samples.items():
        leaf, package = where(stack[-1])
        own[leaf] += count
        packages[package] += count
        # Inclusive time for libraries and our code only: the event loop and runpy frames
        # under everything say nothing.
        for frame in {f for f, p in map(where, stack) if not p.startswith(("stdlib", "?"))}:
            inclusive[frame] += count
    pct = 100 / total
    print_table(
        f"{title}: self time by package ({total:,} busy samples)",
        ("package", "% self"),
        [[p, round(n * pct, 1)] for p, n in packages.most_common(top)],
    )
    print_table(
        f"{title}: top frames by self time",
        ("frame", "% self"),
        [[f, round(n * pct, 1)] for f, n in own.most_common(top)],
    )
    print_table(
        f"{title}: top library and adapter frames by inclusive time",
        ("frame", "% incl."),
        [[f, round(n * pct, 1)] for f, n in inclusive.most_common(top)],
    )


def api(bench: Bench, count: int, seconds: float, top: int) -> None:
    docs = (scaled_object(f"so-{i}", NAMESPACE, CRON) for i in range(count))
    script = bench.work / "load.lua"
    script.write_text(LUA.format(objects=count, path=PATH))
    with bench.adapter("api", docs) as adapter:
        bench.wait_value(metric_url(adapter.url, NAMESPACE, METRIC, f"so-{count - 1}"))
        load = subprocess.Popen(
            ["wrk", "-t1", "-c8", f"-d{int(seconds) + 4}s", "-s", str(script), adapter.url],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            out = record(adapter.pid, seconds, bench.work / "api.txt")
        finally:
            load.wait(timeout=seconds + 30)
    report(f"API under wrk -c8, {count:,} objects", out, top)


def polling(bench: Bench, count: int, seconds: float, top: int) -> None:
    with ValueServer() as source:
        docs = footprint.objects(count, source.url, own=True, interval=30)
        # Attached as soon as the process runs (1 s), to see the first polls of every loop.
        with bench.adapter("polling", docs, timeout=1, require_ready=False) as adapter:
            burst = record(adapter.pid, seconds, bench.work / "burst.txt")
            first = metric_url(adapter.url, footprint.NAMESPACE, footprint.METRIC, "so-0")
            footprint.valued(bench, first, 60)
            time.sleep(10)
            steady = record(adapter.pid, seconds, bench.work / "steady.txt")
    report(
        f"Polling, {count:,} metrics-api objects (own URL each), first {seconds:g}s after start",
        burst,
        top,
    )
    report(f"Polling, {count:,} metrics-api objects, steady state (interval 30s)", steady, top)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit(f"bench.profile needs wrk: {WRK_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        bench = Bench(Path(tmp))
        api(bench, args.objects, args.seconds, args.top)
        polling(bench, args.objects, args.seconds, args.top)
    return []


if __name__ == "__main__":
    main(run)
