"""``classtrace simulate``: simulated smart classrooms streaming scripted lessons (docs/DESIGN.md §5).

Runs a timetable of lessons (lecture / practice / dialogue / mixed scripts whose S-T mode is known
in advance) in N classrooms, every device sending through the EdgeProducer — to the gateway with
its own device tokens, or straight into Kafka. Writes the run's ground truth (expected event
counts and lesson metrics) to ``<out>/<run>/ground_truth.json``. Finds a running ``classtrace up``
on the data dir by itself; ``classtrace up --simulate N`` starts this command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand."""
    from classtrace.cli.common import add_region_secret_flag

    parser = subparsers.add_parser(
        "simulate",
        help="stream scripted lessons of N simulated classrooms into the stack, with ground truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--classrooms", type=int, required=True, metavar="N", help="classrooms to simulate")
    parser.add_argument(
        "--lessons", type=int, default=2, metavar="M", help="lessons per classroom (default 2)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="X", help="random seed: same seed, same lessons"
    )
    parser.add_argument(
        "--target", choices=("gateway", "kafka"), default="gateway", help="ingest path (default gateway)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=10.0,
        metavar="S",
        help="simulated seconds per real second (default 10; 0 = as fast as possible, a backfill)",
    )
    parser.add_argument(
        "--lesson-minutes", type=float, default=40.0, metavar="MIN", help="lesson length (default 40)"
    )
    parser.add_argument(
        "--break-minutes", type=float, default=10.0, metavar="MIN", help="break length (default 10)"
    )
    parser.add_argument(
        "--shared-room-numbers",
        action="store_true",
        help="name rooms room-01, room-02 … in every school, so classroom ids repeat across schools "
        "(default: ids start with the school)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="ground-truth root (default <data dir>/simulations)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="generate and write ground truth, send nothing"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    add_region_secret_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Plan, connect, run; prints where the ground truth is. Exit 1 when events stayed unsent."""
    from classtrace.cli.stack import record_key, region_secret
    from classtrace.errors import StackNotRunning
    from classtrace.runtime import read_runtime
    from smart_classroom_agents.outlets import ListOutlet, Outlet
    from smart_classroom_agents.runner import SimulationPlan, plan_classrooms, run_simulation

    try:
        plan = SimulationPlan(
            args.classrooms,
            args.lessons,
            args.seed,
            args.speed,
            args.lesson_minutes,
            args.break_minutes,
            shared_room_numbers=args.shared_room_numbers,
        )
    except ValueError as exc:
        print(f"classtrace simulate: error: {exc}", file=sys.stderr)
        return 2
    secret = region_secret(settings)  # the simulated devices of all schools: see docs/KEYS.md
    data_dir = settings.data_dir.resolve()
    out_root = args.out or data_dir / "simulations"
    outlet: Outlet
    if args.dry_run:
        outlet = ListOutlet()
    else:
        from smart_classroom_agents.connect import edge_outlet

        runtime = read_runtime(data_dir)
        bootstrap = settings.kafka_bootstrap or (runtime.kafka_bootstrap if runtime else "")
        if not bootstrap:
            raise StackNotRunning(
                f"no running `classtrace up` on {data_dir} and CLASSTRACE_KAFKA_BOOTSTRAP is unset: "
                "start the stack, point --data-dir at it, or use --dry-run"
            )
        gateway_url = (runtime.gateway_url if runtime else "") or f"http://127.0.0.1:{settings.gateway_port}"
        _, rooms = plan_classrooms(plan, 0)  # device ids do not depend on time
        outlet = edge_outlet(
            args.target,
            rooms,
            bootstrap=bootstrap,
            kafka_options=settings.kafka_options,
            gateway_url=gateway_url,
            sim_dir=data_dir / "simulator",
            registry_dir=data_dir if runtime is not None else None,
            region_secret=secret,
            record_key=record_key(settings),
        )
    result = run_simulation(plan, outlet, secret, out_root, quiet=args.quiet)
    if args.format == "json":
        print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(result).items()}))
    else:
        print(
            f"simulated {result.lessons} lessons, {result.events:,} events in {result.elapsed_s:.1f} s; "
            f"ground truth: {result.ground_truth}"
            + (f"; {result.unsent} events left unsent" if result.unsent else "")
        )
    return 1 if result.unsent else 0
