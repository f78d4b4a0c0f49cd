"""Erasure of one person's data (docs/ERASURE.md): the ledger, and the one rule that applies it.

``classtrace erase`` appends an :class:`Erasure` to the compacted ledger topic
``classtrace.erasures.v1``. Every role that stores data follows the ledger:

- the sink deletes the person's rows from ClickHouse and drops their events from every batch it
  inserts afterwards (``mode="drop"``), so a replay or a backfill cannot bring them back;
- the worker replaces the person's id in its lesson state by a per-lesson stand-in
  (``mode="anonymise"``): the class's aggregates (participation, accuracy, hand raises) keep the
  person's contribution, which is a fact about the class, not about the person.

The ledger holds no identifier in clear: a subject is the SHA-256 of its kind, school and id
(:func:`subject_digest`). A student's id is already a keyed pseudonym, so the digest of it cannot
be reversed; a teacher id can be guessed from a list of ids, which is why teacher erasure also
blanks the id everywhere it was stored.

>>> e = Erasure.new("student", "sch-1", "ps_" + "0" * 32, requested_ms=0)
>>> Erasure.decode(e.encode()) == e
True
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from collections.abc import Iterable, Mapping, MutableSequence
from dataclasses import dataclass
from typing import Literal

import orjson

from classtrace.errors import ClasstraceError
from classtrace.kafka import CompactedTopicReader, make_producer
from classtrace.signing import RecordKey
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb

__all__ = [
    "KINDS",
    "Erasure",
    "ErasureFollower",
    "ErasureSet",
    "Kind",
    "anonymous_stand_in",
    "publish_erasure",
    "subject_digest",
    "subject_sql",
]

logger = logging.getLogger(__name__)

Kind = Literal["student", "teacher"]
KINDS: tuple[Kind, ...] = ("student", "teacher")
_VERSION = 1
_CACHE_LIMIT = 200_000  # (school, id) → erased? answers kept; cleared when full


def subject_digest(kind: str, school_id: str, person_id: str) -> str:
    """The ledger's name for a person: hex SHA-256 of ``classtrace erasure v1|kind|school|id``."""
    return hashlib.sha256(f"classtrace erasure v1|{kind}|{school_id}|{person_id}".encode()).hexdigest()


def subject_sql(kind: Kind, column: str) -> str:
    """The ClickHouse expression equal to :func:`subject_digest` of a row's ``school_id`` and ``column``.

    The ledger holds digests only, so storage finds a person's rows by hashing candidates.
    """
    if kind not in KINDS or not column.isidentifier():
        raise ValueError(f"bad erasure kind or column: {kind!r}, {column!r}")
    return f"lower(hex(SHA256(concat('classtrace erasure v1|{kind}|', school_id, '|', {column}))))"


def anonymous_stand_in(subject: str, school_id: str, lesson_id: str) -> str:
    """A pseudonym-shaped stand-in for an erased student inside one lesson's state.

    Distinct per (person, lesson), so a lesson's counts stay as they were, and not linkable across
    lessons without the ledger's digest.
    """
    digest = hashlib.sha256(f"classtrace stand-in v1|{subject}|{school_id}|{lesson_id}".encode())
    return "ps_" + digest.hexdigest()[:32]


@dataclass(frozen=True)
class Erasure:
    """One erasure request: who (as a digest), of which school, when, under which id."""

    kind: Kind
    school_id: str
    subject: str
    """:func:`subject_digest` of the person."""
    requested_ms: int
    erasure_id: str

    @classmethod
    def new(cls, kind: Kind, school_id: str, person_id: str, requested_ms: int) -> Erasure:
        """A fresh request for ``person_id`` (which is hashed here and not kept)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not school_id or not person_id:
            raise ValueError("an erasure names a school and a person")
        subject = subject_digest(kind, school_id, person_id)
        return cls(kind, school_id, subject, requested_ms, str(uuid.uuid4()))

    @property
    def key(self) -> bytes:
        """The ledger record key: one record per person (compaction keeps the latest request)."""
        return f"{self.kind}/{self.subject}".encode()

    def encode(self) -> bytes:
        """The ledger record value (JSON)."""
        return orjson.dumps(
            {
                "v": _VERSION,
                "kind": self.kind,
                "school_id": self.school_id,
                "subject": self.subject,
                "requested_ms": self.requested_ms,
                "erasure_id": self.erasure_id,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Erasure:
        """Inverse of :meth:`encode`; ValueError for a record that is not an erasure."""
        try:
            obj = orjson.loads(raw)
            kind = obj["kind"]
            if kind not in KINDS or obj["v"] != _VERSION:
                raise ValueError(f"unknown erasure kind or version: {kind!r} v{obj['v']!r}")
            return cls(kind, str(obj["school_id"]), str(obj["subject"]), int(obj["requested_ms"]),
                       str(obj["erasure_id"]))  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not an erasure record: {exc}") from exc


class ErasureSet:
    """The erased people a role knows of, and the scrubbing of event batches against them.

    Empty (falsy) until the first erasure, so a role checks ``if erasures:`` per batch and pays
    nothing per event before that. Safe to read from one thread while another adds.
    """

    def __init__(self, erasures: Iterable[Erasure] = ()) -> None:
        self._subjects: dict[str, Erasure] = {}
        self._cache: dict[tuple[str, str, str], str | None] = {}
        for erasure in erasures:
            self.add(erasure)

    def __bool__(self) -> bool:
        return bool(self._subjects)

    def __len__(self) -> int:
        return len(self._subjects)

    def __contains__(self, erasure: Erasure) -> bool:
        return erasure.subject in self._subjects

    def add(self, erasure: Erasure) -> bool:
        """Know of ``erasure``; False if it was known already."""
        if erasure.subject in self._subjects:
            return False
        self._subjects[erasure.subject] = erasure
        self._cache.clear()  # a cached "not erased" may be stale now
        return True

    def subject_of(self, kind: Kind, school_id: str, person_id: str) -> str | None:
        """The digest of ``person_id`` if that person is erased, else None."""
        if not person_id:
            return None
        key = (kind, school_id, person_id)
        cache = self._cache
        if key in cache:
            return cache[key]
        digest = subject_digest(kind, school_id, person_id)
        found = digest if digest in self._subjects else None
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = found
        return found

    def scrub(self, events: MutableSequence[pb.Event], mode: Literal["drop", "anonymise"]) -> int:
        """Apply the erasures to a batch in place; how many events were changed or dropped.

        A trace of an erased student is dropped (``"drop"``: storage) or keeps its place with the
        student replaced by :func:`anonymous_stand_in` (``"anonymise"``: the worker's aggregates).
        An erased teacher's id is blanked in lesson and teaching events either way.
        """
        changed = 0
        for i in range(len(events) - 1, -1, -1):
            event = events[i]
            payload = event.WhichOneof("payload")
            if payload == "trace":
                subject = self.subject_of("student", event.school_id, event.trace.student_id)
                if subject is None:
                    continue
                changed += 1
                if mode == "drop":
                    del events[i]
                else:
                    event.trace.student_id = anonymous_stand_in(subject, event.school_id, event.lesson_id)
            elif payload in ("lesson", "teaching"):
                holder = event.lesson if payload == "lesson" else event.teaching
                if self.subject_of("teacher", event.school_id, holder.teacher_id) is not None:
                    holder.teacher_id = ""
                    changed += 1
        return changed

    def scrub_summaries(self, summaries: Iterable[ppb.LessonSummary]) -> int:
        """Blank erased teachers in lesson summaries (metrics records written before the erasure)."""
        changed = 0
        for summary in summaries:
            if self.subject_of("teacher", summary.school_id, summary.teacher_id) is not None:
                summary.teacher_id = ""
                changed += 1
        return changed


class ErasureFollower:
    """Reads the ledger to its end at :meth:`start`, then follows it on a daemon thread.

    New erasures are queued for the owning role's own thread (:meth:`drain`), which applies them
    where its state lives: the sink's consume thread, the worker's event loop.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        options: Mapping[str, str] | None = None,
        *,
        name: str = "erasures",
        record_key: RecordKey | None = None,
    ) -> None:
        self.known = ErasureSet()
        # With the stack's record key, an unsigned or forged erasure is skipped (and logged): on
        # the embedded broker anyone on the host could otherwise erase a school's data.
        self._reader = CompactedTopicReader(bootstrap, topic, options, name=name, record_key=record_key)
        self._queue: queue.SimpleQueue[Erasure] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _handle(self, _key: bytes | None, value: bytes | None) -> None:
        if not value:
            return
        try:
            erasure = Erasure.decode(value)
        except ValueError as exc:
            logger.warning("erasure ledger record ignored: %s", exc)
            return
        self._queue.put(erasure)

    def start(self, timeout: float = 30.0) -> list[Erasure]:
        """Catch up with the ledger (every erasure so far, returned), then follow it."""
        self._reader.catch_up(self._handle, timeout)
        found = self.drain()
        self._thread = threading.Thread(target=self._follow, name="classtrace-erasures", daemon=True)
        self._thread.start()
        return found

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._reader.poll(self._handle, 0.5)
            except Exception:  # the ledger must not take its role down; it is retried
                logger.exception("erasure ledger read failed")
                self._stop.wait(1.0)

    def drain(self) -> list[Erasure]:
        """Erasures read since the last drain that were new to :attr:`known` (call it often)."""
        new: list[Erasure] = []
        while True:
            try:
                erasure = self._queue.get_nowait()
            except queue.Empty:
                return new
            if self.known.add(erasure):
                new.append(erasure)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._reader.close()


def publish_erasure(
    bootstrap: str,
    topic: str,
    erasure: Erasure,
    options: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    record_key: RecordKey | None = None,
) -> None:
    """Append ``erasure`` to the ledger and wait for acks=all; ClasstraceError if it did not land.

    Signed with ``record_key`` when the stack has one (classtrace/signing.py).
    """
    producer = make_producer(bootstrap, options)
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    value = erasure.encode()
    headers = record_key.headers(topic, erasure.key, value) if record_key is not None else None
    producer.produce(topic, value, key=erasure.key, headers=headers, on_delivery=delivered)
    left = producer.flush(timeout)
    if left or failures:
        raise ClasstraceError(f"the erasure was not written to {topic}: {failures or 'timed out'}")
