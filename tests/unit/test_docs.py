"""The docs say only what exists: every relative link resolves (anchors included), every flag
written after ``metrics-adapter <command>`` is one of that command's, and every series
docs/operations.md names is one /metrics exports, with the labels it documents, and the
migration guide has a row for every trigger type the registry holds."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from metrics_adapter.cli import _parser
from metrics_adapter.config.flags import flag_table
from metrics_adapter.metrics.scaler_series import ScalerSeries
from metrics_adapter.metrics.telemetry import PollAges, Telemetry
from scalers.registry import KINDS, RESOURCE_KINDS

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPERATIONS = REPO / "docs" / "operations.md"

FLAG_TABLE = re.compile(r"<!-- BEGIN serve flags\b.*?-->\n(.*?)<!-- END serve flags -->", re.S)
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"metrics-adapter(?::\S+)?\s+(serve|explain|triggers|version)\b(.*)")
YAML_ARG = re.compile(r"^\s*-\s+(--[a-z][a-z0-9-]*)")
SERIES = re.compile(
    r"\b(?:keda|apiserver|metrics_adapter|rest_client|leader_election)_[a-z0-9_]*[a-z0-9]"
)
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_sum", "_count", "_created"),
}


def split(text: str) -> tuple[list[str], list[list[str]]]:
    """Prose lines (fenced code blanked out, so line numbers hold) and the fenced blocks."""
    prose: list[str] = []
    blocks: list[list[str]] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed (word
    characters, spaces and hyphens kept), each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in split(page.read_text())[0]:
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(split(page.read_text())[0], 1):
        line = CODE_SPAN.sub("", line)
        for match in LINK.finditer(line):
            yield number, match.group(1)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file_and_anchor(page: Path) -> None:
    broken: list[str] = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, "\n".join(broken)


def subcommands() -> dict[str, set[str]]:
    """Each metrics-adapter subcommand's option strings (``--no-leader-elect`` included)."""
    [action] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    choices: dict[str, argparse.ArgumentParser] = action.choices
    return {
        name: {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
        for name, sub in choices.items()
    }


def commands(block: list[str]) -> Iterator[str]:
    """Shell commands of a code block, continuation lines joined, comments dropped."""
    pending = ""
    for line in block:
        line = re.sub(r"(^|\s)#.*$", "", line)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def flag_uses(page: Path) -> Iterator[tuple[str, str, str]]:
    """(subcommand, flag, where) for each flag the page writes in a metrics-adapter context:
    after ``metrics-adapter <command>`` in code, in a code span that starts with ``serve ``
    or ``explain ``, as a container argument (``- --flag``) in a code block, or as a code
    span of its own (``--flag``), which must then belong to some subcommand."""
    prose, blocks = split(page.read_text())
    name = str(page.relative_to(REPO))
    for block in blocks:
        for command in commands(block):
            for match in COMMAND.finditer(command):
                for flag in FLAG.findall(match.group(2).split("|")[0]):
                    yield match.group(1), flag, f"{name}: {command.strip()}"
        for line in block:
            if arg := YAML_ARG.match(line):
                yield "serve", arg.group(1), f"{name}: {line.strip()}"
    for line in prose:
        for span in (m.group(2).strip() for m in CODE_SPAN.finditer(line)):
            if used := COMMAND.search(span):
                for flag in FLAG.findall(used.group(2)):
                    yield used.group(1), flag, f"{name}: `{span}`"
            elif (sub := span.split(" ", 1)[0]) in ("serve", "explain"):
                for flag in FLAG.findall(span):
                    yield sub, flag, f"{name}: `{span}`"
            elif span.startswith("--"):
                yield "*", FLAG.findall(span)[0], f"{name}: `{span}`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_flag_written_is_a_flag_of_its_command(page: Path) -> None:
    flags = subcommands()
    anywhere = set().union(*flags.values())
    unknown = [
        f"{where}: {flag} is not a flag of "
        + ("any metrics-adapter command" if sub == "*" else f"metrics-adapter {sub}")
        for sub, flag, where in flag_uses(page)
        if flag not in (anywhere if sub == "*" else flags[sub])
    ]
    assert not unknown, "\n".join(unknown)


def test_flag_uses_finds_serve_flags_in_every_form() -> None:
    """The scan itself: a test that finds nothing would pass on any typo."""
    found = {(sub, flag) for page in PAGES for sub, flag, _ in flag_uses(page)}
    assert ("serve", "--scaledobjects") in found  # after metrics-adapter serve
    assert ("serve", "--scaler-timeout") in found  # a container argument
    assert ("*", "--no-leader-elect") in found  # a code span of its own
    assert ("explain", "--namespace") in found


def test_the_flag_table_is_the_one_the_settings_make() -> None:
    """docs/operations.md's table of serve's flags is flag_table(), made from the Settings'
    declarations as serve's flags are: a new setting is a new row."""
    [written] = FLAG_TABLE.findall(OPERATIONS.read_text())
    expected = flag_table().strip("\n")
    assert written.strip("\n") == expected, (
        "docs/operations.md: the serve flags differ from the settings; between its "
        f"BEGIN/END serve flags markers it should read:\n\n{expected}\n"
    )


def test_the_flag_table_has_a_row_for_every_serve_flag() -> None:
    """The table's flags are serve's: the generator dropped none and invented none."""
    [written] = FLAG_TABLE.findall(OPERATIONS.read_text())
    rows = {
        flag
        for line in written.splitlines()
        if line.startswith("| `")
        for flag in FLAG.findall(line.split("|")[1])
    }
    assert rows == subcommands()["serve"] - {"--help"}


def exported() -> dict[str, frozenset[str]]:
    """Every sample name /metrics can show, with its labels (a histogram's ``le`` aside)."""
    registry = Telemetry().registry
    series: dict[str, frozenset[str]] = {}
    for collector in registry._collector_to_names:
        # The client library's series, and those made at scrape time (the poll ages, and
        # the per-trigger series).
        assert isinstance(collector, MetricWrapperBase | PollAges | ScalerSeries)
        for family in collector.describe():
            labels = frozenset(collector._labelnames)
            for suffix in SAMPLE_SUFFIXES[family.type]:
                series[family.name + suffix] = labels
    return series


def test_every_series_named_in_operations_is_exported() -> None:
    series = exported()
    text = OPERATIONS.read_text()
    named = set(SERIES.findall(text))
    assert "keda_scaler_metrics_value" in named  # the scan found the table
    assert named - series.keys() == set(), "series in docs/operations.md that are not exported"


def test_every_exported_series_is_documented_with_its_labels() -> None:
    """The table of docs/operations.md: one row per family, the labels /metrics shows."""
    series = exported()
    rows: dict[str, frozenset[str]] = {}
    for line in split(OPERATIONS.read_text())[0]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 4 or not SERIES.fullmatch(cells[0][1:-1]):
            continue
        rows[cells[0][1:-1]] = frozenset(re.findall(r"`([A-Za-z_]+)`", cells[2]))
    families = {
        family.name + SAMPLE_SUFFIXES[family.type][0] for family in Telemetry().registry.collect()
    }
    assert families - rows.keys() == set(), "exported series missing from docs/operations.md"
    wrong = {name: labels for name, labels in rows.items() if series.get(name) != labels}
    assert not wrong, f"labels that differ from /metrics: {wrong}"


MIGRATING = REPO / "docs" / "migrating-from-keda.md"
TRIGGER_ROW = re.compile(r"^\| ((?:`[a-z0-9-]+`(?:, )?)+) \|", re.M)


def test_the_migration_guide_has_a_row_for_every_trigger_type() -> None:
    """A KEDA user reads there whether their triggers switch; the registry is the truth."""
    section = MIGRATING.read_text().split("### Trigger types", 1)[1].split("\n### ", 1)[0]
    listed = {name for row in TRIGGER_ROW.findall(section) for name in re.findall(r"`(.+?)`", row)}
    assert listed >= {*KINDS, *RESOURCE_KINDS}, sorted({*KINDS, *RESOURCE_KINDS} - listed)
    assert not listed - {*KINDS, *RESOURCE_KINDS}, sorted(listed - {*KINDS, *RESOURCE_KINDS})
