"""Benchmark of the ClickHouse sink (issue 5), on an embedded Tansu broker and a temp chDB.

Prints three figures:

1. **throughput ratio** — events/s landed by :class:`sinks.service.SinkService` over the same
   records as two bare loops written here, same run: (b) consume → decode → columnar insert
   through clickhouse-connect, issue 5's baseline (target ≥ 0.7); and, stricter, (a) consume →
   record bytes → one ``FORMAT ProtobufList`` insert per ``INSERT_ROWS`` events into
   ``events_ingest`` with the sink's insert settings: the sink's own path with no decode check,
   tokens or commits (target ≥ 0.8, issue 16). Each is timed twice, to the last row landed:
   from partition assignment, and from the first record read. The bare loops assign() their
   partitions at offset 0; the sink joins a consumer group (the ~3 s join is excluded from both
   clocks) and, once assigned, still looks up its committed offsets before its first fetch
   (~0.13 s on Tansu). That fixed start is a sixth of a 300k-event run; the second clock leaves
   it out of both sides;
2. **produced → visible p99** at a steady 10k events/s: each event's ``received_at`` is stamped
   when it is produced, ``ingested_at`` by ClickHouse when the row lands (target ≤ 5 s);
3. **analyst query latency** on 10M generated events: per-classroom per-minute aggregates.

Usage: ``.venv/bin/python bench/sink.py [--events 300000] [--rate 10000] [--seconds 30]
[--analyst-rows 10000000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classtrace.broker import EmbeddedBroker
from classtrace.clickhouse import chdb_url, connect, engine_dir, local_schema_settings
from classtrace.codec import set_ts_now
from classtrace.identity import room_key
from classtrace.kafka import TopicPartition, ensure_topics, make_consumer, make_producer
from classtrace.migrate import apply_migrations
from classtrace.schema import EVENT_INSERT_COLUMNS
from classtrace.topics import TopicSpec
from classtrace.v1 import events_pb2 as pb
from sinks.batcher import Batch, BatchPolicy, SinkTopics
from sinks.clickhouse_writer import INSERT_SETTINGS, TABLE_TYPES
from sinks.protobuf_events import INGEST_TABLE, RawEvents, ingest_settings
from sinks.service import SinkHooks, SinkService
from tests.helpers.sinkdata import event_batches

PARTITIONS = 4
EVENTS_PER_RECORD = 100
"""Every record this bench produces is an EventBatch of this many events."""
INSERT_ROWS = BatchPolicy().max_rows
"""The bare loops insert as many rows at once as the sink does by default (a fair comparison)."""


class Timing(NamedTuple):
    """One run: events landed, and when (perf_counter) it was assigned, read its first record, ended."""

    events: int
    assigned: float
    first: float
    end: float

    @property
    def from_assignment(self) -> float:
        return self.events / (self.end - self.assigned)

    @property
    def from_first_record(self) -> float:
        return self.events / (self.end - self.first)


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


# --- the bare loop ------------------------------------------------------------------------------

_COLS = list(EVENT_INSERT_COLUMNS)
_WIRE = [TABLE_TYPES["events"][c].replace("LowCardinality(String)", "String") for c in _COLS]
_DEFAULTS = {
    "lesson_phase": "", "teacher_id": "", "subject": "", "grade": "", "enrolled": 0, "teaching_kind": "",
    "duration_ms": 0, "confidence": 0.0, "present": 0, "attentive": 0, "behavior_counts": {},
    "student_id": "", "verb": "", "item_id": "", "knowledge_points": [], "correct": None, "score": 0.0,
    "latency_ms": 0, "context": "", "battery_pct": 0.0, "cpu_pct": 0.0, "spool_depth": 0, "firmware": "",
    "interval_s": 0,
}  # fmt: skip


def _ms(ts: object) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000  # type: ignore[attr-defined, no-any-return]


def _payloads(events: object, base: int, cols: dict[str, list[object]]) -> None:
    """The same flattening as the sink's, written plainly: the same rows must land."""
    for j, e in enumerate(events, base):  # type: ignore[call-overload, arg-type, var-annotated]
        kind = e.WhichOneof("payload")
        if kind == "observation":
            o = e.observation
            cols["present"][j], cols["attentive"][j] = o.present, o.attentive
            cols["behavior_counts"][j] = {
                pb.ClassObservation.Behavior.Name(c.behavior)[9:]: c.count for c in o.counts
            }
        elif kind == "trace":
            t = e.trace
            cols["student_id"][j], cols["verb"][j], cols["item_id"][j] = (
                t.student_id,
                pb.LearningTrace.Verb.Name(t.verb)[5:],
                t.item_id,
            )
            cols["knowledge_points"][j] = list(t.knowledge_points)
            cols["correct"][j] = t.correct if t.HasField("correct") else None
            cols["score"][j], cols["latency_ms"][j] = t.score, t.latency_ms
            cols["context"][j] = pb.LearningTrace.Context.Name(t.context)[8:]
        elif kind == "teaching":
            te = e.teaching
            cols["teaching_kind"][j] = pb.TeachingBehavior.Kind.Name(te.kind)[5:]
            cols["teacher_id"][j], cols["duration_ms"][j], cols["confidence"][j] = (
                te.teacher_id,
                te.duration_ms,
                te.confidence,
            )
        elif kind == "heartbeat":
            h = e.heartbeat
            cols["battery_pct"][j], cols["cpu_pct"][j], cols["spool_depth"][j] = (
                h.battery_pct,
                h.cpu_pct,
                h.spool_depth,
            )
            cols["firmware"][j], cols["interval_s"][j] = h.firmware, h.interval_s
        elif kind == "lesson":
            le = e.lesson
            cols["lesson_phase"][j] = pb.LessonLifecycle.Phase.Name(le.phase)[6:]
            cols["teacher_id"][j], cols["subject"][j], cols["grade"][j] = le.teacher_id, le.subject, le.grade
            cols["enrolled"][j] = le.enrolled


def bare_loop(bootstrap: str, topic: str, client: object, database: str, n_events: int) -> Timing:
    """Consume → decode → columnar insert, INSERT_ROWS per insert."""
    consumer = make_consumer(bootstrap, f"bench-bare-{database}", {})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    cols: dict[str, list[object]] = {c: [] for c in _COLS}
    landed = 0
    start = time.perf_counter()

    def flush() -> None:
        nonlocal landed
        rows = len(cols["event_id"])
        if not rows:
            return
        client.insert(  # type: ignore[attr-defined]
            "events", list(cols.values()), column_names=_COLS, database=database,
            column_type_names=_WIRE, column_oriented=True,
        )  # fmt: skip
        landed += rows
        for c in cols.values():
            c.clear()

    read = 0
    first = 0.0
    while read < n_events:
        messages = consumer.consume(500, 0.1)
        if messages and not first:
            first = time.perf_counter()
        for msg in messages:
            events = pb.EventBatch.FromString(msg.value()).events
            read += len(events)
            cols["event_id"].extend([e.event_id for e in events])
            cols["kind"].extend([e.WhichOneof("payload") for e in events])
            cols["school_id"].extend([e.school_id for e in events])
            cols["classroom_id"].extend([e.classroom_id for e in events])
            cols["device_id"].extend([e.device_id for e in events])
            cols["lesson_id"].extend([e.lesson_id for e in events])
            cols["occurred_at"].extend([_ms(e.occurred_at) for e in events])
            cols["received_at"].extend([_ms(e.received_at) for e in events])
            cols["seq"].extend([e.seq for e in events])
            cols["device_kind"].extend([pb.DeviceKind.Name(e.device_kind)[12:] for e in events])
            for name, default in _DEFAULTS.items():
                cols[name].extend([default] * len(events))
            _payloads(events, len(cols["event_id"]) - len(events), cols)
            if len(cols["event_id"]) >= INSERT_ROWS:
                flush()
    flush()
    end = time.perf_counter()
    consumer.close()
    return Timing(landed, start, first, end)


def bare_protobuf_loop(bootstrap: str, topic: str, client: object, database: str, n_events: int) -> Timing:
    """Consume → record bytes → ProtobufList insert, INSERT_ROWS per insert."""
    consumer = make_consumer(bootstrap, f"bench-bare-pb-{database}", {})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    parts: list[bytes] = []
    pending = landed = read = 0
    directory = engine_dir(client)
    schema = local_schema_settings(ingest_settings(), directory) if directory else ingest_settings()
    settings = {**INSERT_SETTINGS, **schema}  # the sink's own insert settings: a fair limit
    start = time.perf_counter()

    def flush() -> None:
        nonlocal landed, pending
        if not parts:
            return
        raw = RawEvents(parts=list(parts))
        client.raw_insert(  # type: ignore[attr-defined]
            f"{database}.{INGEST_TABLE}", None, raw.body(), settings=settings, fmt="ProtobufList"
        )
        landed += pending
        pending = 0
        parts.clear()

    first = 0.0
    while read < n_events:
        messages = consumer.consume(500, 0.1)
        if messages and not first:
            first = time.perf_counter()
        for msg in messages:
            read += EVENTS_PER_RECORD  # known, not decoded: this loop decodes nothing
            pending += EVENTS_PER_RECORD
            parts.append(msg.value())
            if pending >= INSERT_ROWS:
                flush()
    flush()
    end = time.perf_counter()
    consumer.close()
    return Timing(landed, start, first, end)


# --- the sink -----------------------------------------------------------------------------------


def sink_run(bootstrap: str, topics: SinkTopics, client: object, database: str, n_events: int) -> Timing:
    """The sink over the same records, timed to the insert that lands the last event.

    Its inserts are counted by its own ``after_insert`` hook, as the bare loops count theirs:
    polling ``count()`` meanwhile would queue behind (and hold up) the sink's inserts on the
    shared chDB client. The count is checked once, at the end.
    """
    landed = [0]
    done = threading.Event()
    end_at = [0.0]

    def after_insert(batch: Batch) -> None:
        landed[0] += len(batch.events)
        if landed[0] >= n_events and not done.is_set():
            end_at[0] = time.perf_counter()
            done.set()

    sink = SinkService(
        client,  # type: ignore[arg-type]
        bootstrap,
        {},
        database=database,
        group=f"bench-sink-{database}",
        topics=topics,
        hooks=SinkHooks(after_insert=after_insert),
    )
    sink.start()
    while not sink._state.assignment:  # exclude the group join (~3 s on Tansu) like assign() does
        time.sleep(0.01)
    start = time.perf_counter()
    while not sink._batch.records:  # the first record read (a batch fills for far longer than this)
        time.sleep(0.0005)
    first = time.perf_counter()
    if not done.wait(600):
        raise SystemExit(f"the sink landed {landed[0]:,} of {n_events:,} events in 600 s")
    end = end_at[0]
    sink.stop()
    found = int(client.command(f"SELECT count() FROM {database}.events"))  # type: ignore[attr-defined]
    if found < n_events:
        raise SystemExit(f"the sink reported {landed[0]:,} events inserted, ClickHouse holds {found:,}")
    return Timing(n_events, start, first, end)


def latency_run(
    bootstrap: str, topics: SinkTopics, client: object, database: str, rate: int, seconds: int
) -> dict[str, float]:
    sink = SinkService(client, bootstrap, {}, database=database, group="bench-latency", topics=topics)  # type: ignore[arg-type]
    sink.start()
    while not sink._state.assignment:
        time.sleep(0.01)
    producer = make_producer(bootstrap)
    per_record = 100
    records = [b for _, b in event_batches(rate * seconds, per_batch=per_record, seed=3)]
    interval = per_record / rate
    t0 = time.perf_counter()
    for i, batch in enumerate(records):
        due = t0 + i * interval
        while (delay := due - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.005))
        for e in batch.events:
            set_ts_now(e.received_at)
        first = batch.events[0]
        key = room_key(first.school_id, first.classroom_id).encode()
        producer.produce(topics.events, value=batch.SerializeToString(), key=key)
        producer.poll(0)
    producer.flush(30)
    total = len(records) * per_record
    deadline = time.monotonic() + 60
    while (
        int(client.command(f"SELECT count() FROM {database}.events")) < total  # type: ignore[attr-defined]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    sink.stop()
    row = client.query(  # type: ignore[attr-defined]
        f"SELECT count(), quantiles(0.5, 0.99, 1)(dateDiff('millisecond', received_at, ingested_at)) "
        f"FROM {database}.events"
    ).result_rows[0]
    return {"events": row[0], "p50_s": row[1][0] / 1000, "p99_s": row[1][1] / 1000, "max_s": row[1][2] / 1000}


# --- analyst queries ----------------------------------------------------------------------------


def analyst_run(client: object, database: str, rows: int) -> dict[str, float]:
    t = time.perf_counter()
    client.command(  # type: ignore[attr-defined]
        f"""INSERT INTO {database}.events (event_id, kind, school_id, classroom_id, device_id, lesson_id,
            occurred_at, received_at, seq, device_kind, present, attentive)
        SELECT generateUUIDv4(number), ['observation','trace','teaching','heartbeat'][number % 4 + 1],
            concat('s', toString(number % 20)),
            concat('s', toString(number % 20), '-c', toString(number % 400)),
            concat('d', toString(number % 2000)), concat('L', toString(intDiv(number, 20000))),
            now64(3) - toIntervalMillisecond(number * 6), now64(3), number, 'CAMERA', 40, number % 41
        FROM numbers({rows})""",
        settings={"max_partitions_per_insert_block": 1000},
    )
    made = time.perf_counter() - t
    queries = {
        "all classrooms x minute, 1 day": f"""SELECT classroom_id, toStartOfMinute(occurred_at) AS minute,
            count(),
            avgIf(attentive / present, kind = 'observation' AND present > 0)
            FROM {database}.events WHERE occurred_at >= now64(3) - INTERVAL 1 DAY
            GROUP BY classroom_id, minute FORMAT Null""",
        "all classrooms x minute, 1 day, FINAL": f"""SELECT classroom_id,
            toStartOfMinute(occurred_at) AS minute,
            count(), avgIf(attentive / present, kind = 'observation' AND present > 0)
            FROM {database}.events FINAL WHERE occurred_at >= now64(3) - INTERVAL 1 DAY
            GROUP BY classroom_id, minute FORMAT Null""",
        "one school, 1 hour x minute, FINAL": f"""SELECT classroom_id, toStartOfMinute(occurred_at) AS minute,
            count(), avgIf(attentive / present, kind = 'observation' AND present > 0)
            FROM {database}.events FINAL WHERE school_id = 's7' AND occurred_at >= now64(3) - INTERVAL 1 HOUR
            GROUP BY classroom_id, minute FORMAT Null""",
    }
    out = {"generate_s": made}
    for name, sql in queries.items():
        times = []
        for _ in range(3):
            t = time.perf_counter()
            client.raw_query(sql)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t)
        out[name] = sorted(times)[1]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--analyst-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="alternating bare/sink runs (best of each)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        client = connect(chdb_url(Path(tmp) / "chdb"), database="default")
        dbs = [f"bench_{k}_{i}" for i in range(args.repeats) for k in ("bare", "barepb", "sink")]
        for db in (*dbs, "bench_latency", "bench_analyst"):
            apply_migrations(client, db)
        names = {r: f"bench.{r}" for r in ("events", "metrics", "dl", "lat_events")}
        ensure_topics(broker.bootstrap, PARTITIONS, topics=[TopicSpec(n) for n in names.values()])
        batches = event_batches(args.events, per_batch=EVENTS_PER_RECORD)
        records = [(k, b.SerializeToString()) for k, b in batches]
        produce(broker.bootstrap, names["events"], records)
        print(f"produced {args.events} events in {len(records)} records on {PARTITIONS} partitions")

        topics = SinkTopics(names["events"], names["metrics"], names["dl"])
        # Alternated and repeated: the machine is shared, so load shifts between runs.
        bare: list[Timing] = []
        bare_pb: list[Timing] = []
        sink: list[Timing] = []
        for i in range(args.repeats):
            boot, events_topic = broker.bootstrap, names["events"]
            bare_pb.append(bare_protobuf_loop(boot, events_topic, client, f"bench_barepb_{i}", args.events))
            bare.append(bare_loop(boot, events_topic, client, f"bench_bare_{i}", args.events))
            sink.append(sink_run(broker.bootstrap, topics, client, f"bench_sink_{i}", args.events))
            a, b, c = bare_pb[-1], bare[-1], sink[-1]
            print(f"  run {i}: bare protobuf {a.from_assignment:,.0f}, bare columnar "
                  f"{b.from_assignment:,.0f}, sink {c.from_assignment:,.0f} events/s from assignment; "
                  f"{a.from_first_record:,.0f}, {b.from_first_record:,.0f}, "
                  f"{c.from_first_record:,.0f} from the first record")  # fmt: skip
        for clock in ("from_assignment", "from_first_record"):
            pb_rate, bare_rate, sink_rate = (max(getattr(t, clock) for t in r) for r in (bare_pb, bare, sink))
            print(f"timed {clock.replace('_', ' ')} (best of {args.repeats}):")
            print(f"  (a) bare protobuf loop : {pb_rate:10,.0f} events/s (no decode)")
            print(f"  (b) bare columnar loop : {bare_rate:10,.0f} events/s (baseline)")
            print(f"  sink                   : {sink_rate:10,.0f} events/s   ratio "
                  f"{sink_rate / bare_rate:.2f} of (b) (target >= 0.7), "
                  f"{sink_rate / pb_rate:.2f} of (a) (target >= 0.8)")  # fmt: skip

        lat_topics = SinkTopics(names["lat_events"], names["metrics"], names["dl"])
        lat = latency_run(broker.bootstrap, lat_topics, client, "bench_latency", args.rate, args.seconds)
        print(
            f"latency at {args.rate}/s for {args.seconds}s: {lat['events']} events, produced->visible "
            f"p50 {lat['p50_s']:.2f}s p99 {lat['p99_s']:.2f}s max {lat['max_s']:.2f}s (target p99 <= 5s)"
        )

        analyst = analyst_run(client, "bench_analyst", args.analyst_rows)
        print(f"analyst: generated {args.analyst_rows:,} events in {analyst.pop('generate_s'):.1f}s")
        for name, seconds in analyst.items():
            print(f"  {name:40s} {seconds * 1000:8.0f} ms (median of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
