"""``classtrace viewers add|list|revoke``: dashboard viewer tokens (docs/DESIGN.md §5).

``add`` prints the new token once, alone on stdout (only its hash is stored, on the compacted
``classtrace.viewers.v1``); ``--school S`` limits the viewer to school S, without it the viewer
sees every school. Against a running ``classtrace up`` the broker is found from the data dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from classtrace.cli.common import add_settings_flags, resolve_bootstrap
from classtrace.runtime import read_runtime
from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add ``viewers`` with its actions (settings flags go before or after the action)."""
    parser = sub.add_parser(
        "viewers", help="add, list or revoke dashboard viewer tokens", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a viewer; prints its token once on stdout")
    add.add_argument("--school", default="", metavar="S", help="only school S (default: all schools)")
    add.add_argument("--label", default="", help="a note for `viewers list` (who holds the token)")
    listing = actions.add_parser("list", help="list viewers (never their tokens)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    revoke = actions.add_parser("revoke", help="revoke a viewer: its token stops working within ~2 s")
    revoke.add_argument("viewer_id", metavar="VIEWER_ID", help="as shown by `viewers list`")
    for action in (add, listing, revoke):
        add_settings_flags(action)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Do the action; 0 on success, 1 when revoking an unknown viewer."""
    from classtrace.cli.stack import record_key
    from readers.dashboard.viewers import add_viewer, list_viewers, revoke_viewer

    bootstrap = resolve_bootstrap(settings)
    options = settings.kafka_options
    # The data dir copy lets a restarted embedded stack restore the registry (Tansu forgets it).
    embedded = not settings.kafka_bootstrap or read_runtime(settings.data_dir) is not None
    keep = settings.data_dir if embedded else None
    signed = record_key(settings)
    if args.action == "add":
        viewer, token = add_viewer(bootstrap, options, args.school, args.label, keep, record_key=signed)
        scope = f"school {viewer.school_id}" if viewer.school_id else "all schools"
        print(f"viewer {viewer.viewer_id} added ({scope}); the token is shown only once", file=sys.stderr)
        print(token)
        return 0
    if args.action == "list":
        viewers = list_viewers(bootstrap, options, record_key=signed)
        if args.format == "json":
            for v in viewers:
                row = {k: getattr(v, k) for k in ("viewer_id", "school_id", "label", "created_at", "revoked")}
                print(json.dumps(row, ensure_ascii=False))
            return 0
        print(f"{'VIEWER':<16} {'SCHOOL':<16} {'CREATED':<26} {'STATUS':<8} LABEL")
        for v in viewers:
            status = "revoked" if v.revoked else "active"
            print(f"{v.viewer_id:<16} {v.school_id or '(all)':<16} {v.created_at:<26} {status:<8} {v.label}")
        return 0
    revoked = revoke_viewer(bootstrap, options, args.viewer_id, keep, record_key=signed)
    if revoked is None:
        print(f"classtrace viewers: no viewer {args.viewer_id!r}", file=sys.stderr)
        return 1
    print(f"viewer {revoked.viewer_id} revoked", file=sys.stderr)
    return 0
