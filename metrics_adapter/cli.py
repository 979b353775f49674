"""The ``metrics-adapter`` command: ``serve``, ``triggers``, ``explain``, ``version``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metrics_adapter import __version__
from metrics_adapter.config.flags import add_flags, settings_from_arguments
from metrics_adapter.config.settings import Settings
from metrics_adapter.errors import StartupError
from metrics_adapter.metrics.telemetry import configure_logging
from scalers import resource
from scalers.errors import ConfigError
from scalers.params import declared_params, type_name
from scalers.registry import KINDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrics-adapter",
        description="KEDA-compatible external metrics server and scale-to-zero activator.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve external.metrics.k8s.io")
    add_flags(serve)

    triggers = commands.add_parser("triggers", help="list trigger types and their parameters")
    triggers.add_argument("-o", "--output", choices=["text", "json", "markdown"], default="text")

    explain = commands.add_parser(
        "explain",
        help="each trigger's value, target, activity and the replicas it asks for",
        description="For each ScaledObject: every trigger's metric, value, target and "
        "activation, the replicas the HPA would compute (the formula in numbers) and what the "
        "activator would do. For each ScaledJob: every trigger's value and target, the "
        "combined queue, the running and pending Jobs, the strategy and the Jobs KEDA would "
        "create (the formula in numbers). PATH: a standalone directory, its sources polled "
        "from here (no Jobs are counted). --namespace: the objects of a cluster namespace, "
        "each ScaledObject value read as the HPA reads it (through external.metrics.k8s.io), "
        "with the target's /scale and the HPA's status; ScaledJob values polled from here, "
        "their Jobs and Pods listed.",
        epilog="Exit status: 0 when every object is ready; 1 when any is not (each such "
        "object's problem is printed); 2 when the objects cannot be read at all.",
    )
    where = explain.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "path", type=Path, nargs="?", metavar="PATH", help="a --scaledobjects directory"
    )
    where.add_argument(
        "-n", "--namespace", metavar="NS", help="the ScaledObjects and ScaledJobs of a cluster"
    )
    explain.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="with --namespace (default $KUBECONFIG, else ~/.kube/config)",
    )
    explain.add_argument(
        "--poll",
        action="store_true",
        help="with --namespace: poll the sources from here, not through the cluster's adapter",
    )
    explain.add_argument("-o", "--output", choices=["text", "json"], default="text")
    add_flags(explain, ("cluster_object_namespace", "scaler_timeout"))

    commands.add_parser("version", help="print the version")
    return parser


def _parameters(metadata: type[Any]) -> list[dict[str, Any]]:
    """The trigger's own parameters first, then those it shares (authentication, AWS
    identity), each group in declaration order."""
    hints = typing.get_type_hints(metadata)

    def declared_by(name: str) -> int:
        owners = (
            i for i, c in enumerate(metadata.__mro__) if name in vars(c).get("__annotations__", {})
        )
        return next(owners, len(metadata.__mro__))

    params = sorted(declared_params(metadata), key=lambda item: declared_by(item[0].name))
    return [
        {
            "name": spec.name,
            "aliases": list(spec.aliases),
            "type": type_name(hints[f.name]),
            "sources": [s.value for s in spec.order],
            "default": spec.default,
            "required": spec.required,
            "enum": list(spec.enum),
            "doc": spec.doc,
        }
        for f, spec in params
    ]


def trigger_reference() -> list[dict[str, Any]]:
    """Every trigger type with its parameters: the source of the generated docs."""
    kinds: list[dict[str, Any]] = []
    for kind in KINDS.values():
        params = _parameters(kind.metadata)
        example = {"metadata": dict(kind.example.metadata), "authParams": dict(kind.example.auth)}
        kinds.append(
            {
                "type": kind.type_name,
                "summary": kind.summary,
                "parameters": params,
                "example": example,
                **({"guide": kind.guide} if kind.guide else {}),
            }
        )
    for name in resource.RESOURCE_TYPES:
        kinds.append(
            {
                "type": name,
                "summary": f"{name} usage, read by the HPA itself as a Resource metric (trigger "
                "metricType Utilization or AverageValue); nothing is polled.",
                "parameters": _parameters(resource.Metadata),
            }
        )
    return sorted(kinds, key=lambda k: str(k["type"]))


def trigger_markdown() -> str:
    """docs/triggers.md, generated so that the reference never drifts from the code."""
    lines = [
        "# Trigger reference",
        "",
        "Generated by `metrics-adapter triggers -o markdown`; do not edit by hand.",
        "Sources are searched in the order given: `triggerMetadata` is the trigger's",
        "`metadata`, `resolvedEnv` is `<name>FromEnv` naming a variable of the scale",
        "target's container, `authParams` comes from the trigger's authenticationRef.",
        "cpu and memory triggers are passed to the HPA as Resource metrics.",
    ]
    for kind in trigger_reference():
        lines += [
            "",
            f"## `{kind['type']}`",
            "",
            kind["summary"],
            "",
            "| parameter | type | default | sources | notes |",
            "|---|---|---|---|---|",
        ]
        for p in kind["parameters"]:
            default = (
                "**required**"
                if p["required"]
                else (f"`{p['default']}`" if p["default"] is not None else "")
            )
            notes = "; ".join(
                n
                for n in (
                    f"also {', '.join(f'`{a}`' for a in p['aliases'])}" if p["aliases"] else "",
                    f"one of {', '.join(f'`{e}`' for e in p['enum'])}" if p["enum"] else "",
                    p["doc"],
                )
                if n
            )
            lines.append(
                f"| `{p['name']}` | {p['type']} | {default} | {', '.join(p['sources'])} | {notes} |"
            )
        if "example" in kind:
            lines += ["", *_example_markdown(kind["type"], kind["example"])]
        if "guide" in kind:
            lines += ["", kind["guide"].strip()]
    return "\n".join(lines) + "\n"


def _example_markdown(type_name: str, example: dict[str, dict[str, str]]) -> list[str]:
    """The type's declared example: the trigger, and what its authentication provides."""
    import yaml

    trigger: dict[str, Any] = {"type": type_name, "metadata": example["metadata"]}
    auth = example["authParams"]
    if auth:
        trigger["authenticationRef"] = {"name": f"{type_name}-auth"}
    lines = ["Example trigger" + (", and the authParams of its authentication:" if auth else ":")]
    for block in [trigger, auth] if auth else [trigger]:
        lines += ["", "```yaml", *yaml.safe_dump(block, sort_keys=False).splitlines(), "```"]
    return lines


def _print_triggers(output: str) -> None:
    reference = trigger_reference()
    if output == "json":
        print(json.dumps(reference, indent=2))
        return
    if output == "markdown":
        print(trigger_markdown(), end="")
        return
    for kind in reference:
        print(f"{kind['type']}: {kind['summary']}")
        for p in kind["parameters"]:
            default = (
                "required"
                if p["required"]
                else (f"default {p['default']}" if p["default"] is not None else "optional")
            )
            allowed = f" one of {'|'.join(p['enum'])}" if p["enum"] else ""
            sources = ", ".join(p["sources"])
            also = f" (also {', '.join(p['aliases'])})" if p["aliases"] else ""
            print(f"  {p['name']:<30} {p['type']:<8} {default:<18} from {sources}{allowed}{also}")
        print()


NOT_READY = 1
"""explain's exit status when an object is not ready: a script or CI step can gate on it."""


def _explain(args: argparse.Namespace) -> int:
    from metrics_adapter.errors import KubeError
    from metrics_adapter.explain.cluster import explain_namespace
    from metrics_adapter.explain.local import as_dicts, explain, render

    if args.namespace is None and (args.kubeconfig or args.poll):
        print("metrics-adapter explain: --kubeconfig and --poll need --namespace", file=sys.stderr)
        return 2
    configure_logging("error", "text")
    warnings: list[str] = []
    try:
        if args.namespace is None:
            reports = asyncio.run(
                explain(args.path, args.scaler_timeout, args.cluster_object_namespace)
            )
        else:
            reports, warnings = asyncio.run(
                explain_namespace(
                    args.namespace,
                    args.kubeconfig,
                    cluster_object_namespace=args.cluster_object_namespace,
                    poll_sources=args.poll,
                    scaler_timeout=args.scaler_timeout,
                )
            )
    except (ConfigError, KubeError) as exc:
        print(f"metrics-adapter explain: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"metrics-adapter explain: warning: {warning}", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(as_dicts(reports), indent=2))
    elif not reports:
        print(f"no ScaledObjects or ScaledJobs in {args.path or f'namespace {args.namespace}'}")
    else:
        print(render(reports))
    return NOT_READY if any(r.problem is not None for r in reports) else 0


def settings_from(serve_args: Sequence[str]) -> Settings:
    """The Settings ``metrics-adapter <serve_args>`` runs with (``serve`` first)."""
    return settings_from_arguments(_parser().parse_args(serve_args))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"metrics-adapter {__version__}")
        return 0
    if args.command == "triggers":
        _print_triggers(args.output)
        return 0
    if args.command == "explain":
        return _explain(args)
    try:
        settings = settings_from_arguments(args)
    except ValueError as exc:
        print(f"metrics-adapter serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from metrics_adapter.server import serve

    try:
        asyncio.run(serve(settings))
    except (ConfigError, StartupError) as exc:
        print(f"metrics-adapter serve: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
