"""The canary (issue 17): a raw student id and a name go in by every way in, and come out nowhere.

Against a real ``classtrace up`` (Tansu + chDB): the same raw id and name are sent as JSON and as
protobuf (rejected: not a pseudonym), hidden in an unknown field of an accepted event, in an
undecodable body and in a JSON body with an unknown field; given to the SDK's direct Kafka path
(the device pseudonymises it); and the simulator runs its own raw rosters. Then every topic is
read from offset 0, every String column of every table, every file under the data dir and every
log are scanned for all of them: zero hits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from classtrace.codec import batch_to_json, encode_batch, set_ts_now
from classtrace.kafka import TopicPartition, make_admin, make_consumer
from classtrace.settings import Settings
from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.tablet import roster
from smart_classroom_agents.runner import SimulationPlan, plan_classrooms
from tests.fixtures.stack import running_stack  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RAW_ID = "S2023011799"  # a student number, as a school's roster has it
NAME = "张三丰"
SCHOOL, ROOM, DEVICE = "sch-canary", "C101", "tab-canary"
PSEUDONYM = "ps_" + "ab" * 16
VIEWED = pb.LearningTrace.VERB_VIEWED


def classtrace(*args: str, data_dir: Path) -> str:
    argv = [sys.executable, "-m", "classtrace.cli", *args, "--data-dir", str(data_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def trace(student: str, extra: bytes = b"") -> pb.Event:
    event = pb.Event(
        event_id=str(uuid.uuid4()), school_id=SCHOOL, classroom_id=ROOM, device_id=DEVICE,
        device_kind=pb.DeviceKind.DEVICE_KIND_TABLET, seq=int(time.time_ns() // 1000),
    )  # fmt: skip
    set_ts_now(event.occurred_at)
    event.trace.CopyFrom(
        pb.LearningTrace(student_id=student, verb=pb.LearningTrace.VERB_VIEWED, item_id="q-1")
    )
    if extra:
        event.MergeFromString(extra)
    return event


def unknown_field(number: int, text: str) -> bytes:
    """A length-delimited field the schema does not have, carrying ``text``."""
    data = text.encode()
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def send_every_way(url: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    proto = {**auth, "Content-Type": "application/x-protobuf"}
    as_json = {**auth, "Content-Type": "application/json"}
    bad = [trace(RAW_ID), trace(NAME)]
    r = httpx.post(url, content=batch_to_json(pb.EventBatch(events=bad)), headers=as_json)
    assert r.status_code == 200 and len(r.json()["rejected"]) == 2
    r = httpx.post(url, content=encode_batch([trace(RAW_ID), trace(NAME)]), headers=proto)
    assert r.status_code == 200 and len(r.json()["rejected"]) == 2
    hidden = trace(PSEUDONYM, extra=unknown_field(99, f"{NAME} {RAW_ID}"))
    r = httpx.post(url, content=encode_batch([hidden]), headers=proto)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = httpx.post(url, content=b"\x0a\xff\x01" + f"{RAW_ID}{NAME}".encode(), headers=proto)
    assert r.status_code == 400
    body = json.dumps({"events": [{"student_name": NAME, "student_number": RAW_ID}]}).encode()
    assert httpx.post(url, content=body, headers=as_json).status_code == 400


def send_through_the_sdk_kafka_path(data_dir: Path, bootstrap: str) -> None:
    from classtrace.cli.stack import record_key
    from producers.sdk import EdgeProducer
    from producers.transport.kafka import KafkaTransport

    settings = Settings(data_dir=data_dir)
    key = classtrace("devices", "key", "--school", SCHOOL, data_dir=data_dir).strip().splitlines()[-1]
    transport = KafkaTransport(bootstrap, record_key=record_key(settings))
    with EdgeProducer(SCHOOL, ROOM, transport, spool=data_dir / "canary-spool.db", pseudonym_key=key) as edge:
        event = edge.event(DEVICE, pb.DeviceKind.DEVICE_KIND_TABLET)
        event.trace.CopyFrom(
            pb.LearningTrace(student_id=RAW_ID, verb=pb.LearningTrace.VERB_VIEWED, item_id="q-2")
        )
        edge.send_events([event])
        edge.flush()
        assert edge.stats().delivered == 1


def simulator_raw_ids(seed: int, classrooms: int) -> set[str]:
    """The raw roster ids the simulated tablets pseudonymise (the simulator's own 'children')."""
    import random

    _start, rooms = plan_classrooms(SimulationPlan(classrooms, 1, seed, 0, 3, 1), int(time.time() * 1000))
    ids: set[str] = set()
    for room in rooms:
        for student in roster(room.school_id, room.classroom_id, room.enrolled, random.Random(0)):
            ids.add(student.raw_id)
    return ids


def test_a_raw_id_and_a_name_come_out_nowhere(running_stack):  # noqa: F811
    data_dir = running_stack.data_dir
    runtime = running_stack.runtime
    url = f"{runtime['gateway_url']}/v1/events"
    token = classtrace(
        "devices", "add", "--school", SCHOOL, "--classroom", ROOM, "--device", DEVICE, "--kind", "tablet",
        data_dir=data_dir,
    ).strip().splitlines()[-1]  # fmt: skip
    time.sleep(2)  # the gateway follows the registry
    send_every_way(url, token)
    send_through_the_sdk_kafka_path(data_dir, str(runtime["kafka_bootstrap"]))
    classtrace(
        "simulate", "--classrooms", "2", "--lessons", "1", "--lesson-minutes", "3", "--break-minutes", "1",
        "--speed", "0", "--seed", "5", "--quiet", data_dir=data_dir,
    )  # fmt: skip
    needles = {RAW_ID, NAME} | simulator_raw_ids(5, 2)
    assert len(needles) > 40

    # Wait until both accepted canary events and the simulated lessons are stored.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _count(f"SELECT count() AS n FROM classtrace.events WHERE school_id = '{SCHOOL}'", data_dir) >= 2:
            break
        time.sleep(1)
    time.sleep(5)  # the sink's and the worker's last batches

    bootstrap = str(runtime["kafka_bootstrap"])
    hits = _scan_topics(bootstrap, needles) + _scan_tables(data_dir, needles) + _scan_files(data_dir, needles)
    assert hits == []
    # The scanners do find what is there: the school id is in topics, tables and files alike.
    assert (
        _scan_topics(bootstrap, {SCHOOL})
        and _scan_tables(data_dir, {SCHOOL})
        and _scan_files(data_dir, {SCHOOL})
    )


def _found(data: bytes, needles: set[str]) -> list[str]:
    return [n for n in needles if n.encode() in data]


def _scan_topics(bootstrap: str, needles: set[str]) -> list[str]:
    """Every record of every topic (changelogs included), key, value and headers, from offset 0."""
    metadata = make_admin(bootstrap).list_topics(timeout=10)
    hits: list[str] = []
    consumer = make_consumer(bootstrap, f"canary-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    try:
        for name, topic in metadata.topics.items():
            parts = [TopicPartition(name, p, 0) for p in topic.partitions]
            consumer.assign(parts)
            left = {p.partition for p in parts}
            deadline = time.monotonic() + 30
            while left and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    left.discard(msg.partition())
                    continue
                blob = (
                    (msg.key() or b"")
                    + (msg.value() or b"")
                    + b"".join(v or b"" for _k, v in msg.headers() or [])
                )
                hits += [f"topic {name}: {n}" for n in _found(blob, needles)]
    finally:
        consumer.close()
    return hits


def _scan_tables(data_dir: Path, needles: set[str]) -> list[str]:
    """Every String-typed column of every table of the classtrace database."""
    listed = classtrace(
        "query",
        "SELECT table, name FROM system.columns WHERE database = 'classtrace' AND type LIKE '%String%'",
        "--format", "json", data_dir=data_dir,
    )  # fmt: skip
    columns = [json.loads(line) for line in listed.splitlines() if line]
    assert columns
    quoted = ", ".join("'" + n.replace("'", "\\'") + "'" for n in sorted(needles))
    rows = []
    for start in range(0, len(columns), 8):  # a few columns per query: argv has a length limit
        counts = " UNION ALL ".join(
            f"SELECT '{c['table']}.{c['name']}' AS at, count() AS n FROM classtrace.`{c['table']}`"
            f" WHERE multiSearchAny(toString(`{c['name']}`), [{quoted}])"
            for c in columns[start : start + 8]
        )
        out = classtrace("query", counts, "--format", "json", data_dir=data_dir)
        rows += [json.loads(line) for line in out.splitlines() if line]
    assert len(rows) == len(columns)
    return [f"table {r['at']}" for r in rows if int(r["n"])]


def _count(sql: str, data_dir: Path) -> int:
    (row,) = [
        json.loads(line)
        for line in classtrace("query", sql, "--format", "json", data_dir=data_dir).splitlines()
        if line
    ]
    return int(row["n"])


def _scan_files(data_dir: Path, needles: set[str]) -> list[str]:
    """Every file under the data dir: logs, registries, spools, chDB's parts, simulations."""
    hits: list[str] = []
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            hits += [f"file {path.relative_to(data_dir)}: {n}" for n in _found(path.read_bytes(), needles)]
    return hits
