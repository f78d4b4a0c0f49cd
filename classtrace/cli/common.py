"""Flags shared by every subcommand: one per setting of docs/DESIGN.md §3, named after its env var."""

from __future__ import annotations

import argparse
from pathlib import Path

from classtrace.errors import StackNotRunning
from classtrace.runtime import read_runtime
from classtrace.settings import Settings

__all__ = ["add_region_secret_flag", "add_settings_flags", "resolve_bootstrap", "settings_from_args"]

_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("kafka_bootstrap", str, "HOST:PORT"),
    ("clickhouse_url", str, "URL"),
    ("data_dir", Path, "DIR"),
    ("partitions", int, "N"),
    ("gateway_port", int, "PORT"),
    ("log_level", str, "LEVEL"),
)
# Only on the commands that stand in for or provision devices: no server role takes it (docs/KEYS.md).
_REGION_SECRET_FLAG = ("region_secret", str, "SECRET")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--kafka-bootstrap`` … flags; their help is the setting's own documentation."""
    group = parser.add_argument_group("settings (flag or CLASSTRACE_<NAME> environment variable)")
    for flag in _FLAGS:
        _add_flag(group, *flag)


def add_region_secret_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--region-secret`` (``devices key``, ``simulate``): kept off every other command."""
    _add_flag(parser, *_REGION_SECRET_FLAG)


def _add_flag(group: argparse._ActionsContainer, name: str, kind: type, metavar: str) -> None:
    field = Settings.model_fields[name]
    group.add_argument(
        "--" + name.replace("_", "-"),
        dest=f"setting_{name}",
        type=kind,
        metavar=metavar,
        # SUPPRESS: an absent flag sets nothing, so a nested subcommand's parser (`devices add`)
        # does not overwrite a flag given before its action with None.
        default=argparse.SUPPRESS,
        help=(field.description or "").replace("%", "%%"),
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The process's settings: environment, then the flags given on the command line."""
    flags = (*_FLAGS, _REGION_SECRET_FLAG)
    overrides = {name: getattr(args, f"setting_{name}", None) for name, _kind, _metavar in flags}
    return Settings.load(overrides)


def resolve_bootstrap(settings: Settings) -> str:
    """The configured Kafka bootstrap, else the one of the `classtrace up` running on the data dir."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    runtime = read_runtime(settings.data_dir)
    if runtime is None:
        raise StackNotRunning(
            f"no running `classtrace up` on data dir {settings.data_dir} and no "
            "CLASSTRACE_KAFKA_BOOTSTRAP: start the stack or name the broker"
        )
    return runtime.kafka_bootstrap
