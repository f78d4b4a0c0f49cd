"""In-memory stand-ins for the worker's Faust tables and outputs: the processor's unit-test seams."""

from __future__ import annotations

from collections.abc import Iterator

from classtrace.v1 import pipeline_pb2 as ppb


class DictTable:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes = 0

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        self.writes += 1
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def iter_keys(self) -> Iterator[str]:
        return iter(list(self.data))


class Sink:
    """Outputs collected, the latest value per summary / window point (as ReplacingMergeTree keeps)."""

    def __init__(self) -> None:
        self.batches: list[ppb.MetricBatch] = []
        self.keys: list[bytes] = []
        self.dead: list[ppb.DeadLetter] = []
        self.alerts_out: list[tuple[bytes, ppb.Alert]] = []

    def metrics(self, key: bytes, value: bytes) -> None:
        self.keys.append(key)
        self.batches.append(ppb.MetricBatch.FromString(value))

    def alerts(self, key: bytes, value: bytes) -> None:
        self.alerts_out.append((key, ppb.Alert.FromString(value)))

    def dead_letter(self, key: bytes | None, value: bytes) -> None:
        self.dead.append(ppb.DeadLetter.FromString(value))

    def final_summary(self) -> ppb.LessonSummary:
        summaries = [s for b in self.batches for s in b.summaries]
        latest = max(summaries, key=lambda s: s.version)
        assert latest.final
        return latest

    def points(self, school: str | None = None) -> dict[tuple[int, str], float]:
        """The latest value per (window start, metric), of one school's rooms if given."""
        latest: dict[tuple[int, str], float] = {}
        for batch in self.batches:
            for p in batch.points:
                if school is None or p.school_id == school:
                    latest[(p.window_start.seconds, p.metric)] = p.value
        return latest
