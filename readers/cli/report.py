"""``classtrace report teacher ID --school S`` / ``report lesson ID --school S``: an HTML report.

The teacher report is the digital portrait (教师数字画像) per ISO week: teaching-mode mix, S-T
Rt/Ch, attention and accuracy, recent lessons. The lesson report shows the S-T curve, attention
and hand raising over the lesson. Lesson and teacher ids repeat across schools, so the school is
required: a lesson is (school, lesson id), a teacher (school, teacher id). Charts are inline SVG:
the file opens offline. Chinese by default, ``--lang en`` for English. Works while
``classtrace up`` runs on the same data dir. Every run is recorded on the access log
(:mod:`classtrace.access`) under the OS user, or the ``--as`` name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add ``report {teacher,lesson} ID --school S [--lang zh|en] [--out FILE]``."""
    parser = sub.add_parser(
        "report", help="write a teacher portrait or lesson report (HTML)", description=__doc__
    )
    parser.add_argument("kind", choices=["teacher", "lesson"], help="what to report on")
    parser.add_argument("id", metavar="ID", help="teacher_id or lesson_id (unique within its school)")
    parser.add_argument(
        "--school", required=True, metavar="S", help="school_id of the teacher or lesson (required)"
    )
    parser.add_argument("--lang", choices=["zh", "en"], default="zh", help="language (default zh = zh-CN)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output file (default report-<kind>-<school>-<id>.html)"
    )
    parser.add_argument("--weeks", type=int, default=12, help="teacher report: weeks shown (default 12)")
    parser.add_argument("--database", default="classtrace", help="ClickHouse database (default classtrace)")
    parser.add_argument(
        "--as",
        dest="as_viewer",
        default=None,
        metavar="NAME",
        help="who the report is for, in the access log (default: the OS user; the OS user is kept too)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Write the report; prints its path. 1 when the teacher or lesson has no data."""
    from classtrace.clickhouse import close_quietly, connect, store_errors
    from readers.reports import load_lesson, load_teacher, render_lesson, render_teacher

    client = connect(settings, database=args.database)
    try:
        with store_errors("report query failed"):
            if args.kind == "teacher":
                teacher = load_teacher(client, args.database, args.school, args.id, args.weeks)
                html = render_teacher(teacher, args.lang) if teacher else None
            else:
                lesson = load_lesson(client, args.database, args.school, args.id)
                html = render_lesson(lesson, args.lang) if lesson else None
        _log_access(args, settings, "allowed" if html else "not_found", client)
    finally:
        close_quietly(client)
    if html is None:
        print(
            f"classtrace report: no data for {args.kind} {args.id!r} of school {args.school!r}"
            " (ended lessons only)",
            file=sys.stderr,
        )
        return 1
    out: Path = args.out or Path(f"report-{args.kind}-{_safe(args.school)}-{_safe(args.id)}.html")
    out.write_text(html, encoding="utf-8")
    print(out)
    return 0


def _log_access(args: argparse.Namespace, settings: Settings, outcome: str, client: Any) -> None:
    """Record this report on the access log; a log that cannot be written is a warning, not a failure."""
    from classtrace.access import AccessRecord, cli_identity, deliver
    from classtrace.clickhouse import resolve_target
    from classtrace.runtime import read_runtime

    viewer_id, source = cli_identity(args.as_viewer)
    action = f"report.{args.kind}"
    record = AccessRecord.new(viewer_id, None, action, args.id, outcome, source, school_id=args.school)
    runtime = None if settings.kafka_bootstrap else read_runtime(settings.data_dir)
    bootstrap = settings.kafka_bootstrap or (runtime.kafka_bootstrap if runtime else None)
    writer = None if resolve_target(settings).kind == "stack" else client
    try:
        deliver([record], bootstrap=bootstrap, options=settings.kafka_options, client=writer)
    except Exception as exc:  # any failure of the log is reported, never fatal
        print(f"classtrace report: warning: access not logged: {exc}", file=sys.stderr)


def _safe(part: str) -> str:
    """``part`` usable in a file name (ids are already tame; this guards the odd character)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
