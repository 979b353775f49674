"""Command-line flags made from the Settings' fields: ``serve``'s flags with their ``--help``,
and the flag table of docs/operations.md, so that neither can drift from the settings.

A field's type decides its flag: a ``bool`` is a switch (``--no-...`` too when it defaults to
on), a ``Literal`` a choice, a ``tuple[str, ...]`` a comma-separated list, ``Path``, ``int`` and
``float`` are converted, anything else is taken as text.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from metrics_adapter.config.settings import GROUPS, Group, Settings, described, option

_METAVARS: dict[object, str] = {Path: "FILE", float: "SECONDS", int: "N", str: "NAME"}
_CODE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*|\bKEDA_[A-Z_]+\b")
"""Flags and environment variables, written as code in the docs."""


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


_CONVERTERS: dict[object, Callable[[str], Any]] = {
    Path: Path,
    int: int,
    float: float,
    tuple[str, ...]: _names,
}
"""How a flag's text becomes its field's type; ``str`` stays text."""


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _kind(hint: Any) -> Any:
    """The type a value is parsed as: ``X | None`` is ``X``."""
    if isinstance(hint, types.UnionType):
        [kind] = [a for a in typing.get_args(hint) if a is not type(None)]
        return kind
    return hint


def _fields(only: Iterable[str] | None) -> list[dataclasses.Field[Any]]:
    every = {f.name: f for f in dataclasses.fields(Settings)}
    return list(every.values()) if only is None else [every[name] for name in only]


def _shown_default(f: dataclasses.Field[Any]) -> str | None:
    """The default as ``--help`` and the docs say it; ``None`` when there is nothing to say."""
    meta = described(f)
    if meta.default_text is not None:
        return meta.default_text
    value = f.default
    if isinstance(value, bool):
        return "on" if value else None
    if value is None or value == ():
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(kind: Any) -> tuple[str, ...]:
    return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()


def _metavar(f: dataclasses.Field[Any], kind: Any) -> str | None:
    """The value's placeholder; none for a switch or a choice (argparse lists the choices)."""
    if kind is bool or _choices(kind):
        return None
    return described(f).metavar or _METAVARS[kind]


def _switches(f: dataclasses.Field[Any]) -> list[str]:
    flag = option(f.name)
    return [flag, f"--no-{flag[2:]}"] if f.default is True else [flag]


def _arguments(f: dataclasses.Field[Any], kind: Any) -> dict[str, Any]:
    meta = described(f)
    shown = _shown_default(f)
    text = f"{meta.help} (default: {shown})" if shown else meta.help
    arguments: dict[str, Any] = {"dest": f.name, "help": text.replace("%", "%%")}
    if kind is bool:
        on = f.default is True
        arguments["action"] = argparse.BooleanOptionalAction if on else "store_true"
    elif choices := _choices(kind):
        arguments["choices"] = choices
    else:
        if convert := _CONVERTERS.get(kind):
            arguments["type"] = convert
        arguments["metavar"] = _metavar(f, kind)
        if kind == tuple[str, ...]:
            arguments["action"] = _Repeated
    return arguments


class _Repeated(argparse.Action):
    """A list flag given more than once: the lists joined (``--x a --x b,c`` is a, b, c)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = f"_{self.dest}_given"
        earlier = getattr(namespace, self.dest) if getattr(namespace, given, False) else ()
        setattr(namespace, self.dest, (*earlier, *values))
        setattr(namespace, given, True)


def add_flags(parser: argparse.ArgumentParser, only: Iterable[str] | None = None) -> None:
    """Add a flag for each Settings field (or for the fields named in ``only``, ungrouped),
    with its help and its default."""
    hints = _hints()
    fields = _fields(only)
    containers: dict[Group, Any] = {}
    for f in fields:
        container: Any = parser
        if only is None:
            group = described(f).group
            if group not in containers:
                section = parser.add_argument_group(group.title, group.description)
                containers[group] = (
                    section.add_mutually_exclusive_group(required=True) if group.one_of else section
                )
            container = containers[group]
        container.add_argument(option(f.name), **_arguments(f, _kind(hints[f.name])))
    # Defaults after the flags: BooleanOptionalAction would add its own "(default: True)" to
    # the help if it were given one, and the help already says it.
    parser.set_defaults(**{f.name: f.default for f in fields})


def settings_from_arguments(arguments: argparse.Namespace) -> Settings:
    """The Settings of parsed flags: every flag is named after its field. Raise ValueError
    for a combination the settings refuse."""
    return Settings(**{f.name: getattr(arguments, f.name) for f in dataclasses.fields(Settings)})


def _grouped() -> Iterator[tuple[Group, list[dataclasses.Field[Any]]]]:
    fields = dataclasses.fields(Settings)
    for group in GROUPS:
        yield group, [f for f in fields if described(f).group is group]


def _cell(text: str) -> str:
    """Prose for a Markdown table cell; flags as code, so that the docs' tests check them."""
    return _CODE.sub(lambda m: f"`{m.group(0)}`", text).replace("|", "\\|")


def flag_table() -> str:
    """The flags of ``metrics-adapter serve`` as Markdown, one table per group: the
    reference in docs/operations.md, which tests/unit/test_docs.py compares with this."""
    hints = _hints()
    lines: list[str] = []
    for group, fields in _grouped():
        lines += [f"**{group.title.capitalize()}**: {group.description}", ""]
        lines += ["| flag | default | meaning |", "|---|---|---|"]
        for f in fields:
            kind = _kind(hints[f.name])
            value = _metavar(f, kind)
            flag = ", ".join(f"`{s} {value}`" if value else f"`{s}`" for s in _switches(f))
            shown = _shown_default(f)
            # A value as code; words (a default_text, a switch's "on") as prose.
            verbatim = shown is not None and described(f).default_text is None and kind is not bool
            default = f"`{shown}`" if verbatim else shown or ""
            text = described(f).help
            if choices := _choices(kind):
                text += "; one of " + ", ".join(f"`{c}`" for c in choices)
            lines.append(f"| {flag} | {default} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)
