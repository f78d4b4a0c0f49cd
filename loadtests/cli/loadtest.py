"""``classtrace loadtest``: Locust against a running stack, then a reconciliation (docs/DESIGN.md §5).

Applies U users (spawned R per second) for D seconds through the gateway or straight into Kafka,
waits for the pipeline to drain into ClickHouse, and checks that every accepted event landed once:
sent = landed (FINAL) + rejected, lost = 0, duplicated = 0. Writes ``loadtest-<run>.json`` and an
HTML page with throughput and latency charts under ``--out`` (default ``<data dir>/loadtests``).
Exit code 0 when the reconciliation passes, 1 when it does not.

``--faults gateway,worker,pause`` injects ``--fault-count`` faults of each kind into a local
``classtrace up`` during the load (kill -9 of a supervised child, Tansu paused; docs/FAULTS.md):
users then retry failed requests, every acknowledged event must land exactly once, and the lesson
summaries must equal an uninterrupted replay of the same records.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``loadtest`` subcommand."""
    parser = subparsers.add_parser(
        "loadtest",
        help="load-test a running stack with Locust and reconcile what landed in ClickHouse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--users", type=int, default=20, metavar="U", help="concurrent Locust users (devices)"
    )
    parser.add_argument(
        "--spawn-rate", type=float, default=10.0, metavar="R", help="users started per second"
    )
    parser.add_argument("--duration", type=int, default=60, metavar="D", help="seconds of load (default 60)")
    parser.add_argument("--target", choices=("gateway", "kafka"), default="gateway", help="ingest path")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N", help="events per request/record")
    parser.add_argument(
        "--drain-timeout", type=float, default=180.0, metavar="S", help="max wait for the pipeline"
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="report dir (default <data dir>/loadtests)"
    )
    parser.add_argument("--quiet", action="store_true", help="hide Locust's own output")
    parser.add_argument(
        "--faults",
        default="",
        metavar="KIND[,KIND]",
        help="inject faults during the load: gateway, worker, pause (broker only with "
        "CLASSTRACE_BROKER_STORAGE=disk); see docs/FAULTS.md",
    )
    parser.add_argument(
        "--fault-count", type=int, default=10, metavar="N", help="faults per kind (default 10)"
    )
    parser.add_argument("--fault-seed", type=int, default=0, metavar="S", help="seed of the fault times")
    parser.add_argument(
        "--pause-seconds", type=float, default=5.0, metavar="S", help="how long a pause fault stops Tansu"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    parser.set_defaults(func=run)


def _cpu_line(cpu: Mapping[str, Any]) -> str:
    """'CPU per landed event: worker 15.4 µs, …' — the figures docs/CAPACITY.md sizes roles by."""
    per_event = sorted(cpu["us_per_event"].items(), key=lambda item: -item[1])
    roles = ", ".join(f"{role} {us:.1f} µs" for role, us in per_event)
    where = "" if cpu["stack_measured"] else " (stack processes not measured: not a local `classtrace up`)"
    return f"CPU per landed event: {roles}; total {cpu['total_us_per_event']:.1f} µs{where}"


def _faults_line(report: Mapping[str, Any]) -> str:
    """'Faults: gateway 10/10 injected, recovered in ≤ 4.2 s; …; summaries = control: yes (32 lessons)'."""
    kinds = "; ".join(
        f"{kind} {k['injected']}/{k['planned']} injected, "
        f"{k['recovered']} recovered in ≤ {k['max_recovery_s']:.1f} s"
        for kind, k in report["faults"]["by_kind"].items()
    )
    s = report["summaries"]
    equal = "yes" if s["equal"] else f"NO ({s['differing_count']} differ)"
    return (
        f"Faults: {kinds}; retries {report['retries']:,}; landed unacknowledged "
        f"{report['unacknowledged_but_landed']:,}; summaries = control: {equal} ({s['lessons']} lessons)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Find the stack, run the load, print the reconciliation."""
    from classtrace.cli.stack import record_key
    from classtrace.clickhouse import connect, store_errors
    from classtrace.errors import StackNotRunning
    from classtrace.runtime import read_runtime
    from loadtests.faults import FaultPlan, parse_kinds
    from loadtests.runner import Endpoints, LoadTestPlan, run_loadtest

    plan = LoadTestPlan(
        args.users, args.spawn_rate, args.duration, args.target, args.batch_size, args.drain_timeout
    )
    faults = None
    if args.faults:
        kinds = parse_kinds(args.faults, settings.broker_storage)
        faults = FaultPlan(kinds, args.fault_count, args.fault_seed, args.pause_seconds)
    data_dir = settings.data_dir.resolve()
    runtime = read_runtime(data_dir)
    bootstrap = settings.kafka_bootstrap or (runtime.kafka_bootstrap if runtime else "")
    if not bootstrap:
        raise StackNotRunning(
            f"no running `classtrace up` on {data_dir} and CLASSTRACE_KAFKA_BOOTSTRAP is unset"
        )
    endpoints = Endpoints(
        gateway_url=(runtime.gateway_url if runtime else "") or f"http://127.0.0.1:{settings.gateway_port}",
        kafka_bootstrap=bootstrap,
        kafka_options=dict(settings.kafka_options),
        registry_dir=data_dir if runtime is not None else None,
        record_key=record_key(settings),
    )
    client = connect(settings)

    def query(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with store_errors("load-test reconciliation query failed"):
            return [tuple(row) for row in client.query(sql, parameters=dict(params)).result_rows]

    try:
        report = run_loadtest(
            plan,
            endpoints,
            query,
            args.out or data_dir / "loadtests",
            quiet=args.quiet,
            stack_pid=runtime.pid if runtime is not None else None,
            faults=faults,
        )
    finally:
        client.close()
    if args.format == "json":
        print(json.dumps({k: v for k, v in report.items() if k != "timeline"}))
    else:
        print(
            f"{report['verdict']}: sent {report['sent']:,}, accepted {report['accepted']:,}, "
            f"rejected {report['rejected']:,}, landed {report['landed']:,}, lost {report['lost']:,}, "
            f"duplicated {report['duplicated']:,}; ingest {report['ingest_events_per_s']:,.0f} events/s, "
            f"sustained into ClickHouse {report['sustained_events_per_s']:,.0f} events/s, "
            f"p95 {report['latency_p95_ms']:.0f} ms; report: {(args.out or data_dir / 'loadtests')}"
            f"/loadtest-{report['run']}.html"
        )
        print(_cpu_line(report["cpu"]))
        if "faults" in report:
            print(_faults_line(report))
    return 0 if report["verdict"] == "PASS" else 1
