"""Generates the gRPC stubs of KEDA's external scaler protocol whenever the package is built.

Everything else about the package is in ``pyproject.toml``; this file only hooks
``build_py``, which both ``pip install -e .`` (setuptools' editable wheel) and
``pip wheel .`` run, so the stubs are made from ``scalers/protos/*.proto`` by the
``grpcio-tools`` of ``[build-system].requires`` and never committed or edited by hand.
They are written beside the ``.proto``: an editable install imports from the source tree.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTOS = Path("scalers", "protos")


def generate_protos() -> None:
    """``protoc`` each ``.proto`` into ``_pb2.py``, ``_pb2_grpc.py`` and ``_pb2.pyi``, with
    the repository as the include root so the stubs import each other as ``scalers.protos``."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    for proto in sorted((ROOT / PROTOS).glob("*.proto")):
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{well_known}",
            f"--python_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            f"--pyi_out={ROOT}",
            str(proto.relative_to(ROOT)),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {proto}")


class BuildPyWithProtos(build_py):
    """``build_py`` that generates the stubs first, so its module list includes them."""

    def run(self) -> None:
        generate_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
