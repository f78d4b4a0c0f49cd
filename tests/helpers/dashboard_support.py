"""Helpers of the dashboard tests: MetricBatch records that look like simulated classrooms, and a
uvicorn server on a thread for the integration and browser tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import uvicorn

from classtrace.broker import free_port
from classtrace.kafka import make_producer
from classtrace.v1 import events_pb2, pipeline_pb2

T0 = 1_790_000_000  # lesson start, epoch seconds
SUBJECTS = ("math", "chinese", "english", "physics")


def summary(classroom: str, school: str = "s1", lesson: str | None = None, **fields: Any):
    """A LessonSummary with sensible defaults; ``fields`` override."""
    s = pipeline_pb2.LessonSummary(
        lesson_id=lesson or f"L-{classroom}",
        school_id=school,
        classroom_id=classroom,
        teacher_id=f"t-{classroom}",
        subject="math",
        grade="7",
        st_samples=20,
        st_rt=0.5,
        st_ch=0.2,
        teaching_mode="mixed",
        attention_rate=0.8,
        participation_rate=0.5,
        answers=10,
        answer_accuracy=0.7,
        hand_raises=3,
        st_codes="TTTTSSTTSSSTTTTSSTTT",
        enrolled=40,
        version=1,
    )
    s.started_at.FromSeconds(fields.pop("started", T0))
    for key, value in fields.items():
        setattr(s, key, value)
    return s


def point(
    classroom: str,
    value: float,
    offset_s: int,
    school: str = "s1",
    lesson: str | None = None,
    metric: str = "attention_rate",
):
    p = pipeline_pb2.MetricUpdate(
        school_id=school,
        classroom_id=classroom,
        lesson_id=lesson or f"L-{classroom}",
        metric=metric,
        value=value,
    )
    p.window_start.FromSeconds(T0 + offset_s)
    p.window_end.FromSeconds(T0 + offset_s + 10)
    return p


def device(classroom: str, device_id: str, offline: bool = False, school: str = "s1", heartbeat: int = T0):
    d = pipeline_pb2.DeviceStatus(
        school_id=school,
        classroom_id=classroom,
        device_id=device_id,
        device_kind=events_pb2.DEVICE_KIND_CAMERA,
        interval_s=10,
        offline=offline,
        battery_pct=80,
    )
    d.last_heartbeat.FromSeconds(heartbeat)
    return d


def batch(summaries=(), points=(), devices=()) -> pipeline_pb2.MetricBatch:
    return pipeline_pb2.MetricBatch(summaries=list(summaries), points=list(points), devices=list(devices))


def classroom_batches(
    n: int, schools: Sequence[str] = ("s1", "s2", "s3")
) -> list[tuple[str, pipeline_pb2.MetricBatch]]:
    """(key, batch) per classroom: a lesson 10 minutes in, with an attention series and devices,
    spread over ``schools`` and the four teaching modes, like a simulator's first minutes."""
    modes = (("lecture", 0.8, 0.1), ("practice", 0.2, 0.15), ("dialogue", 0.5, 0.5), ("mixed", 0.5, 0.2))
    out = []
    for i in range(n):
        school = schools[i % len(schools)]
        room = f"{school}-r{i:03d}"
        mode, rt, ch = modes[i % 4]
        codes = "".join("T" if (k * 7 + i) % 10 < rt * 10 else "S" for k in range(20))
        s = summary(
            room,
            school,
            teaching_mode=mode,
            st_rt=rt,
            st_ch=ch,
            st_codes=codes,
            subject=SUBJECTS[i % len(SUBJECTS)],
            attention_rate=0.55 + (i % 9) * 0.05,
        )
        pts = [point(room, 0.6 + 0.3 * ((k + i) % 5) / 4, 10 * k, school) for k in range(60)]
        devs = [device(room, f"{room}-cam"), device(room, f"{room}-tab", offline=(i % 7 == 3), school=school)]
        devs[0].school_id = school
        out.append((room, batch([s], pts, devs)))
    return out


def produce(bootstrap: str, topic: str, records: Sequence[tuple[str, pipeline_pb2.MetricBatch]]) -> None:
    producer = make_producer(bootstrap)
    for key, b in records:
        producer.produce(topic, key=key.encode(), value=b.SerializeToString())
        producer.poll(0)
    assert producer.flush(30) == 0


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
