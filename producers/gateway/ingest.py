"""The per-request core of ``POST /v1/events``: device kind, tenant binding, validation, stamping.

Pure and synchronous (no I/O), so it is tested directly and costs only what it must per event.
Every request is decoded once with upb and judged by :func:`judge`; the rules themselves are
:mod:`classtrace.validation`'s and nowhere else (one home per rule).

1. **Device kind** (docs/DESIGN.md §4, §9): an event that leaves ``device_kind`` unset gets the
   kind the device was registered with, *before* validation; a known kind that differs from the
   registration is rejected. One set comprehension decides the common case (every event already
   carries the registered kind).
2. **Validation and binding**, the common case first: the whole batch at once (``read_batch``,
   which is ``read_event`` on each event and collects the distinct ids), whose ids make the
   token-binding check three set comparisons. A request with any rejected event falls back to
   per-event verdicts (``read_event``), whose reasons are the only ones; a binding mismatch
   (ids, then kind) wins over a rule broken by the same event.
3. **Stamping**: every accepted event's ``received_at`` is overwritten with the receiver clock
   by one ``MergeFromString`` of a few hand-encoded bytes (the device's value never survives).
4. Rejected events are cut out of the decoded batch in place and the batch is serialised once:
   one ``EventBatch`` record per request (docs/DESIGN.md §5). Unknown fields are dropped first
   (docs/DESIGN.md §5; privacy: nothing the schema does not name reaches the topic), so the
   record holds only schema fields.

Cost, on a load-test request of 100 events: ~1.3 µs an event around validation (decode 0.3,
dropping unknown fields 0.4, stamping 0.15, serialising 0.25, the kind check 0.1), plus
``read_event``'s own ~3–4 µs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from classtrace import deadletters
from classtrace.codec import timestamp_field_bytes
from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import read_batch, read_event
from producers.gateway.auth import Binding

__all__ = ["SOURCE", "Verdict", "judge"]

SOURCE = "gateway"  # DeadLetter.source

_UNSET_KIND = pb.DEVICE_KIND_UNSPECIFIED
_KNOWN_KINDS = frozenset(v for _, v in pb.DeviceKind.items() if v)
_RECEIVED_AT = pb.Event.DESCRIPTOR.fields_by_name["received_at"].number
_CAP = deadletters.MAX_PER_REQUEST


@dataclass(slots=True)
class Verdict:
    """What to publish and answer for one request."""

    accepted: int
    value: bytes | None
    """The ``EventBatch`` of accepted, stamped events; None when nothing was accepted."""
    rejected: list[dict[str, object]] = field(default_factory=list)
    """Response items ``{"index", "event_id", "error"}``, in request order."""
    rejected_fields: list[str] = field(default_factory=list)
    dead_letters: list[bytes] = field(default_factory=list)
    """Serialised ``DeadLetter`` records: one per rejected event up to
    :data:`~classtrace.deadletters.MAX_PER_REQUEST`, then one summary of the rest."""


def _mismatch(field: str, got: str, bound: str, what: str) -> ValidationError:
    # The token's own id is trusted and may be stored; the event's goes in ``got`` (sender only).
    shown = repr(got if len(got) <= 80 else got[:77] + "...")
    return ValidationError(
        field, f"must be the token's {what} {bound!r} (a device token writes only its own events)", shown
    )


def _kind_name(kind: int) -> str:
    return pb.DeviceKind.Name(kind)  # type: ignore[arg-type]  # only ever called on known kinds


def _binding_error(ev: pb.Event, binding: Binding) -> ValidationError | None:
    """Why ``ev`` is not the token's to write (ids first, then the registered kind), or None."""
    if ev.school_id != binding.school_id:
        return _mismatch("school_id", ev.school_id, binding.school_id, "school")
    if ev.classroom_id != binding.classroom_id:
        return _mismatch("classroom_id", ev.classroom_id, binding.classroom_id, "classroom")
    if ev.device_id != binding.device_id:
        return _mismatch("device_id", ev.device_id, binding.device_id, "device")
    kind, registered = ev.device_kind, binding.device_kind
    if registered and kind != registered and kind in _KNOWN_KINDS:
        # An unknown kind number is left to validation ("unknown enum value"), an unset one was
        # filled from the registration (fill_device_kind).
        return ValidationError(
            "device_kind",
            f"{_kind_name(kind)} is not the kind {_kind_name(registered)} device "
            f"{binding.device_id!r} is registered as (leave device_kind unset to use the registration)",
        )
    return None


def _received_at_bytes(now_ns: int) -> bytes:
    """An ``Event`` holding only ``received_at`` = ``now_ns``: merged into a parsed event, it
    overwrites both fields of the device's value in one upb call (see
    :func:`classtrace.codec.timestamp_field_bytes`)."""
    return timestamp_field_bytes(_RECEIVED_AT, now_ns)


def fill_device_kind(items: list[pb.Event], binding: Binding) -> tuple[set[int], bool]:
    """Give every event of ``items`` that leaves ``device_kind`` unset the registered kind.

    Returns the indexes filled (so a dead letter can show the event as received) and whether
    some event names a kind the binding check must look at (a known kind other than the
    registered one). A registration without a kind fills nothing and checks nothing: the events'
    own kinds stand, and validation judges them.
    """
    registered = binding.device_kind
    if not registered:
        return set(), False
    kinds = {ev.device_kind for ev in items}
    if len(kinds) == 1 and registered in kinds:
        return set(), False  # the common case: every event carries its registered kind
    filled: set[int] = set()
    if _UNSET_KIND in kinds:
        for i, ev in enumerate(items):
            if ev.device_kind == _UNSET_KIND:
                ev.device_kind = registered
                filled.add(i)
    kinds.discard(_UNSET_KIND)
    kinds.discard(registered)
    return filled, not kinds.isdisjoint(_KNOWN_KINDS)


def judge(batch: pb.EventBatch, binding: Binding, now_ns: int, *, keep_raw: bool = False) -> Verdict:
    """Split ``batch`` against the token's ``binding`` and the rules of docs/DESIGN.md §4 at ``now_ns``.

    Accepted events get ``received_at`` = ``now_ns`` (the device's value is overwritten) and,
    when they leave it unset, the registered ``device_kind``. ``batch`` is modified: unknown
    fields are dropped and rejected events removed from it. ``keep_raw`` is
    ``CLASSTRACE_DEADLETTER_KEEP_RAW``: dead letters then keep the (redacted) rejected events.
    """
    now_s = now_ns / 1e9
    stamp = _received_at_bytes(now_ns)
    school, classroom, device = binding.school_id, binding.classroom_id, binding.device_id
    batch.DiscardUnknownFields()
    events = batch.events
    items = list(events)  # one wrapper per event, kept for every pass below
    filled, other_kinds = fill_device_kind(items, binding)
    ids = None if other_kinds else read_batch(items, now_s)
    if (
        ids is not None
        and ids.school_ids <= {school}  # an empty batch has no ids
        and ids.classroom_ids <= {classroom}
        and ids.device_ids <= {device}
    ):
        for ev in items:  # every event valid and the token's own: the common case
            ev.MergeFromString(stamp)  # overwrites both fields of the device's received_at
        return Verdict(len(items), batch.SerializeToString() if items else None)
    bad: list[tuple[int, pb.Event, ValidationError]] = []
    for i, ev in enumerate(items):
        error = _binding_error(ev, binding)
        if error is None:
            try:
                read_event(ev, now_s)
            except ValidationError as exc:
                error = exc
        if error is None:
            ev.MergeFromString(stamp)
        else:
            bad.append((i, ev, error))
    return _split(batch, bad, filled, school, now_ns, keep_raw)


def _split(
    batch: pb.EventBatch,
    bad: list[tuple[int, pb.Event, ValidationError]],
    filled: set[int],
    school: str,
    now_ns: int,
    keep_raw: bool = False,
) -> Verdict:
    """The verdict on a batch with per-event results: dead letters for ``bad``, the rest published.

    The response lists every rejected event (it goes back to the sender only); dead letters are
    capped at :data:`~classtrace.deadletters.MAX_PER_REQUEST` a request plus one summary, so a
    2 kB body cannot fan out into a thousand records.
    """
    events = batch.events
    if not bad:
        return Verdict(len(events), batch.SerializeToString() if len(events) else None)
    verdict = Verdict(0, None)
    capped: list[tuple[ValidationError, ppb.DeadLetter]] = []
    for n, (i, ev, error) in enumerate(bad):
        if i in filled:
            ev.device_kind = _UNSET_KIND  # the dead letter digests the event as received
        verdict.rejected.append({"index": i, "event_id": ev.event_id, "error": str(error)})
        verdict.rejected_fields.append(error.field)
        letter = deadletters.for_event(
            ev, error, source=SOURCE, received_ns=now_ns, school_id=school, keep_raw=keep_raw and n < _CAP
        )
        if n < _CAP:
            verdict.dead_letters.append(letter.SerializeToString())
        else:
            capped.append((error, letter))
    if capped:
        rest = deadletters.summary(capped, source=SOURCE, received_ns=now_ns, school_id=school)
        verdict.dead_letters.append(rest.SerializeToString())
    for i, _ev, _error in reversed(bad):
        del events[i]
    verdict.accepted = len(events)
    verdict.value = batch.SerializeToString() if verdict.accepted else None
    return verdict
