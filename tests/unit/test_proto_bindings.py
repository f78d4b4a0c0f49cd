"""The committed bindings in classtrace/v1 are what proto/ generates, and load on this runtime."""

from __future__ import annotations

import re
import subprocess
import sys

import google.protobuf
import pytest

from classtrace import protogen

GENERATED = sorted(
    f"classtrace/v1/{p.stem}_pb2{suffix}" for p in protogen.proto_files() for suffix in (".py", ".pyi")
)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("protogen")
    protogen.generate(out)
    return out


def test_every_proto_file_has_bindings():
    assert "classtrace/v1/events_pb2.py" in GENERATED
    assert "classtrace/v1/pipeline_pb2.pyi" in GENERATED


@pytest.mark.parametrize("relpath", GENERATED)
def test_committed_bindings_are_not_stale(regenerated, relpath):
    fresh = (regenerated / relpath).read_bytes()
    committed = (protogen.ROOT / relpath).read_bytes()
    assert committed == fresh, f"{relpath} is stale: run `make proto` (python -m classtrace.protogen)"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_gencode_is_not_newer_than_the_runtime():
    """protobuf refuses gencode newer than its runtime, or of another major version."""
    source = (protogen.ROOT / "classtrace/v1/events_pb2.py").read_text()
    match = re.search(r"# Protobuf Python Version: (\S+)", source)
    assert match is not None
    gencode, runtime = _version(match.group(1)), _version(google.protobuf.__version__)
    assert gencode[0] == runtime[0] and gencode <= runtime, (gencode, runtime)


def test_bindings_import_in_a_fresh_interpreter():
    """A fresh process, warnings as errors: runtime_version checks run at import."""
    code = (
        "from classtrace.v1 import events_pb2, pipeline_pb2; "
        "assert events_pb2.Event.DESCRIPTOR.full_name == 'classtrace.v1.Event'; "
        "assert pipeline_pb2.DeadLetter.DESCRIPTOR.file.package == 'classtrace.v1'"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=protogen.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
