"""The one builder of ``DeadLetter`` records: what a rejection may keep (docs/DESIGN.md §4, issue 17).

Every role that dead-letters (gateway, worker, sink) builds its letters here, so the privacy
rules hold in one place:

- the reason is the broken rule without the offending value (``ValidationError.rule``) and
  ``field`` its dotted path;
- a ``student_id`` that is not a pseudonym is replaced by :data:`REDACTED_STUDENT_ID` before
  anything is serialised, digested or kept;
- the rejected bytes are kept as ``raw_sha256`` + ``raw_length``; ``raw`` itself only when the
  operator sets ``CLASSTRACE_DEADLETTER_KEEP_RAW`` (``keep_raw``), and at most
  :data:`MAX_RAW_BYTES`;
- ``event_id`` only when it is a canonical UUID, ``school_id`` only when it follows the id rule.

A keyed digest of a raw student id would let repeats be counted, but server roles hold no key
(docs/DESIGN.md §4) and an unkeyed hash of a student number is reversed by enumerating numbers;
so the value is replaced by a fixed marker, and repeats are counted by ``field`` and device.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from classtrace.codec import ns_to_ts
from classtrace.errors import ValidationError
from classtrace.ids import NIL_UUID, UUID_PATTERN
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import ID_PATTERN, is_pseudonym

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_PER_REQUEST",
    "MAX_RAW_BYTES",
    "REDACTED_STUDENT_ID",
    "for_event",
    "for_record",
    "redact_event",
    "scrub",
    "summary",
]

REDACTED_STUDENT_ID = "redacted:not-a-pseudonym"
"""What a non-pseudonym ``trace.student_id`` becomes in a dead letter (it fails the rule again)."""

MAX_RAW_BYTES = 1 << 20
"""A kept ``raw`` holds at most this much (a record is ≤ 8 MiB; digest and length cover it all)."""

MAX_PER_REQUEST = 10
"""Dead letters one request (or SDK call) writes one by one; the rest become one summary letter."""

MAX_ERROR_CHARS = 1000
"""An error text longer than this is cut: it names a rule or a failure, not a document."""

_UUID_MATCH = re.compile(UUID_PATTERN).fullmatch
_ID_MATCH = re.compile(ID_PATTERN).fullmatch
_INDEX = re.compile(r"\[\d+\]")


def redact_event(event: pb.Event) -> pb.Event:
    """``event`` itself, or a copy whose non-pseudonym ``student_id`` is replaced (never changed in place)."""
    if event.WhichOneof("payload") != "trace" or is_pseudonym(event.trace.student_id):
        return event
    copy = pb.Event()
    copy.CopyFrom(event)
    copy.trace.student_id = REDACTED_STUDENT_ID
    return copy


def _safe_event_id(event_id: str) -> str:
    return event_id if _UUID_MATCH(event_id) is not None and event_id != NIL_UUID else ""


def _safe_id(value: str) -> str:
    return value if _ID_MATCH(value) is not None else ""


def _letter(
    source: str, error: str, field: str, raw: bytes, received_ns: int, keep_raw: bool
) -> ppb.DeadLetter:
    letter = ppb.DeadLetter(
        source=source,
        error=error[:MAX_ERROR_CHARS],
        field=field,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        raw_length=len(raw),
        partition=-1,
        offset=-1,
    )
    if keep_raw:
        letter.raw = raw[:MAX_RAW_BYTES]
    ns_to_ts(received_ns, letter.received_at)
    return letter


def for_event(
    event: pb.Event,
    error: ValidationError,
    *,
    source: str,
    received_ns: int,
    school_id: str = "",
    keep_raw: bool = False,
) -> ppb.DeadLetter:
    """The dead letter of a rejected event: rule, field, digest of the redacted event, safe ids.

    ``school_id`` is the school the caller can vouch for (the device token's); left empty, the
    event's own is kept when it follows the id rule.
    """
    raw = redact_event(event).SerializeToString()
    letter = _letter(source, error.rule, error.field, raw, received_ns, keep_raw)
    letter.event_id = _safe_event_id(event.event_id)
    letter.school_id = _safe_id(school_id or event.school_id)
    return letter


def for_record(
    raw: bytes,
    error: str,
    *,
    source: str,
    received_ns: int,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    event: pb.Event | None = None,
    keep_raw: bool = False,
) -> ppb.DeadLetter:
    """The dead letter of a record that was not judged event by event (undecodable, unkeyed, refused).

    ``error`` must name a failure, not quote the record (a decode error's text is safe). When
    the record decoded to ``event``, the event is redacted and digested in place of ``raw``.
    """
    if event is not None:
        raw = redact_event(event).SerializeToString()
    letter = _letter(source, error, "", raw, received_ns, keep_raw)
    letter.topic, letter.partition, letter.offset = topic, partition, offset
    if event is not None:
        letter.event_id = _safe_event_id(event.event_id)
        letter.school_id = _safe_id(event.school_id)
    return letter


def summary(
    capped: Iterable[tuple[ValidationError, ppb.DeadLetter]],
    *,
    source: str,
    received_ns: int,
    school_id: str = "",
) -> ppb.DeadLetter:
    """One dead letter for the rejections of a request past its cap: counts per rule, one digest.

    A rule is a field path with its indexes dropped (``observation.counts[].count``), so the
    counts stay few. The digest covers the capped letters' digests, in order, and the length is
    their total, so two different floods in one millisecond stay two rows.
    """
    counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    length = 0
    for error, letter in capped:
        counts[_INDEX.sub("[]", error.field) or "(no field)"] += 1
        digest.update(letter.raw_sha256.encode())
        length += letter.raw_length
    n = sum(counts.values())
    per_rule = ", ".join(f"{rule} ×{count}" for rule, count in sorted(counts.items()))
    text = f"{n} more rejected events of this request, not dead-lettered one by one: {per_rule}"
    letter = _letter(source, text, "", b"", received_ns, False)
    letter.raw_sha256 = digest.hexdigest()
    letter.raw_length = length
    letter.school_id = _safe_id(school_id)
    return letter


def scrub(letter: ppb.DeadLetter, *, keep_raw: bool = False) -> ppb.DeadLetter:
    """``letter`` (changed in place) as this release would have built it, for letters from older writers.

    The sink applies it to every letter it reads, so ``dead_letters`` holds no raw bytes unless
    the operator keeps them, whatever wrote the topic. Its error text cannot be cleaned after the
    fact: a writer of this release never puts a value in it.
    """
    if letter.raw and not letter.raw_sha256:
        letter.raw_sha256 = hashlib.sha256(letter.raw).hexdigest()
        letter.raw_length = len(letter.raw)
    if not keep_raw:
        letter.raw = b""
    elif len(letter.raw) > MAX_RAW_BYTES:
        letter.raw = letter.raw[:MAX_RAW_BYTES]
    letter.event_id = _safe_event_id(letter.event_id)
    letter.school_id = _safe_id(letter.school_id)
    letter.error = letter.error[:MAX_ERROR_CHARS]
    return letter
