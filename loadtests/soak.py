"""Soak: many simulated school days through a real ``classtrace up``, state sampled after each day.

Validation refuses events older than 7 days (docs/DESIGN.md §4), so N school days cannot be
spread over N real days of event time. Each simulated day is compressed: its lessons (40 min +
10 min break each) lie back to back in event time with no night between days, day ``d`` ending
at ``T0 + (d + 1) · day``, where ``T0`` puts the last day's end just before the soak starts
(20 days of 4 lessons: 68 h, well inside the 7 days). Each day is sent as a backfill (speed 0)
straight into Kafka. The worker's state horizon is set in *simulated days* (``CLASSTRACE_STATE_HORIZON_S``
= horizon days · day length in event time), so "flat after the horizon" shows within the run; the
production horizon is 7 real days (docs/DESIGN.md §10), and docs/CAPACITY.md scales the measured
bytes per lesson to it.

After each day has drained through the worker (its consumer group's committed offsets reach the
end of classtrace.events.v1) the soak samples the worker's RSS (``/proc/<pid>/status`` VmRSS of
the ``classtrace worker`` child of ``up``), its three changelogs read as a compacted topic would
be (live keys and bytes, tombstones applied; also the bytes ever written, since the embedded
Tansu does not compact), and ClickHouse's active parts per table (``system.parts``).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from classtrace.kafka import Consumer, TopicPartition, make_consumer

__all__ = [
    "ChangelogTally",
    "Sample",
    "SoakPlan",
    "day_end_ms",
    "describe",
    "group_lag",
    "rss_bytes",
    "send_day",
    "take_sample",
    "wait_drained",
    "write_csv",
    "write_outputs",
    "write_svg",
]

TABLES = ("lessons", "windows", "devices")
_BREAK_MIN = 10.0
_RECORD_EVENTS = 100


@dataclass(frozen=True)
class SoakPlan:
    """What one soak runs; ``day_ms`` is a school day's length in (compressed) event time."""

    days: int
    classrooms: int
    lessons: int
    lesson_minutes: float = 40.0
    horizon_days: float = 3.0

    @property
    def day_ms(self) -> int:
        """The day's lessons and breaks, plus 5 minutes for jitter and the run's last minute."""
        return int((self.lessons * (self.lesson_minutes + _BREAK_MIN) + 5) * 60_000)

    @property
    def horizon_s(self) -> float:
        return self.horizon_days * self.day_ms / 1000


def day_end_ms(plan: SoakPlan, start_ms: int, day: int) -> int:
    """Event time at which day ``day`` (0-based) ends: the last day ends at ``start_ms``."""
    return start_ms - (plan.days - 1 - day) * plan.day_ms


@dataclass
class Sample:
    """The state after one simulated day (a CSV row)."""

    day: int
    wall_s: float
    events: int
    worker_rss_mb: float
    lesson_keys: int
    window_keys: int
    device_keys: int
    lessons_live_kb: float
    windows_live_kb: float
    devices_live_kb: float
    changelog_written_mb: float
    tombstones: int
    clickhouse_rows: int
    clickhouse_mb: float


class ChangelogTally:
    """The worker's changelogs read as compaction would leave them, incrementally day after day."""

    def __init__(self, bootstrap: str, options: Mapping[str, str], app_id: str, partitions: int) -> None:
        self.topics = {f"{app_id}-{t}-changelog": t for t in TABLES}
        self._consumer: Consumer = make_consumer(
            bootstrap, f"soak-{time.time_ns()}", options, **{"enable.auto.commit": False}
        )
        self._consumer.assign(
            [TopicPartition(topic, p, 0) for topic in self.topics for p in range(partitions)]
        )
        self.live: dict[str, dict[bytes, int]] = {t: {} for t in TABLES}
        self.written = 0
        self.tombstones = 0

    def catch_up(self, idle_s: float = 3.0) -> None:
        """Read until no record came for ``idle_s`` (the worker has drained before this is called)."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = self._consumer.consume(10_000, timeout=0.5)
            if batch:
                quiet_since = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                live = self.live[self.topics[message.topic() or ""]]
                key, value = message.key() or b"", message.value()
                self.written += len(key) + len(value or b"")
                if value is None:
                    self.tombstones += 1
                    live.pop(key, None)
                else:
                    live[key] = len(key) + len(value)

    def close(self) -> None:
        self._consumer.close()


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def send_day(
    plan: SoakPlan, day: int, end_ms: int, region_secret: bytes, producer: Any, record_key: Any
) -> int:
    """Send day ``day`` (ending at ``end_ms``) into classtrace.events.v1 as the SDK would; its events.

    The simulator's classroom streams (the lessons ``classtrace simulate`` plays), each classroom's
    events in records of ``_RECORD_EVENTS`` keyed ``school_id/classroom_id`` and signed with the
    stack's record key: the EdgeOutlet's per-device flushes cost minutes per simulated day here.
    """
    from classtrace.identity import room_key
    from classtrace.ids import school_pseudonym_key
    from classtrace.topics import EVENTS
    from classtrace.v1 import events_pb2 as pb
    from smart_classroom_agents.classroom import classroom_stream
    from smart_classroom_agents.runner import SimulationPlan, plan_classrooms

    sim = SimulationPlan(plan.classrooms, plan.lessons, day, 0.0, plan.lesson_minutes, _BREAK_MIN)
    start, rooms = plan_classrooms(sim, end_ms)
    sent = 0
    for room in rooms:
        key = room_key(room.school_id, room.classroom_id).encode()
        pseudonyms = school_pseudonym_key(region_secret, room.school_id)
        events = [event for _emit, event in classroom_stream(room, day, pseudonyms, start)]
        for i in range(0, len(events), _RECORD_EVENTS):
            value = pb.EventBatch(events=events[i : i + _RECORD_EVENTS]).SerializeToString()
            headers = record_key.headers(EVENTS, key, value) if record_key else None
            producer.produce(EVENTS, key=key, value=value, headers=headers)
            producer.poll(0)
        sent += len(events)
    producer.flush(60)
    return sent


def group_lag(group: Consumer, topic: str, partitions: int) -> int:
    """Records of ``topic`` the consumer group of ``group`` has not committed yet."""
    total = 0
    for tp in group.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10):
        high = group.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
        total += max(high - max(tp.offset, 0), 0)  # Tansu's high watermark can trail the end by a batch
    return total


def take_sample(
    day: int, wall_s: float, events: int, tally: ChangelogTally, worker_pid: int, client: Any
) -> Sample:
    """The state after a drained day; ``client`` queries the stack's ClickHouse."""
    live = tally.live
    rows, size = client.query(
        "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND active"
    ).result_rows[0]
    return Sample(
        day=day,
        wall_s=wall_s,
        events=events,
        worker_rss_mb=round(rss_bytes(worker_pid) / 2**20, 1),
        lesson_keys=len(live["lessons"]),
        window_keys=len(live["windows"]),
        device_keys=len(live["devices"]),
        lessons_live_kb=round(sum(live["lessons"].values()) / 1024, 1),
        windows_live_kb=round(sum(live["windows"].values()) / 1024, 1),
        devices_live_kb=round(sum(live["devices"].values()) / 1024, 1),
        changelog_written_mb=round(tally.written / 2**20, 1),
        tombstones=tally.tombstones,
        clickhouse_rows=int(rows or 0),
        clickhouse_mb=round(int(size or 0) / 2**20, 1),
    )


def wait_drained(lag: Callable[[], int], timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait until ``lag()`` is 0 twice in a row (the worker committed everything sent)."""
    deadline, zero = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        zero = zero + 1 if lag() == 0 else 0
        if zero >= 2:
            return True
        time.sleep(poll_s)
    return False


def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Sample)])
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)


_W, _H, _PAD = 720, 200, 48


def _panel(samples: Sequence[Sample], series: Sequence[tuple[str, str, str]], top: int, title: str) -> str:
    """One line chart: ``series`` = (Sample field, label, colour), each scaled to its own maximum."""
    days = [s.day for s in samples]
    x_max = max(days) or 1
    out = [f'<text x="{_PAD}" y="{top + 14}" font-weight="bold">{title}</text>']
    y0, y1 = top + _H - 20, top + 24
    out.append(f'<line x1="{_PAD}" y1="{y0}" x2="{_W - 10}" y2="{y0}" stroke="#999"/>')
    for d in days:
        x = _PAD + (_W - _PAD - 10) * d / x_max
        out.append(f'<text x="{x:.0f}" y="{y0 + 14}" text-anchor="middle" font-size="10">{d}</text>')
    for n, (name, label, colour) in enumerate(series):
        values: list[float] = [float(getattr(s, name)) for s in samples]
        peak = max(values) or 1.0
        points = " ".join(
            f"{_PAD + (_W - _PAD - 10) * d / x_max:.1f},{y0 - (y0 - y1) * v / peak:.1f}"
            for d, v in zip(days, values, strict=True)
        )
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        out.append(
            f'<text x="{_W - 10}" y="{top + 14 + 13 * n}" text-anchor="end" fill="{colour}" font-size="11">'
            f"{label} (max {peak:,.1f})</text>"
        )
    return "\n".join(out)


def write_svg(path: Path, samples: Sequence[Sample], caption: str) -> None:
    """Two panels over simulated days: worker RSS, and the live state (keys and bytes)."""
    body = [
        _panel(samples, [("worker_rss_mb", "worker RSS, MB", "#c0392b")], 10, "Worker RSS after each day"),
        _panel(
            samples,
            [
                ("lesson_keys", "lesson keys", "#2471a3"),
                ("lessons_live_kb", "lesson values, kB", "#17a589"),
                ("window_keys", "window keys", "#af7ac5"),
                ("changelog_written_mb", "changelog written, MB", "#7f8c8d"),
            ],
            10 + _H + 10,
            "Worker state after each day (each line scaled to its own max)",
        ),
    ]
    height = 2 * _H + 50
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
        + "\n".join(body)
        + f'\n<text x="{_PAD}" y="{height - 8}" font-size="10">{caption}</text>\n</svg>\n'
    )


def describe(samples: Sequence[Sample], plan: SoakPlan) -> dict[str, Any]:
    """Flat-after-horizon figures: the mean of the days after the horizon (plus one) against the last."""
    settled = [s for s in samples if s.day > plan.horizon_days + 1] or list(samples[-1:])
    keys = sum(s.lesson_keys for s in settled) / len(settled)
    state_kb = sum(s.lessons_live_kb + s.windows_live_kb + s.devices_live_kb for s in settled) / len(settled)
    return {
        "settled_days": [s.day for s in settled],
        "lesson_keys_mean": keys,
        "lesson_keys_range": [min(s.lesson_keys for s in settled), max(s.lesson_keys for s in settled)],
        "rss_mb_range": [min(s.worker_rss_mb for s in settled), max(s.worker_rss_mb for s in settled)],
        "state_kb_per_classroom": state_kb / plan.classrooms,
        "bytes_per_lesson": (sum(s.lessons_live_kb for s in settled) / len(settled)) * 1024 / max(keys, 1),
    }


def write_outputs(out: Path, plan: SoakPlan, samples: Sequence[Sample], drained: bool) -> dict[str, Any]:
    """soak.csv, soak.svg and soak.json (the plan and the settled figures) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "soak.csv", samples)
    caption = (
        f"{plan.classrooms} classrooms, {plan.lessons} × {plan.lesson_minutes:g}-min lessons a day, "
        f"{plan.days} days; horizon {plan.horizon_days:g} simulated days "
        f"({plan.horizon_s / 3600:.1f} h event time)"
    )
    write_svg(out / "soak.svg", samples, caption)
    summary: dict[str, Any] = {"plan": {**asdict(plan), "day_ms": plan.day_ms, "horizon_s": plan.horizon_s}}
    summary.update(describe(samples, plan), drained=drained)
    (out / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
