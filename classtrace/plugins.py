"""How the shared core reaches the roles above it without importing them: packaging entry points.

The core (``classtrace/``) imports no role package (``producers``, ``stream_processors``,
``sinks``, ``readers``, ``smart_classroom_agents``, ``loadtests``); tests/unit/test_architecture.py
holds it to that. Where the core must still call into a role, the role declares an entry point in
``pyproject.toml`` and the core loads it by group and name through :mod:`importlib.metadata`, the
seam Python packaging supports for plugins. The groups (docs/LAYOUT.md):

``classtrace.commands``
    subcommand name → a module with ``register(subparsers)`` (its parser sets ``func=run``);
    ``classtrace/cli/__init__.py`` lists them in :data:`classtrace.cli.SUBCOMMANDS` order.
``classtrace.gateway_routes``
    name → ``make(bootstrap, options)`` returning ``(routes, start, stop)``: routes another role
    mounts in the gateway's app (``dashboard``: the live routes ``classtrace up`` serves there).
``classtrace.embedded``
    the named hooks ``classtrace up`` calls in-process (:data:`EMBEDDED_HOOKS`).

Entry points are read from the installed metadata: after editing them in ``pyproject.toml``, run
``pip install -e .`` again so that they register.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from classtrace.errors import ClasstraceError
from classtrace.signing import RecordKey

__all__ = [
    "COMMANDS",
    "EMBEDDED",
    "EMBEDDED_HOOKS",
    "GATEWAY_ROUTES",
    "AdminTokenHook",
    "EmbeddedSink",
    "PluginMissing",
    "RestoreHook",
    "SinkFactory",
    "declared",
    "load",
]

COMMANDS = "classtrace.commands"
GATEWAY_ROUTES = "classtrace.gateway_routes"
EMBEDDED = "classtrace.embedded"


class PluginMissing(ClasstraceError):
    """An entry point the core needs is not installed (or the install predates it)."""


class _Hook(NamedTuple):
    name: str
    contract: str


# What ``classtrace up`` (classtrace/cli/stack.py) loads from classtrace.embedded, and the call each
# hook answers. A test checks pyproject.toml declares exactly these.
EMBEDDED_HOOKS: tuple[_Hook, ...] = (
    _Hook(
        "restore_devices",
        "(data_dir, bootstrap, options, *, record_key) -> int: re-publish kept devices",
    ),
    _Hook(
        "restore_viewers",
        "(data_dir, bootstrap, options, *, record_key) -> int: re-publish kept viewers",
    ),
    _Hook("admin_token", "(data_dir, bootstrap, options, *, record_key) -> str: all-schools dashboard token"),
    _Hook(
        "sink",
        "(client, bootstrap, options, *, record_key, keep_raw) -> EmbeddedSink: the sink, not started",
    ),
)


class RestoreHook(Protocol):
    """``restore_devices`` / ``restore_viewers``: publish what the data dir kept; how many."""

    def __call__(
        self, data_dir: Path, bootstrap: str, options: Mapping[str, str], *, record_key: RecordKey | None
    ) -> int: ...


class AdminTokenHook(Protocol):
    """``admin_token``: the dashboard token ``classtrace up`` prints, registered on the topic."""

    def __call__(
        self, data_dir: Path, bootstrap: str, options: Mapping[str, str], *, record_key: RecordKey | None
    ) -> str: ...


class EmbeddedSink(Protocol):
    """What ``classtrace up`` needs of the sink it runs next to the chDB engine."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


class SinkFactory(Protocol):
    """``sink``: builds the sink on a ClickHouse client (migrations already applied)."""

    def __call__(
        self,
        client: Any,
        bootstrap: str,
        options: Mapping[str, str],
        *,
        record_key: RecordKey | None,
        keep_raw: bool,
    ) -> EmbeddedSink: ...


def declared(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group``, by name."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str, found: Mapping[str, EntryPoint] | None = None) -> Any:
    """The object entry point ``name`` of ``group`` names; :class:`PluginMissing` when none is."""
    points = declared(group) if found is None else found
    if name not in points:
        raise PluginMissing(
            f"no entry point {name!r} in group {group!r}: the installed metadata lacks it "
            "(reinstall classtrace, e.g. `pip install -e .`)"
        )
    return points[name].load()
