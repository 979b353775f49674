"""The ``metrics-adapter`` command: ``serve``, ``triggers``, ``version``."""

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
from metrics_adapter.settings import DEFAULT_CERT_DIR, Settings
from metrics_adapter.telemetry import configure_logging
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
    serve.add_argument("--metrics-port", type=int, default=8080, help="plain HTTP /metrics")
    serve.add_argument("--scaler-timeout", type=float, default=3.0, metavar="SECONDS")
    serve.add_argument("--cluster-object-namespace", default="keda")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"])

    triggers = commands.add_parser("triggers", help="list trigger types and their parameters")
    triggers.add_argument("-o", "--output", choices=["text", "json"], default="text")

    commands.add_parser("version", help="print the version")
    return parser


def trigger_reference() -> list[dict[str, Any]]:
    """Every trigger type with its parameters: the source of the generated docs."""
    kinds = []
    for kind in sorted(KINDS.values(), key=lambda k: k.type_name):
        hints = typing.get_type_hints(kind.metadata)
        params = [
            {
                "name": spec.name,
                "type": type_name(hints[f.name]),
                "sources": [s.value for s in spec.order],
                "default": spec.default,
                "required": spec.required,
                "enum": list(spec.enum),
                "doc": spec.doc,
            }
            for f, spec in declared_params(kind.metadata)
        ]
        kinds.append({"type": kind.type_name, "summary": kind.summary, "parameters": params})
    return kinds


def _print_triggers(output: str) -> None:
    reference = trigger_reference()
    if output == "json":
        print(json.dumps(reference, indent=2))
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"metrics-adapter {__version__}")
        return 0
    if args.command == "triggers":
        _print_triggers(args.output)
        return 0
    configure_logging(args.log_level, args.log_format)
    if args.scaledobjects is None:
        print(
            "metrics-adapter serve: cluster mode (--kubeconfig/--in-cluster) is not "
            "available yet; use --scaledobjects DIR",
            file=sys.stderr,
        )
        return 2
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        print(
            "metrics-adapter serve: --tls-cert-file and --tls-private-key-file go together",
            file=sys.stderr,
        )
        return 2
    # Every serve flag is named after its Settings field.
    settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
    from metrics_adapter.server import serve

    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"metrics-adapter serve: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
