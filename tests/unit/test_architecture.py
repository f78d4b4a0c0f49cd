"""Imports only go downstream (docs/LAYOUT.md): the layout stays walkable as the code grows.

The core imports no role; where it needs one (the CLI's subcommands, ``classtrace up``'s in-process
parts, the dashboard routes in the gateway) it loads an entry point of ``pyproject.toml`` by name,
and the tests below check that every one of them resolves.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest

from classtrace import plugins
from classtrace.cli import SUBCOMMANDS, build_parser

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
    # loadtests also runs the worker's own Processor: the uninterrupted control replay of a fault
    # run (loadtests/control.py) must be the same code, not a second copy of the formulas.
    "loadtests": {"classtrace", "producers", "smart_classroom_agents", "stream_processors"},
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


def _declared_groups() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups: dict[str, dict[str, str]] = project["entry-points"]
    return groups


def test_the_core_reaches_roles_only_through_its_entry_point_groups():
    assert set(_declared_groups()) == {plugins.COMMANDS, plugins.GATEWAY_ROUTES, plugins.EMBEDDED}
    groups = _declared_groups()
    assert list(groups[plugins.COMMANDS]) == list(SUBCOMMANDS), "pyproject lists them in --help order"
    assert set(groups[plugins.EMBEDDED]) == {hook.name for hook in plugins.EMBEDDED_HOOKS}
    assert set(groups[plugins.GATEWAY_ROUTES]) == {"dashboard"}  # producers/cli/gateway.py loads it


@pytest.mark.parametrize("group", sorted(_declared_groups()))
def test_every_entry_point_is_installed_and_resolves(group):
    declared = _declared_groups()[group]
    installed = {ep.name: ep for ep in entry_points(group=group)}
    # the installed metadata is pyproject's (else: `pip install -e .` again)
    assert {name: ep.value for name, ep in installed.items()} == declared
    for name, value in declared.items():
        target = installed[name].load()
        top = value.split(".")[0]
        assert top in ALLOWED, f"{group} {name} = {value}: not a package of the layout"
        if group == plugins.COMMANDS:
            assert isinstance(target, ModuleType) and callable(target.register), (name, value)
            assert Path(target.__file__ or "").parent.name == "cli", f"{value}: one cli/ module per command"
        else:
            assert callable(target), (group, name, value)


def test_help_lists_every_subcommand():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert list(sub.choices) == list(SUBCOMMANDS)  # type: ignore[arg-type]
    out = subprocess.run(
        [sys.executable, "-m", "classtrace.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    listed = [m.group(1) for m in re.finditer(r"^ {4}(\w+)\b", out, re.MULTILINE)]
    assert listed == list(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        help_out = subprocess.run(
            [sys.executable, "-m", "classtrace.cli", name, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert help_out.returncode == 0 and f"classtrace {name}" in help_out.stdout, name


def test_a_subcommand_without_an_entry_point_is_left_out(monkeypatch):
    import classtrace.cli

    real = plugins.declared(plugins.COMMANDS)
    monkeypatch.setattr(classtrace.cli, "declared", lambda group: {"query": real["query"]})
    (sub,) = [a for a in classtrace.cli.build_parser()._actions if a.dest == "command"]
    assert list(sub.choices) == ["query"]  # type: ignore[arg-type]
    with pytest.raises(plugins.PluginMissing, match="no entry point 'nope'"):
        plugins.load(plugins.EMBEDDED, "nope")
