"""Imports only go downstream (STYLE.md §Layout): the layout stays walkable as the code grows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("producers", "stream_processors", "sinks", "readers", "smart_classroom_agents", "loadtests")
# What each package may import of the project (besides itself).
ALLOWED: dict[str, set[str]] = {
    "classtrace": set(),
    "producers": {"classtrace"},
    "stream_processors": {"classtrace"},
    "sinks": {"classtrace"},
    "readers": {"classtrace"},
    "smart_classroom_agents": {"classtrace", "producers"},
    "loadtests": {"classtrace", "producers", "smart_classroom_agents"},
}
# One connection seam per external system.
SEAMS = {"confluent_kafka": "classtrace/kafka.py", "clickhouse_connect": "classtrace/clickhouse.py"}


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if not p.name.endswith("_pb2.py")]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_downstream(package):
    wrong = []
    for path in _modules(package):
        rel = path.relative_to(ROOT)
        if package == "classtrace" and rel.parts[1] == "cli":
            continue  # the CLI wires stages together: it is the one place allowed to
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ALLOWED and top != package and top not in ALLOWED[package]:
                wrong.append(f"{rel} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("library", sorted(SEAMS))
def test_one_module_per_external_system(library):
    importers = []
    for package in ALLOWED:
        for path in _modules(package):
            if any(n.split(".")[0] == library for n in _imports(path)):
                importers.append(str(path.relative_to(ROOT)))
    assert set(importers) <= {SEAMS[library]}, importers
