"""``classtrace devices add|list|revoke|key``: device registrations, their bearer tokens, their keys.

``add`` prints the new token once, alone on stdout (only its SHA-256 is stored, on the compacted
``classtrace.devices.v1``); a running gateway accepts it within ~2 s. Re-adding a device rotates
its token. ``revoke`` stops a token within seconds. Against a running ``classtrace up`` the broker
is found from the data dir, and registrations are also kept in ``<data dir>/devices.jsonl``
(hashes only) so a restarted stack still accepts them; with CLASSTRACE_KAFKA_BOOTSTRAP the topic
is the only record. (docs/DESIGN.md §5)

``key --school S`` prints the pseudonym key to configure on school S's devices, derived from the
region secret (CLASSTRACE_REGION_SECRET, else ``<data dir>/region.secret``); it touches no broker.
A device holds only its school's key, so a stolen one exposes one school (docs/KEYS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    from classtrace.cli.common import add_region_secret_flag, add_settings_flags

    parser = sub.add_parser(
        "devices",
        help="add, list or revoke device tokens; print a school's pseudonym key",
        description=__doc__,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a device; prints its token once on stdout")
    add.add_argument("--school", required=True, metavar="S", help="school id")
    add.add_argument("--classroom", required=True, metavar="C", help="classroom id")
    add.add_argument("--device", required=True, metavar="D", help="device id")
    add.add_argument(
        "--kind",
        default="gateway_sim",
        metavar="K",
        help="camera, audio, tablet, whiteboard, teacher_app or gateway_sim (default)",
    )
    listing = actions.add_parser("list", help="list registrations (never tokens)")
    listing.add_argument("--school", default="", metavar="S", help="only school S")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    revoke = actions.add_parser("revoke", help="revoke a device's token (stops within seconds)")
    revoke.add_argument("--school", required=True, metavar="S", help="school id")
    revoke.add_argument("--device", required=True, metavar="D", help="device id")
    key = actions.add_parser(
        "key", help="print the pseudonym key for school S's devices (from the region secret; docs/KEYS.md)"
    )
    key.add_argument("--school", required=True, metavar="S", help="school id")
    add_region_secret_flag(key)
    for action in (add, listing, revoke, key):
        add_settings_flags(action)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "key":
        return _print_school_key(args.school, settings)
    from classtrace.cli.common import resolve_bootstrap
    from classtrace.cli.stack import record_key
    from classtrace.codec import ts_to_datetime
    from classtrace.kafka import ensure_topics
    from classtrace.topics import ALL_TOPICS, DEVICES
    from classtrace.v1 import events_pb2 as pb
    from producers.registry import parse_kind, read_registrations, register_device, revoke_device

    bootstrap = resolve_bootstrap(settings)
    options = settings.kafka_options
    # The embedded broker forgets its topics on restart: keep a copy in the data dir (docs/DESIGN.md §2).
    keep = settings.data_dir if not settings.kafka_bootstrap else None
    signed = record_key(settings)
    if args.action == "add":
        kind = parse_kind(args.kind)
        ensure_topics(bootstrap, settings.partitions, options, [t for t in ALL_TOPICS if t.name == DEVICES])
        token, reg = register_device(
            bootstrap,
            options,
            school_id=args.school,
            classroom_id=args.classroom,
            device_id=args.device,
            kind=kind,
            data_dir=keep,
            record_key=signed,
        )
        print(
            f"device {reg.device_id} registered (school {reg.school_id}, classroom {reg.classroom_id}); "
            "the token below is shown only once",
            file=sys.stderr,
        )
        print(token)
        return 0
    if args.action == "list":
        regs = sorted(
            (
                r
                for r in read_registrations(bootstrap, options, record_key=signed).values()
                if r.school_id == args.school or not args.school
            ),
            key=lambda r: (r.school_id, r.classroom_id, r.device_id),
        )
        rows = [
            {
                "school_id": r.school_id,
                "classroom_id": r.classroom_id,
                "device_id": r.device_id,
                "kind": pb.DeviceKind.Name(r.device_kind).removeprefix("DEVICE_KIND_").lower(),
                "created_at": ts_to_datetime(r.created_at).isoformat(timespec="seconds"),
                "status": "revoked" if r.revoked else "active",
                "token_sha256": r.token_sha256[:12],
            }
            for r in regs
        ]
        if args.format == "json":
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
            return 0
        print(
            f"{'SCHOOL':<14} {'CLASSROOM':<14} {'DEVICE':<16} {'KIND':<12} {'CREATED':<26} {'STATUS':<8} "
            "TOKEN"
        )
        for row in rows:
            print(
                f"{row['school_id']:<14} {row['classroom_id']:<14} {row['device_id']:<16} {row['kind']:<12} "
                f"{row['created_at']:<26} {row['status']:<8} {row['token_sha256']}…"
            )
        return 0
    reg = revoke_device(
        bootstrap, options, school_id=args.school, device_id=args.device, data_dir=keep, record_key=signed
    )
    print(f"device {reg.device_id} of school {reg.school_id} revoked", file=sys.stderr)
    return 0


def _print_school_key(school_id: str, settings: Settings) -> int:
    """Print school ``school_id``'s pseudonym key alone on stdout; where it came from on stderr."""
    import re

    from classtrace.cli.stack import REGION_SECRET_FILE, region_secret
    from classtrace.errors import ValidationError
    from classtrace.ids import PSEUDONYM_KEY_INFO, school_pseudonym_key
    from classtrace.validation import ID_PATTERN

    if re.fullmatch(ID_PATTERN, school_id) is None:
        raise ValidationError("school", f"must be 1–64 characters of [A-Za-z0-9_.:-], got {school_id!r}")
    key = school_pseudonym_key(region_secret(settings), school_id)
    source = (
        "CLASSTRACE_REGION_SECRET"
        if settings.region_secret is not None
        else str(settings.data_dir / REGION_SECRET_FILE)
    )
    version = PSEUDONYM_KEY_INFO.decode().removesuffix("|")
    print(
        f"pseudonym key of school {school_id} ({version}, from the region secret in {source}); "
        "configure it on this school's devices only",
        file=sys.stderr,
    )
    print(key.decode())
    return 0
