"""The ``classtrace`` console script; each subcommand is one module registered as an entry point.

Group ``classtrace.commands`` in ``pyproject.toml`` maps a subcommand name to its module: the core
ones (``up``, ``query``, ``migrate``) in ``classtrace/cli/``, every role's in that role's own
``cli/`` package (``producers/cli/gateway.py``, ``readers/cli/dashboard.py``, …), so the core
imports no role (classtrace/plugins.py, docs/LAYOUT.md). Each module defines
``register(subparsers)`` adding its parser and setting ``func=run``; ``run(args, settings) -> int``
does the work. Subcommand modules import heavy dependencies (Faust, chDB, Locust) inside ``run``
so that ``classtrace --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from classtrace.cli.common import add_settings_flags, settings_from_args
from classtrace.errors import ClasstraceError
from classtrace.logsetup import configure_logging
from classtrace.plugins import COMMANDS, declared

__all__ = ["PRIVATE_UMASK", "SUBCOMMANDS", "build_parser", "main"]

PRIVATE_UMASK = 0o077
"""Files 0600, directories 0700 (issue 17)."""

# In the order `--help` lists them; a name no installed entry point provides is left out.
SUBCOMMANDS = (
    "up",
    "gateway",
    "worker",
    "sink",
    "dashboard",
    "devices",
    "viewers",
    "simulate",
    "query",
    "report",
    "loadtest",
    "soak",
    "migrate",
    "erase",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="classtrace",
        description="classtrace: smart-classroom events from the edge into Kafka, live metrics "
        "with Faust, everything stored in ClickHouse.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every setting is also an environment variable CLASSTRACE_<NAME> (see docs/DESIGN.md §3). "
        "Run `classtrace <command> --help` for a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = declared(COMMANDS)
    for name in SUBCOMMANDS:
        if name in commands:
            commands[name].load().register(sub)
    for action in sub.choices.values():
        add_settings_flags(action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    # What classtrace writes (the data dir: chDB, registries, tokens, spools, logs, reports) is
    # minors' data and secrets: readable by its owner only. Children (Tansu, the roles) inherit it.
    os.umask(PRIVATE_UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        configure_logging(settings.log_level)
        code: int = args.func(args, settings)
    except ClasstraceError as exc:
        print(f"classtrace {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
