"""``classtrace soak``: N simulated school days through a fresh ``classtrace up``; worker state sampled.

Starts ``classtrace up`` on ``--data-dir`` (its own, fresh) with the worker's state horizon set to
``--horizon-days`` simulated days, sends each day's lessons as a compressed backfill into Kafka,
and after each day records the worker's RSS, its changelogs' live keys and bytes, and
ClickHouse's table sizes (loadtests/soak.py says how the days are laid in event time). Writes
``soak.csv``, ``soak.svg`` and ``soak.json`` under ``--out``. Exit 1 when a day did not drain.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``soak`` subcommand."""
    parser = subparsers.add_parser(
        "soak",
        help="drive many simulated school days through a fresh stack and sample the worker's state",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--days", type=int, default=20, metavar="N", help="simulated school days (default 20)"
    )
    parser.add_argument("--classrooms", type=int, default=40, metavar="C", help="classrooms (default 40)")
    parser.add_argument("--lessons", type=int, default=4, metavar="L", help="lessons per day (default 4)")
    parser.add_argument(
        "--horizon-days",
        type=float,
        default=3.0,
        metavar="H",
        help="state horizon in simulated days (default 3)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/soak"),
        metavar="DIR",
        help="CSV/SVG/JSON dir (default docs/soak)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=600.0, metavar="S", help="max wait per day (default 600 s)"
    )
    parser.set_defaults(func=run)


def _start_stack(settings: Settings, horizon_s: float) -> subprocess.Popen[bytes]:
    from classtrace.runtime import read_runtime

    data_dir = settings.data_dir.resolve()
    if read_runtime(data_dir) is not None:
        raise SystemExit(f"classtrace soak: a stack already runs on {data_dir}: give a fresh --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CLASSTRACE_DATA_DIR": str(data_dir),
        "CLASSTRACE_STATE_HORIZON_S": str(horizon_s),
        "CLASSTRACE_STATE_SCAN_S": "10",  # a whole pass each sweep: days last minutes here
    }
    log = (data_dir / "soak-up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "classtrace.cli", "up", "--gateway-port", "0"], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runtime = read_runtime(data_dir)
        if runtime is not None and runtime.clickhouse_http_url and proc.poll() is None:
            time.sleep(5.0)  # the worker joins its group
            return proc
        if proc.poll() is not None:
            break
        time.sleep(1.0)
    proc.kill()
    raise SystemExit(f"classtrace soak: `classtrace up` did not start: see {data_dir / 'soak-up.log'}")


def _worker_pid(root: int) -> int:
    from loadtests.cpu import snapshot

    found = snapshot(root)
    pids = [pid for pid, (role, _cpu) in (found.processes.items() if found else []) if role == "worker"]
    return pids[0] if pids else 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the stack, run the days, write the samples; stops the stack it started."""
    from classtrace.cli.stack import record_key, region_secret
    from classtrace.clickhouse import connect
    from classtrace.kafka import make_consumer, make_producer
    from classtrace.runtime import read_runtime
    from classtrace.topics import EVENTS
    from loadtests.soak import (
        ChangelogTally,
        Sample,
        SoakPlan,
        day_end_ms,
        group_lag,
        send_day,
        take_sample,
        wait_drained,
        write_outputs,
    )

    plan = SoakPlan(args.days, args.classrooms, args.lessons, horizon_days=args.horizon_days)
    if plan.days * plan.day_ms > 6 * 86_400_000:
        raise SystemExit(
            "classtrace soak: the days do not fit in 6 days of event time: fewer days or lessons"
        )
    stack = _start_stack(settings, plan.horizon_s)
    data_dir = settings.data_dir.resolve()
    samples: list[Sample] = []
    ok = True
    try:
        runtime = read_runtime(data_dir)
        assert runtime is not None
        bootstrap, options, partitions = (
            runtime.kafka_bootstrap,
            dict(settings.kafka_options),
            settings.partitions,
        )
        tally = ChangelogTally(bootstrap, options, "classtrace-worker", partitions)
        group = make_consumer(bootstrap, "classtrace-worker", options, **{"enable.auto.commit": False})
        client = connect(settings)
        secret, key, producer = (
            region_secret(settings),
            record_key(settings),
            make_producer(bootstrap, options),
        )
        began, start_ms, events = time.monotonic(), int(time.time() * 1000) - 60_000, 0
        for day in range(plan.days):
            events += send_day(plan, day, day_end_ms(plan, start_ms, day), secret, producer, key)
            ok &= wait_drained(lambda: group_lag(group, EVENTS, partitions), args.drain_timeout)
            tally.catch_up()
            sample = take_sample(day + 1, round(time.monotonic() - began, 1), events, tally,
                                 _worker_pid(runtime.pid), client)  # fmt: skip
            samples.append(sample)
            print(json.dumps(asdict(sample)), flush=True)
        tally.close()
        group.close()
        client.close()
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.kill()
    print(json.dumps(write_outputs(args.out, plan, samples, ok)))
    return 0 if ok else 1
