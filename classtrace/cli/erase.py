"""``classtrace erase``: forget one student or one teacher (docs/ERASURE.md).

Appends the request to the erasure ledger (``classtrace.erasures.v1``) and, unless told not to,
waits until the sink has executed it: the person's rows are gone from ClickHouse and the
``erasures`` audit has its row. The worker anonymises its lesson state from the same ledger.
The id given here is hashed before anything is written; it is never stored or logged.
"""

from __future__ import annotations

import argparse
import re
import time

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``erase`` subcommand."""
    parser = subparsers.add_parser(
        "erase",
        help="erase one student's or teacher's data (ledger, tables, worker state)",
        description="Erase one person: a student by pseudonym (ps_…) or a teacher by id, within a "
        "school. Their events are deleted (a student) or their id blanked (a teacher's lessons stay "
        "the class's record), the worker's state is anonymised, and the compacted erasure ledger "
        "keeps a replay or backfill from bringing them back. An `erasures` audit row records it "
        "by digest. See docs/ERASURE.md.",
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", metavar="PSEUDONYM", help="the student's pseudonym (ps_ + 32 hex)")
    who.add_argument("--teacher", metavar="ID", help="the teacher's id")
    parser.add_argument("--school", required=True, metavar="ID", help="the person's school")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the ledger has the request, without waiting for the sink to execute it",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="how long to wait for the audit row (120)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Publish the erasure; wait for its audit row unless ``--no-wait``."""
    from classtrace.cli.common import resolve_bootstrap
    from classtrace.cli.stack import record_key
    from classtrace.erasure import Erasure, Kind, publish_erasure
    from classtrace.errors import ClasstraceError
    from classtrace.ids import is_pseudonym
    from classtrace.kafka import ensure_topics
    from classtrace.topics import ALL_TOPICS, ERASURES
    from classtrace.validation import ID_PATTERN

    if args.student is not None and not is_pseudonym(args.student):
        raise ClasstraceError("--student takes a pseudonym (ps_ + 32 lowercase hex), never a raw id")
    for flag, value in (("--school", args.school), ("--teacher", args.teacher)):
        if value is not None and re.fullmatch(ID_PATTERN, value) is None:
            raise ClasstraceError(f"{flag} must be 1–64 characters of [A-Za-z0-9_.:-]")
    kind: Kind = "student" if args.student is not None else "teacher"
    erasure = Erasure.new(kind, args.school, args.student or args.teacher, int(time.time() * 1000))
    bootstrap = resolve_bootstrap(settings)
    ledger = [t for t in ALL_TOPICS if t.name == ERASURES]
    ensure_topics(bootstrap, settings.partitions, settings.kafka_options, ledger)
    publish_erasure(bootstrap, ERASURES, erasure, settings.kafka_options, record_key=record_key(settings))
    print(f"erasure {erasure.erasure_id} ({kind} of school {args.school}) is in the ledger")
    if args.no_wait:
        return 0
    rows = _wait_for_audit(settings, erasure.erasure_id, args.timeout)
    if rows is None:
        print(f"not executed within {args.timeout:.0f} s: the sink runs it when it next runs")
        return 3
    deleted, blanked = rows
    print(f"executed: {deleted} rows deleted, {blanked} rows with the id blanked")
    return 0


def _wait_for_audit(settings: Settings, erasure_id: str, timeout: float) -> tuple[int, int] | None:
    """``(rows_deleted, rows_blanked)`` from the audit once the sink wrote it, None on timeout."""
    from classtrace.clickhouse import close_quietly, connect, resolve_target

    client = connect(resolve_target(settings))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = client.query(
                "SELECT rows_deleted, rows_blanked FROM erasures FINAL WHERE erasure_id = {id:String}",
                parameters={"id": erasure_id},
            )
            if result.result_rows:
                deleted, blanked = result.result_rows[0]
                return int(deleted), int(blanked)
            time.sleep(0.5)
        return None
    finally:
        close_quietly(client)
