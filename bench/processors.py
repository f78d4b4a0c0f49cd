"""Stream-processing benchmark: the classtrace worker vs the limit and vs the peer, same run.

Pre-produces ≥ 200k events as EventBatch records of 100 for 500 classrooms (key = school_id/classroom_id)
on an embedded Tansu broker, then measures events/s over the same records of

  (a) the limit: a plain confluent-kafka consume + decode + dict-aggregate loop;
  (b) the peer: quix-streams with a stateful per-record aggregation (``state.set`` per record);
  (c) ``classtrace worker`` (Faust) in its own process, all metrics of docs/DESIGN.md §7;
  (d) the Faust floor: the worker's own app and settings with an agent that only decodes each
      record — what any Faust worker pays before doing anything with an event.

(a) and (b) read 2–4 protobuf fields per event; (c) decodes every event (events.v1 is trusted:
docs/DESIGN.md §9), deduplicates it twice (lesson and window), computes every metric of
docs/DESIGN.md §7 and writes changelogs, all in Python. (d) shows what Faust itself leaves (its
own record delivery and ``take_events`` batches, stream_processors/batching.py); the last line
sets it against the limit.

Each rate is first record handled → last record done (group joins and start-up excluded). The
four run back to back in each of ``--rounds`` rounds (3), every round over the same records with
fresh consumer groups; the figures printed last are medians over the rounds — of the rates, and
of each round's ratios to its own limit (a neighbour's load moves a lone 0.5 s limit run by
±40 %). Then
it measures end-to-end lag at 10k events/s: event produced → a metric on classtrace.metrics.v1
that counts it (a window's ``events`` point reaching the record's cumulative count).

    .venv/bin/pip install 'quixstreams>=3,<4'   # bench-only extra
    .venv/bin/python bench/processors.py [--events 200000] [--rounds 3] [--lag-seconds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classtrace.broker import EmbeddedBroker
from classtrace.identity import room_key
from classtrace.kafka import (
    GROUP_TIMINGS,
    Consumer,
    TopicPartition,
    ensure_topics,
    make_admin,
    make_producer,
)
from classtrace.topics import EVENTS, METRICS
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb

PARTITIONS = 4
CLASSROOMS = 500
PER_RECORD = 100
LT, CO = pb.LearningTrace, pb.ClassObservation


# --- data -----------------------------------------------------------------------------------------


def make_records(n_events: int, now_ms: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """EventBatch records of 100 events, round-robin over 500 classrooms, lessons running."""
    seqs: dict[str, int] = defaultdict(int)
    students = ["ps_" + format(rng.getrandbits(128), "032x") for _ in range(40)]
    records = []
    n_records = n_events // PER_RECORD
    span = 300_000  # events of the last 5 minutes: inside the window retention
    for r in range(n_records):
        room = f"room-{r % CLASSROOMS:04d}"
        lesson = f"{room}-l1"
        batch = pb.EventBatch()
        base = now_ms - span + (r // CLASSROOMS) * (span // max(1, n_records // CLASSROOMS))
        for i in range(PER_RECORD):
            ms = base + i * 100
            kind = i % 10
            ev = batch.events.add()
            ev.event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            ev.school_id, ev.classroom_id, ev.lesson_id = "sch-0001", room, lesson
            ev.occurred_at.seconds, ev.occurred_at.nanos = ms // 1000, (ms % 1000) * 1_000_000
            if r < CLASSROOMS and i == 0:
                ev.device_id, ev.device_kind = f"{room}-app", 5
                ev.lesson.CopyFrom(pb.LessonLifecycle(phase=1, teacher_id="t-1", subject="math", enrolled=40))
            elif kind < 4:
                ev.device_id, ev.device_kind = f"{room}-cam", 1
                ev.observation.CopyFrom(
                    CO(present=40, attentive=rng.randint(20, 40),
                       counts=[CO.BehaviorCount(behavior=1, count=rng.randint(0, 5))])
                )  # fmt: skip
            elif kind == 4:
                ev.device_id, ev.device_kind = f"{room}-cam", 1
                ev.teaching.CopyFrom(pb.TeachingBehavior(kind=rng.randint(1, 9), duration_ms=20_000))
            elif kind < 9:
                ev.device_id, ev.device_kind = f"{room}-tab{i % 3}", 3
                ev.trace.CopyFrom(
                    LT(student_id=rng.choice(students), verb=1, item_id=f"q{rng.randint(1, 9)}")
                )
                ev.trace.correct = rng.random() < 0.7
            else:
                ev.device_id, ev.device_kind = f"{room}-tab{i % 3}", 3
                ev.heartbeat.CopyFrom(pb.DeviceHeartbeat(battery_pct=90, interval_s=30))
            seqs[ev.device_id] += 1
            ev.seq = seqs[ev.device_id]
        records.append((room_key("sch-0001", room).encode(), batch.SerializeToString()))
    return records


def produce(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in records:
        while True:
            try:
                producer.produce(EVENTS, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


# --- (a) the limit --------------------------------------------------------------------------------


def plain_loop(bootstrap: str, n_records: int) -> float:
    parts = make_admin(bootstrap).list_topics(EVENTS, timeout=10).topics[EVENTS].partitions
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-plain",
                         "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})  # fmt: skip
    consumer.assign([TopicPartition(EVENTS, p, 0) for p in parts])
    counts: dict[tuple[str, str], int] = defaultdict(int)
    attention: dict[str, float] = defaultdict(float)
    seen = events = 0
    first = 0.0
    while seen < n_records:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                continue
            if not first:
                first = time.perf_counter()
            batch = pb.EventBatch.FromString(msg.value())
            for ev in batch.events:
                payload = ev.WhichOneof("payload")
                counts[(ev.lesson_id, payload or "")] += 1
                if payload == "observation" and ev.observation.present:
                    attention[ev.lesson_id] += ev.observation.attentive / ev.observation.present
                events += 1
            seen += 1
    elapsed = time.perf_counter() - first
    consumer.close()
    return events / elapsed


# --- (b) the peer ---------------------------------------------------------------------------------


def quix(bootstrap: str, n_records: int, state_dir: Path) -> float:
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        state_dir=str(state_dir),
        consumer_extra_config={**GROUP_TIMINGS, "fetch.queue.backoff.ms": 10},
    )
    topic = app.topic(EVENTS, value_deserializer="bytes", key_deserializer="bytes")
    sdf = app.dataframe(topic)
    marks = {"first": 0.0, "last": 0.0, "records": 0, "events": 0}

    def aggregate(value: bytes, state) -> None:  # type: ignore[no-untyped-def]
        if not marks["first"]:
            marks["first"] = time.perf_counter()
        batch = pb.EventBatch.FromString(value)
        counts = state.get("counts", None) or {}
        att = state.get("attention", 0.0)
        for ev in batch.events:
            payload = ev.WhichOneof("payload") or ""
            counts[payload] = counts.get(payload, 0) + 1
            if payload == "observation" and ev.observation.present:
                att += ev.observation.attentive / ev.observation.present
        state.set("counts", counts)
        state.set("attention", att)
        marks["events"] += len(batch.events)
        marks["records"] += 1
        marks["last"] = time.perf_counter()

    sdf.update(aggregate, stateful=True)
    app.run(sdf, count=n_records, timeout=120)
    return marks["events"] / (marks["last"] - marks["first"])


# --- (d) the Faust floor -------------------------------------------------------------------------


def faust_floor_worker(bootstrap: str, n_records: int, data_dir: str) -> None:
    """Run (in a subprocess) the worker's Faust app with a decode-only agent; print its rate."""
    from stream_processors.app import WorkerConfig, build_app

    app_id = f"bench-faust-floor-{Path(data_dir).name}"  # a group of its own per round
    config = WorkerConfig(bootstrap, PARTITIONS, Path(data_dir), app_id=app_id)
    app = build_app(config)
    marks = {"first": 0.0, "records": 0, "events": 0}

    def mark_first(value: Any) -> Any:  # as the worker marks it: the first record in
        if not marks["first"]:
            marks["first"] = time.time()
        return value

    async def decode_only(stream: Any) -> None:
        stream.add_processor(mark_first)
        batches = stream.take_batches(config.max_batch_records, config.flush_interval_s)
        async for events in batches:
            for event in events:
                marks["events"] += len(pb.EventBatch.FromString(event.message.value).events)
            marks["records"] += len(events)
            if marks["records"] >= n_records:
                rate = marks["events"] / (time.time() - marks["first"])
                print(f"FAUST-FLOOR {rate:.0f}", file=sys.stderr, flush=True)
                os._exit(0)  # a bench subprocess: no shutdown to wait for

    app.agent(app.classtrace_topics["events"], name=app_id)(decode_only)  # type: ignore[attr-defined]
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def faust_floor(bootstrap: str, n_records: int, tmp: Path, round_no: int) -> float:
    data_dir = str(tmp / f"floor{round_no}")
    argv = [sys.executable, __file__, "--faust-floor", bootstrap, str(n_records), data_dir]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    found = re.search(r"FAUST-FLOOR (\d+)", done.stderr)
    if not found:
        raise SystemExit("the Faust floor run printed no rate:\n" + done.stderr[-3000:])
    return float(found[1])


# --- (c) classtrace worker -----------------------------------------------------------------------


def start_worker(bootstrap: str, data_dir: Path, app_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLASSTRACE_KAFKA_BOOTSTRAP": bootstrap, "CLASSTRACE_DATA_DIR": str(data_dir),
           "CLASSTRACE_PARTITIONS": str(PARTITIONS)}  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "classtrace.cli", "worker", "--app-id", app_id],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes], log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    return log.read_text(errors="replace")


def metrics_consumer(bootstrap: str) -> Consumer:
    """A reader of classtrace.metrics.v1 from its current end: an earlier round's points are not
    this round's."""
    parts = make_admin(bootstrap).list_topics(METRICS, timeout=10).topics[METRICS].partitions
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-metrics",
                         "enable.auto.commit": False, "fetch.queue.backoff.ms": 5})  # fmt: skip
    ends = [consumer.get_watermark_offsets(TopicPartition(METRICS, p), timeout=10)[1] for p in parts]
    consumer.assign([TopicPartition(METRICS, p, end) for p, end in zip(parts, ends, strict=True)])
    return consumer


def worker_rate(bootstrap: str, n_events: int, tmp: Path, round_no: int) -> float:
    log = tmp / f"worker-throughput-{round_no}.log"
    proc = start_worker(bootstrap, tmp / f"w{round_no}", f"bench-throughput-{round_no}", log)
    consumer = metrics_consumer(bootstrap)
    latest: dict[tuple[str, int], float] = {}
    deadline = time.monotonic() + 300
    while sum(latest.values()) < n_events:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("worker did not count every event:\n" + stop_worker(proc, log)[-3000:])
        for msg in consumer.consume(1000, 0.5):
            if not msg.error():
                for p in ppb.MetricBatch.FromString(msg.value()).points:
                    if p.metric == "events":
                        latest[(p.classroom_id, p.window_start.seconds)] = p.value
    consumer.close()
    output = stop_worker(proc, log)
    found = re.search(r"events=(\d+) .*first_record_at=([\d.]+) last_batch_at=([\d.]+)", output)
    if not found:
        raise SystemExit("no stats line in the worker log:\n" + output[-3000:])
    events, first, last = int(found[1]), float(found[2]), float(found[3])
    return events / (last - first)


def _lags(
    sent: list[tuple[float, str, int, int]], received: list[tuple[float, str, int, float]]
) -> list[float]:
    """Each sent record's delay until a window point counted it (inf: never)."""
    first_seen: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for t, room, window, value in received:
        first_seen[(room, window)].append((t, value))
    lags = []
    for t_sent, room, window, count in sent:
        hits = [t for t, v in first_seen[(room, window)] if v >= count]
        lags.append((min(hits) - t_sent) if hits else float("inf"))
    return lags


def lag(bootstrap: str, seconds: float, rate: int, tmp: Path) -> list[float]:
    """Produce ``rate`` events/s (records of 100) and time each record until a metric counts it."""
    log = tmp / "worker-lag.log"
    proc = start_worker(bootstrap, tmp / "w2", "bench-lag", log)
    consumer = metrics_consumer(bootstrap)
    producer = make_producer(bootstrap)
    rng = random.Random(5)
    # warm-up: wait until the worker is joined and answering
    warm = make_records(PER_RECORD, int(time.time() * 1000), rng)[0]
    producer.produce(EVENTS, key=warm[0], value=warm[1])
    producer.flush(10)
    received: list[tuple[float, str, int, float]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for msg in consumer.consume(1000, 0.1):
                if not msg.error():
                    t = time.time()
                    for p in ppb.MetricBatch.FromString(msg.value()).points:
                        if p.metric == "events":
                            received.append((t, p.classroom_id, p.window_start.seconds, p.value))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not received:
        if proc.poll() is not None:
            raise SystemExit(stop_worker(proc, log)[-3000:])
        time.sleep(0.1)
    sent: list[tuple[float, str, int, int]] = []
    cumulative: dict[tuple[str, int], int] = defaultdict(int)
    seqs: dict[str, int] = defaultdict(int)
    per_second = rate // PER_RECORD
    start = time.time()
    for k in range(int(seconds * per_second)):
        due = start + k / per_second
        while (now := time.time()) < due:
            time.sleep(min(0.002, due - now))
        room = f"lag-{k % CLASSROOMS:04d}"
        now_ms = int(now * 1000)
        batch = pb.EventBatch()
        for _ in range(PER_RECORD):
            ev = batch.events.add(event_id=str(uuid.uuid4()), school_id="sch-0001", classroom_id=room,
                                  device_id=f"{room}-cam", device_kind=1, lesson_id=f"{room}-l")  # fmt: skip
            ev.occurred_at.seconds, ev.occurred_at.nanos = now_ms // 1000, (now_ms % 1000) * 1_000_000
            seqs[room] += 1
            ev.seq = seqs[room]
            ev.observation.present, ev.observation.attentive = 40, 30
        window = now_ms // 1000 - (now_ms // 1000) % 10
        cumulative[(room, window)] += PER_RECORD
        producer.produce(EVENTS, key=room_key("sch-0001", room).encode(), value=batch.SerializeToString())
        producer.poll(0)
        sent.append((time.time(), room, window, cumulative[(room, window)]))
    producer.flush(10)
    time.sleep(3)
    stop.set()
    reader.join()
    consumer.close()
    stop_worker(proc, log)
    return _lags(sent, received)


def _round(bootstrap: str, n_events: int, tmp: Path, k: int) -> dict[str, float]:
    """(a)–(d) once, back to back, over the same records: the ratios of one round share a moment
    of the machine's load."""
    n_records = n_events // PER_RECORD
    out = {"limit": plain_loop(bootstrap, n_records)}
    try:
        out["peer"] = quix(bootstrap, n_records, tmp / f"quix{k}")
    except ImportError:
        out["peer"] = 0.0
    out["worker"] = worker_rate(bootstrap, n_events, tmp, k)
    out["floor"] = faust_floor(bootstrap, n_records, tmp, k)
    limit, peer, worker, floor = out["limit"], out["peer"], out["worker"], out["floor"]
    quix_part = f"quix-streams {peer:,.0f} ({peer / limit:.2f})" if peer else "no quix-streams"
    print(f"round {k}: limit {limit:,.0f}, {quix_part}, worker {worker:,.0f} ({worker / limit:.2f}), "
          f"Faust floor {floor:,.0f} ({floor / limit:.2f}) events/s")  # fmt: skip
    return out


def _report(rounds: list[dict[str, float]]) -> None:
    """Medians over the rounds: of each rate, and of each round's ratio to its own limit."""

    def rate(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    def ratio(name: str, to: str = "limit") -> float:
        return statistics.median(r[name] / r[to] for r in rounds)

    limit, peer, worker, floor = rate("limit"), rate("peer"), rate("worker"), rate("floor")
    print(f"medians of {len(rounds)} round(s):")
    print(f"(a) plain confluent-kafka loop : {limit:>10,.0f} events/s  (the limit)")
    if peer:
        print(f"(b) quix-streams stateful      : {peer:>10,.0f} events/s  {ratio('peer'):.2f} of the limit")
    else:
        print("(b) quix-streams not installed: pip install 'quixstreams>=3,<4'")
    ratio_peer = f", {ratio('worker', 'peer'):.2f} of quix-streams" if peer else ""
    print(f"(c) classtrace worker (Faust)  : {worker:>10,.0f} events/s  "
          f"{ratio('worker'):.2f} of the limit{ratio_peer}")  # fmt: skip
    print(f"(d) Faust floor (decode only)  : {floor:>10,.0f} events/s  {ratio('floor'):.2f} of the limit")
    print(f"    per event: worker {1e6 / worker:.1f} µs, Faust floor {1e6 / floor:.1f} µs, "
          f"limit {1e6 / limit:.1f} µs; 0.5 of the limit leaves "
          f"{2e6 / limit - 1e6 / floor:.1f} µs per event beyond the floor")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--faust-floor", nargs=3, metavar=("BOOTSTRAP", "RECORDS", "DIR"), help=argparse.SUPPRESS
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a)–(d); medians reported")
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--lag-rate", type=int, default=10_000, help="events/s for the lag run")
    args = parser.parse_args()
    if args.faust_floor:
        faust_floor_worker(args.faust_floor[0], int(args.faust_floor[1]), args.faust_floor[2])
        return 0
    n_records = args.events // PER_RECORD
    tmp = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    try:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            records = make_records(args.events, int(time.time() * 1000), random.Random(1))
            t0 = time.perf_counter()
            produce(broker.bootstrap, records)
            print(f"pre-produced {args.events} events in {n_records} records for {CLASSROOMS} classrooms "
                  f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
            rounds = [_round(broker.bootstrap, args.events, tmp, k) for k in range(1, args.rounds + 1)]
            _report(rounds)
        if args.lag_seconds <= 0:
            return 0
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, PARTITIONS)
            lags = sorted(lag(broker.bootstrap, args.lag_seconds, args.lag_rate, tmp))
            lost = sum(1 for x in lags if x == float("inf"))

            def pct(q: float) -> float:
                return lags[min(len(lags) - 1, int(q * len(lags)))]

            print(f"end-to-end lag at {args.lag_rate:,} events/s over {len(lags)} records: "
                  f"p50 {pct(0.5) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
                  + (f", {lost} records never counted" if lost else ""))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
