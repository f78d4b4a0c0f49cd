"""Runs Locust headless against a running stack, waits for the pipeline to drain, reconciles.

The reconciliation is the point of a classtrace load test — throughput that loses or doubles
events is worthless. Every event of a run carries school ``lt-<run>``, so after Locust stops the
runner counts this run's rows in ClickHouse and checks::

    accepted = sent − rejected − failed        (what the ingest path acknowledged)
    landed   = count() FROM events FINAL       (distinct event_ids stored)
    lost     = accepted − landed  (must be 0)
    duplicated = landed − uniqExact(event_id)  (must be 0: FINAL collapses re-deliveries)

Locust runs as a subprocess: it monkey-patches the process with gevent, which must not leak into
the reconciler's Kafka and ClickHouse clients. Its per-second statistics (``--csv-full-history``)
give the latency percentiles; a sampler thread counts landed rows every second for the
throughput-into-ClickHouse line. Report: ``<out>/loadtest-<run>.json`` and ``.html``.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from classtrace.errors import ClasstraceError
from classtrace.signing import RecordKey
from loadtests import cpu
from loadtests.faults import FaultPlan, Injector, StackProbe
from loadtests.report import render_html
from loadtests.traffic import LoadDevice, load_devices

__all__ = ["Endpoints", "LoadTestPlan", "run_loadtest"]

logger = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
Query = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]
"""Runs SQL with parameters on ClickHouse, returns rows (see ``classtrace loadtest``)."""


@dataclass(frozen=True)
class LoadTestPlan:
    """What load to apply: Locust users, spawn rate, seconds, ingest path, events per request."""

    users: int
    spawn_rate: float
    duration_s: int
    target: str = "gateway"
    batch_size: int = 100
    drain_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.target not in ("gateway", "kafka"):
            raise ValueError(f"target must be gateway or kafka, got {self.target!r}")
        if self.users < 1 or self.duration_s < 1 or not 1 <= self.batch_size <= 1000:
            raise ValueError("users and duration must be ≥ 1, batch size in [1, 1000]")


@dataclass(frozen=True)
class Endpoints:
    """Where the stack under test listens (from its runtime file or the settings)."""

    gateway_url: str
    kafka_bootstrap: str
    kafka_options: dict[str, str] = field(default_factory=dict)
    registry_dir: Path | None = None
    record_key: RecordKey | None = None
    """The stack's record key: signs the registrations and the Kafka users' records."""


def _register(devices: list[LoadDevice], endpoints: Endpoints) -> dict[str, str]:
    """Gateway tokens for the load devices, registered the way ``classtrace devices add`` does."""
    from classtrace.v1 import events_pb2 as pb
    from producers.registry import register_devices

    wanted = [(d.school_id, d.classroom_id, d.device_id, pb.DEVICE_KIND_GATEWAY_SIM) for d in devices]
    registered = register_devices(
        endpoints.kafka_bootstrap,
        endpoints.kafka_options,
        wanted,
        data_dir=endpoints.registry_dir,
        record_key=endpoints.record_key,
    )
    tokens = {reg.device_id: token for token, reg in registered}
    # The gateway applies registrations in order: once the last token works, all do.
    probe = {
        "Authorization": f"Bearer {tokens[devices[-1].device_id]}",
        "Content-Type": "application/x-protobuf",
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                httpx.post(
                    endpoints.gateway_url + "/v1/events", content=b"", headers=probe, timeout=5
                ).status_code
                == 200
            ):
                return tokens
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ClasstraceError(
        f"the gateway at {endpoints.gateway_url} did not accept new device tokens within 30 s"
    )


class _Sampler(threading.Thread):
    """Counts this run's rows every second (non-FINAL: cheap, and only the rate matters)."""

    def __init__(self, query: Query, school: str) -> None:
        super().__init__(name="landed-sampler", daemon=True)
        self.query, self.school = query, school
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                rows = self.query(
                    "SELECT count() FROM classtrace.events WHERE school_id = {s:String}", {"s": self.school}
                )
                self.samples.append((time.time(), int(rows[0][0])))
            except Exception as exc:  # a slow query must not end the test
                logger.debug("landed sampler: %s", exc)
            self.stop.wait(1.0)


def _locust(plan: LoadTestPlan, config_path: Path, csv_prefix: Path, quiet: bool) -> int:
    user = "GatewayUser" if plan.target == "gateway" else "KafkaUser"
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(plan.users), "-r", str(plan.spawn_rate), "-t", f"{plan.duration_s}s",
        "--stop-timeout", "15", "--csv", str(csv_prefix), "--csv-full-history",
        "--loglevel", "WARNING", "--only-summary", user,
    ]  # fmt: skip
    env = {
        **os.environ,
        "CLASSTRACE_LOADTEST_CONFIG": str(config_path),
        "PYTHONPATH": str(LOCUSTFILE.parents[1]),
    }
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.run(argv, env=env, stdout=out, stderr=out, timeout=plan.duration_s + 120, check=False)
    return proc.returncode


def _history(csv_path: Path, t0: float) -> dict[str, list[tuple[float, float]]]:
    """Per-second aggregated request rate and latency percentiles from Locust's history CSV."""
    series: dict[str, list[tuple[float, float]]] = {k: [] for k in ("rps", "p50", "p95", "p99")}
    try:
        with csv_path.open() as f:
            for row in csv.DictReader(f):
                if row.get("Name") != "Aggregated":
                    continue
                t = float(row["Timestamp"]) - t0
                series["rps"].append((t, float(row["Requests/s"] or 0)))
                for key, col in (("p50", "50%"), ("p95", "95%"), ("p99", "99%")):
                    value = row.get(col, "N/A")
                    if value not in ("N/A", "", None):
                        series[key].append((t, float(value)))
    except OSError:
        logger.warning("no Locust history at %s", csv_path)
    return series


def _landed_rate(samples: list[tuple[float, int]], t0: float) -> list[tuple[float, float]]:
    return [(b[0] - t0, (b[1] - a[1]) / (b[0] - a[0])) for a, b in itertools.pairwise(samples) if b[0] > a[0]]


def _drain(query: Query, school: str, accepted: int, timeout: float) -> tuple[int, int, float]:
    """Wait until this run's distinct rows reach ``accepted`` or stop growing for 20 s."""
    sql = "SELECT count(), uniqExact(event_id) FROM classtrace.events FINAL WHERE school_id = {s:String}"
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while True:
        count, distinct = (int(v) for v in query(sql, {"s": school})[0])
        now = time.monotonic()
        if distinct != last:
            last, still_since = distinct, now
        if distinct >= accepted or now - still_since > 20 or now > deadline:
            return count, distinct, time.time()
        time.sleep(1.0)


def run_loadtest(
    plan: LoadTestPlan,
    endpoints: Endpoints,
    query: Query,
    out_dir: Path,
    *,
    quiet: bool = False,
    stack_pid: int | None = None,
    faults: FaultPlan | None = None,
) -> dict[str, Any]:
    """Run, drain, reconcile; returns the report (also written as JSON and HTML under out_dir).

    ``stack_pid``: the pid of a local ``classtrace up``, whose processes' CPU time the report
    then breaks down by role (:mod:`loadtests.cpu`). ``faults``: inject them into that stack
    during the load (:mod:`loadtests.faults`); users then retry failed requests, lost counts
    acknowledged events by id, and the lesson summaries are compared to a control replay.
    """
    if faults is not None and (stack_pid is None or plan.target != "gateway"):
        raise ClasstraceError("--faults needs a local `classtrace up` and --target gateway")
    run = f"{int(time.time() * 1000) & 0xFFFFFFFF:08x}"
    school = f"lt-{run}"
    devices = load_devices(run, plan.users)
    tokens = _register(devices, endpoints) if plan.target == "gateway" else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f"loadtest-{run}"
    work.mkdir()
    config = work / "config.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # holds device tokens
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "devices": [{**asdict(d), "token": tokens.get(d.device_id, "")} for d in devices],
                "gateway_url": endpoints.gateway_url,
                "kafka_bootstrap": endpoints.kafka_bootstrap,
                "kafka_options": endpoints.kafka_options,
                "record_key": ",".join(k.hex() for k in endpoints.record_key.keys)
                if endpoints.record_key
                else "",
                "batch_size": plan.batch_size,
                "result_path": str(work / "tally.json"),
                "retry": faults is not None,
            },
            f,
        )
    sampler = _Sampler(query, school)
    sampler.start()
    cpu_before = cpu.snapshot(stack_pid) if stack_pid else None
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    injector = _start_faults(faults, endpoints, stack_pid, sampler, plan.duration_s, t0)
    try:
        code = _locust(plan, config, work / "locust", quiet)
    finally:
        config.unlink()  # the tokens are not needed any more
        if injector is not None:
            injector.stop.set()
            injector.join(120)  # a fault in progress finishes its recovery
    t_load_end = time.time()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    tally = json.loads((work / "tally.json").read_text()) if (work / "tally.json").exists() else {}
    sent = int(tally.get("acked", 0)) + int(tally.get("failed", 0))
    accepted = int(tally.get("acked", 0)) - int(tally.get("rejected", 0))
    count, landed, t_drained = _drain(query, school, accepted, plan.drain_timeout_s)
    cpu_after = cpu.snapshot(stack_pid) if stack_pid else None
    sampler.stop.set()
    sampler.join(5)
    hist = _history(work / "locust_stats_history.csv", t0)
    unacked_landed = _landed_unacknowledged(query, run, tally) if faults is not None else None
    # Under faults, landed-but-unacknowledged events must not hide lost acknowledged ones.
    lost = max(0, accepted - (landed - (unacked_landed or 0)))
    report: dict[str, Any] = {
        "run": run,
        "school_id": school,
        "target": plan.target,
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "duration_s": plan.duration_s,
        "batch_size": plan.batch_size,
        "locust_exit_code": code,
        "requests": int(tally.get("requests", 0)),
        "sent": sent,
        "accepted": accepted,
        "rejected": int(tally.get("rejected", 0)),
        "failed": int(tally.get("failed", 0)),
        "landed": landed,
        "rows_final": count,
        "lost": lost,
        "duplicated": count - landed,
        "unacknowledged_but_landed": max(0, landed - accepted),
        "ingest_events_per_s": accepted / max(1e-9, t_load_end - t0),
        "sustained_events_per_s": landed / max(1e-9, t_drained - t0),
        "drain_s": t_drained - t_load_end,
        "latency_p50_ms": _last(hist["p50"]),
        "latency_p95_ms": _last(hist["p95"]),
        "latency_p99_ms": _last(hist["p99"]),
        "timeline": {
            "sent_events_per_s": [(t, v * plan.batch_size) for t, v in hist["rps"]],
            "landed_events_per_s": _landed_rate(sampler.samples, t0),
            "latency_p50_ms": hist["p50"],
            "latency_p95_ms": hist["p95"],
            "latency_p99_ms": hist["p99"],
        },
    }
    report["cpu"] = _cpu_report(cpu_before, cpu_after, locust_cpu, landed, t_drained - t0)
    report["verdict"] = "PASS" if lost == 0 and report["duplicated"] == 0 and sent > 0 else "FAIL"
    if injector is not None:
        _fault_report(report, injector, tally, unacked_landed, query, endpoints)
    (out_dir / f"loadtest-{run}.json").write_text(json.dumps(report, indent=1))
    (out_dir / f"loadtest-{run}.html").write_text(render_html(report), encoding="utf-8")
    return report


def _fault_report(
    report: dict[str, Any],
    injector: Injector,
    tally: Mapping[str, Any],
    unacked_landed: int | None,
    query: Query,
    endpoints: Endpoints,
) -> None:
    """Adds the faults, the retries and the summary comparison; unequal summaries fail the run."""
    report["unacknowledged_but_landed"] = unacked_landed
    report["retries"] = int(tally.get("retries", 0))
    report["faults"] = injector.summary()
    report["summaries"] = _compare_summaries(query, endpoints, report["school_id"])
    if not report["summaries"]["equal"]:
        report["verdict"] = "FAIL"


def _start_faults(
    faults: FaultPlan | None,
    endpoints: Endpoints,
    stack_pid: int | None,
    sampler: _Sampler,
    duration_s: float,
    t0: float,
) -> Injector | None:
    if faults is None or stack_pid is None:
        return None
    probe = StackProbe(
        stack_pid,
        endpoints.gateway_url,
        landed=lambda: sampler.samples[-1][1] if sampler.samples else 0,
        worker_committed=_committed_probe(endpoints),
    )
    injector = Injector(faults, probe, duration_s, t0)
    injector.start()
    return injector


def _committed_probe(endpoints: Endpoints) -> Callable[[], int]:
    """Total committed offset of the worker's group on the events topic (-1 when unreadable)."""
    from classtrace.kafka import TopicPartition, make_consumer
    from classtrace.topics import EVENTS

    consumer = make_consumer(endpoints.kafka_bootstrap, "classtrace-worker", endpoints.kafka_options)
    lock = threading.Lock()

    def committed() -> int:
        with lock:
            try:
                parts = consumer.list_topics(EVENTS, timeout=5).topics[EVENTS].partitions
                tps = consumer.committed([TopicPartition(EVENTS, p) for p in parts], timeout=5)
            except Exception as exc:  # the broker may be paused or restarting
                logger.debug("worker offsets: %s", exc)
                return -1
            return sum(max(tp.offset, 0) for tp in tps)

    return committed


def _landed_unacknowledged(query: Query, run: str, tally: Mapping[str, Any]) -> int:
    """Distinct landed events of the run whose counters no 200 acknowledged (the gaps between a
    device's acknowledged ranges, up to what it sent): the ids of a device sort by counter."""
    gaps: list[tuple[str, str]] = []
    acked = tally.get("acked_ranges", {})
    for device, upto in tally.get("sent_upto", {}).items():
        prefix = f"{run}-{int(device):04x}-4000-8000-"
        edge = 0
        for first, last in [*acked.get(str(device), []), [int(upto) + 1, int(upto) + 1]]:
            if first > edge + 1:
                gaps.append((f"{prefix}{edge + 1:012x}", f"{prefix}{first - 1:012x}"))
            edge = max(edge, last)
    total = 0
    for i in range(0, len(gaps), 100):
        where = " OR ".join(f"(id BETWEEN '{lo}' AND '{hi}')" for lo, hi in gaps[i : i + 100])
        rows = query(
            "SELECT uniqExact(event_id) FROM (SELECT event_id, toString(event_id) AS id "
            f"FROM classtrace.events FINAL WHERE school_id = {{s:String}}) WHERE {where}",
            {"s": f"lt-{run}"},
        )
        total += int(rows[0][0])
    return total


def _compare_summaries(query: Query, endpoints: Endpoints, school: str) -> dict[str, Any]:
    """``lesson_summary FINAL`` of the faulted stack against the control replay (loadtests/control.py)."""
    from classtrace.kafka import make_consumer
    from classtrace.topics import EVENTS
    from loadtests.control import control_summaries, stack_summaries, summaries_settled
    from loadtests.soak import group_lag

    group = make_consumer(endpoints.kafka_bootstrap, "classtrace-worker", endpoints.kafka_options)
    try:
        parts = len(group.list_topics(EVENTS, timeout=10).topics[EVENTS].partitions)
        settled = summaries_settled(query, school, lambda: group_lag(group, EVENTS, parts))
    finally:
        group.close()
    stack = stack_summaries(query, school)
    control, records = control_summaries(
        endpoints.kafka_bootstrap, endpoints.kafka_options, school, endpoints.record_key
    )
    differing = sorted(k for k in stack.keys() | control.keys() if stack.get(k) != control.get(k))
    return {
        "equal": not differing and bool(control),
        "settled": settled,
        "lessons": len(control),
        "records_replayed": records,
        "differing": [{"lesson": k, "stack": stack.get(k), "control": control.get(k)} for k in differing[:5]],
        "differing_count": len(differing),
    }


def _cpu_report(
    before: cpu.CpuSnapshot | None,
    after: cpu.CpuSnapshot | None,
    locust_cpu_s: float,
    landed: int,
    window_s: float,
) -> dict[str, Any]:
    """CPU seconds and CPU-µs per landed event, by role, from load start to drained."""
    roles = cpu.usage(before, after) if before is not None and after is not None else {}
    roles["locust"] = locust_cpu_s
    per_event = {role: seconds * 1e6 / landed if landed else 0.0 for role, seconds in roles.items()}
    return {
        "window_s": window_s,
        "stack_measured": before is not None and after is not None,
        "cpu_s": roles,
        "us_per_event": per_event,
        "total_us_per_event": sum(per_event.values()),
    }


def _last(series: list[tuple[float, float]]) -> float:
    """The cumulative percentile Locust reports last (its history percentiles are cumulative)."""
    return series[-1][1] if series else 0.0
