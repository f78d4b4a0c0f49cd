"""Regenerates the Python bindings of proto/ into classtrace/v1 (``make proto``).

The generated ``*_pb2.py`` and ``*_pb2.pyi`` are committed so that installing classtrace needs no
protoc; ``tests/unit/test_proto_bindings.py`` regenerates them into a temporary directory and fails
when the committed ones differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    """Every .proto file of the schema, in a stable order."""
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run grpcio-tools' protoc (with mypy-protobuf stubs) over proto/ into ``out_dir``."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - install hint, not a traceback
        raise SystemExit("grpcio-tools is missing: pip install -e '.[dev]'") from exc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def main() -> None:
    generate(ROOT)
    print(f"generated bindings for {len(proto_files())} proto files into {ROOT / 'classtrace' / 'v1'}")


if __name__ == "__main__":
    main()
    sys.exit(0)
