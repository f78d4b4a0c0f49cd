"""Server roles hold no pseudonym key and no region secret (docs/KEYS.md): code, flags, child envs.

Only devices (and the simulator standing in for them) and ``classtrace devices key`` may: a
gateway, worker, sink or dashboard that held one could test guesses of raw student ids.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import ClassVar

import pytest

import classtrace.supervisor
from classtrace.cli import build_parser
from classtrace.cli.stack import DEVICE_SECRETS, EmbeddedStack
from classtrace.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Every module a server process runs of its role: the gateway (and the registry it reads), the
# worker, the sink, the dashboard and reports.
SERVER_CODE = ("producers/gateway", "producers/cli/gateway.py", "producers/registry.py")
SERVER_PACKAGES = ("stream_processors", "sinks", "readers")
KEY_MATERIAL = re.compile(
    r"region_secret|region\.secret|pseudonym_key|pseudonymise|school_pseudonym_key", re.I
)
SERVER_COMMANDS = ("up", "gateway", "worker", "sink", "dashboard")


def _server_modules() -> list[Path]:
    paths: list[Path] = []
    for name in (*SERVER_CODE, *SERVER_PACKAGES):
        path = ROOT / name
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return paths


def test_no_server_module_names_key_material():
    modules = _server_modules()
    assert ROOT / "producers/gateway/app.py" in modules and ROOT / "stream_processors/processor.py" in modules
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if KEY_MATERIAL.search(line)
    ]
    assert not found, "\n".join(found)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found


@pytest.mark.parametrize("command", SERVER_COMMANDS)
def test_server_commands_take_no_region_secret(command):
    assert "--region-secret" not in _options(_subparser(build_parser(), command))


def test_only_device_commands_take_the_region_secret():
    parser = build_parser()
    assert "--region-secret" in _options(_subparser(parser, "simulate"))
    devices = _subparser(parser, "devices")
    assert "--region-secret" in _options(_subparser(devices, "key"))
    assert "--region-secret" not in _options(_subparser(devices, "add"))


class _FakePopen:
    """Stands in for a child process: records the environment it would have started with."""

    started: ClassVar[list[tuple[list[str], dict[str, str]]]] = []
    pid = 0

    def __init__(self, argv, env, **_kw):
        _FakePopen.started.append((argv, env))

    def poll(self):
        return None

    def send_signal(self, _sig):
        pass

    def wait(self, _timeout=None):
        return 0


@pytest.fixture
def spawned(monkeypatch, tmp_path):
    """The (argv, env) of every child a stack started; the env of `up` carries both secrets."""
    monkeypatch.setenv("CLASSTRACE_REGION_SECRET", "region-secret-of-the-operator")
    monkeypatch.setenv("CLASSTRACE_PSEUDONYM_KEY", "a-key-of-before-per-school-keys")
    monkeypatch.setattr(classtrace.supervisor.subprocess, "Popen", _FakePopen)
    _FakePopen.started = []
    stacks: list[EmbeddedStack] = []

    def start(**overrides: str) -> list[tuple[list[str], dict[str, str]]]:
        settings = Settings.load({"data_dir": tmp_path, "kafka_bootstrap": "127.0.0.1:9", **overrides})
        stack = EmbeddedStack(settings)
        stacks.append(stack)
        monkeypatch.setattr(stack, "_wait_http", lambda *_a, **_k: None)
        stack._start_children()
        stack.simulate(classrooms=1, lessons=1, seed=0, speed=0)
        return _FakePopen.started

    yield start
    for stack in stacks:
        stack.supervisor.stop(timeout=0)


def _role(argv: list[str]) -> str:
    return argv[argv.index("classtrace.cli") + 1]


def test_gateway_and_worker_children_get_no_key(spawned):
    children = {_role(argv): env for argv, env in spawned()}
    assert {"gateway", "worker", "simulate"} <= set(children)
    for role in ("gateway", "worker"):
        env = children[role]
        assert not set(DEVICE_SECRETS) & set(env), role
        assert not any("region-secret-of-the-operator" in v or "a-key-of-before" in v for v in env.values())
        assert env["CLASSTRACE_DATA_DIR"]  # the rest of the settings still reach them


def test_simulator_child_gets_only_the_region_secret_the_operator_configured(spawned):
    children = {_role(argv): env for argv, env in spawned()}
    simulate = children["simulate"]
    assert simulate["CLASSTRACE_REGION_SECRET"] == "region-secret-of-the-operator"
    assert "CLASSTRACE_PSEUDONYM_KEY" not in simulate


def test_simulator_child_reads_the_data_dir_secret_when_none_is_configured(spawned, monkeypatch):
    monkeypatch.delenv("CLASSTRACE_REGION_SECRET")
    children = {_role(argv): env for argv, env in spawned()}
    assert not set(DEVICE_SECRETS) & set(children["simulate"])
