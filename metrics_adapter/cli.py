"""The ``metrics-adapter`` command: ``serve``, ``triggers``, ``explain``, ``version``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metrics_adapter import __version__
from metrics_adapter.config.settings import DEFAULT_CERT_DIR, Settings
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
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--scaledobjects",
        type=Path,
        metavar="DIR",
        help="standalone: ScaledObjects, authentications and Secrets from YAML",
    )
    source.add_argument("--kubeconfig", type=Path, help="run against the cluster of a kubeconfig")
    source.add_argument("--in-cluster", action="store_true", help="run inside a pod")
    serve.add_argument("--bind-address", help="default 127.0.0.1 standalone, else 0.0.0.0")
    serve.add_argument("--secure-port", type=int, default=6443)
    serve.add_argument("--tls-cert-file", type=Path)
    serve.add_argument("--tls-private-key-file", type=Path)
    serve.add_argument(
        "--cert-dir",
        type=Path,
        default=DEFAULT_CERT_DIR,
        help="where a self-signed pair is generated without --tls-* files",
    )
    serve.add_argument(
        "--cert-secret",
        metavar="NAME",
        help="self-managed certificates: keep a CA and serving pair in this Secret",
    )
    serve.add_argument("--service", default="metrics-adapter", help="our Service's name")
    serve.add_argument(
        "--apiservice",
        default="v1beta1.external.metrics.k8s.io",
        help="with --cert-secret: the APIService whose caBundle gets our CA ('' for none)",
    )
    serve.add_argument("--cert-reload-interval", type=float, default=10.0, metavar="SECONDS")
    serve.add_argument("--client-ca-file", type=Path, help="authenticate client certificates")
    serve.add_argument(
        "--requestheader-client-ca-file",
        type=Path,
        help="the front proxy's CA, allowed to assert X-Remote-User",
    )
    serve.add_argument(
        "--requestheader-allowed-names",
        type=_names,
        default=(),
        metavar="CN,...",
        help="common names the front proxy's certificate may have (default any)",
    )
    serve.add_argument(
        "--authentication-kubeconfig",
        type=Path,
        help="standalone: the cluster that reviews tokens and access",
    )
    serve.add_argument("--authorization-allow-ttl", type=float, default=300.0, metavar="SECONDS")
    serve.add_argument("--authorization-deny-ttl", type=float, default=30.0, metavar="SECONDS")
    serve.add_argument("--token-cache-ttl", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument("--metrics-port", type=int, default=8080, help="plain HTTP /metrics")
    serve.add_argument("--scaler-timeout", type=float, default=3.0, metavar="SECONDS")
    serve.add_argument("--cluster-object-namespace", default="keda")
    serve.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cluster mode: only the Lease holder writes (default on)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"])

    triggers = commands.add_parser("triggers", help="list trigger types and their parameters")
    triggers.add_argument("-o", "--output", choices=["text", "json", "markdown"], default="text")

    explain = commands.add_parser(
        "explain",
        help="each trigger's value, target, activity and the replicas it asks for",
        description="For each ScaledObject: every trigger's metric, value, target and "
        "activation, the replicas the HPA would compute (the formula in numbers) and what the "
        "activator would do. PATH: a standalone directory, its sources polled from here. "
        "--namespace: the objects of a cluster namespace, each value read as the HPA reads it "
        "(through external.metrics.k8s.io), with the target's /scale and the HPA's status.",
    )
    where = explain.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "path", type=Path, nargs="?", metavar="PATH", help="a --scaledobjects directory"
    )
    where.add_argument("-n", "--namespace", metavar="NS", help="the ScaledObjects of a cluster")
    explain.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help="with --namespace (default $KUBECONFIG, else ~/.kube/config)",
    )
    explain.add_argument(
        "--cluster-object-namespace",
        default="keda",
        metavar="NS",
        help="where ClusterTriggerAuthentication refs resolve",
    )
    explain.add_argument(
        "--poll",
        action="store_true",
        help="with --namespace: poll the sources from here, not through the cluster's adapter",
    )
    explain.add_argument("-o", "--output", choices=["text", "json"], default="text")
    explain.add_argument("--scaler-timeout", type=float, default=3.0, metavar="SECONDS")

    commands.add_parser("version", help="print the version")
    return parser


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _parameters(metadata: type[Any]) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(metadata)
    return [
        {
            "name": spec.name,
            "type": type_name(hints[f.name]),
            "sources": [s.value for s in spec.order],
            "default": spec.default,
            "required": spec.required,
            "enum": list(spec.enum),
            "doc": spec.doc,
        }
        for f, spec in declared_params(metadata)
    ]


def trigger_reference() -> list[dict[str, Any]]:
    """Every trigger type with its parameters: the source of the generated docs."""
    kinds: list[dict[str, Any]] = []
    for kind in KINDS.values():
        params = _parameters(kind.metadata)
        kinds.append({"type": kind.type_name, "summary": kind.summary, "parameters": params})
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
                    f"one of {', '.join(f'`{e}`' for e in p['enum'])}" if p["enum"] else "",
                    p["doc"],
                )
                if n
            )
            lines.append(
                f"| `{p['name']}` | {p['type']} | {default} | {', '.join(p['sources'])} | {notes} |"
            )
    return "\n".join(lines) + "\n"


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
            print(f"  {p['name']:<30} {p['type']:<8} {default:<18} from {sources}{allowed}")
        print()


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
        print(f"no ScaledObjects in {args.path or f'namespace {args.namespace}'}")
    else:
        print(render(reports))
    return 0


def settings_from(serve_args: Sequence[str]) -> Settings:
    """The Settings ``metrics-adapter <serve_args>`` runs with (``serve`` first)."""
    return _settings(_parser().parse_args(serve_args))


def _settings(args: argparse.Namespace) -> Settings:
    # Every serve flag is named after its Settings field.
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})


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
    configure_logging(args.log_level, args.log_format)
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        print(
            "metrics-adapter serve: --tls-cert-file and --tls-private-key-file go together",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    from metrics_adapter.server import serve

    try:
        asyncio.run(serve(settings))
    except (ConfigError, StartupError) as exc:
        print(f"metrics-adapter serve: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
