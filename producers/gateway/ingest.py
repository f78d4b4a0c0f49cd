"""The per-request core of ``POST /v1/events``: tenant binding, validation, stamping, dead letters.

Pure and synchronous (no I/O), so it is tested directly and costs only what it must per event.
A protobuf request is first offered to the C wire scanner (:func:`accept_wire`): when every
event passes and carries the token's ids — nearly every request — the record to publish is the
request's own bytes with ``received_at`` replaced, and nothing is decoded. Otherwise (and for
JSON) :func:`judge` decodes: the shared validation on the whole batch at once (``read_batch``,
whose distinct ids make the token-binding check three set comparisons) and one
``MergeFromString`` of per-request bytes for ``received_at``; a request with a rejected event
falls back to per-event verdicts (``read_event``), whose reasons are the only ones. Rejected
events are cut out of the decoded batch in place, and the batch is serialised once: one
``EventBatch`` record per request (DESIGN §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from classtrace.codec import varint
from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import read_batch, read_event
from classtrace.wire import accept_bound
from producers.gateway.auth import Binding

__all__ = ["SOURCE", "Verdict", "accept_wire", "judge"]

SOURCE = "gateway"  # DeadLetter.source


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
    """Serialised ``DeadLetter`` records, one per rejected event."""


def _mismatch(field: str, got: str, bound: str, what: str) -> ValidationError:
    shown = repr(got if len(got) <= 80 else got[:77] + "...")
    return ValidationError(
        field, f"{shown} is not the token's {what} {bound!r} (a device token writes only its own events)"
    )


def _binding_error(ev: pb.Event, binding: Binding) -> ValidationError:
    if ev.school_id != binding.school_id:
        return _mismatch("school_id", ev.school_id, binding.school_id, "school")
    if ev.classroom_id != binding.classroom_id:
        return _mismatch("classroom_id", ev.classroom_id, binding.classroom_id, "classroom")
    return _mismatch("device_id", ev.device_id, binding.device_id, "device")


_RECEIVED_AT = pb.Event.DESCRIPTOR.fields_by_name["received_at"].number


def _received_at_bytes(seconds: int, nanos: int) -> bytes:
    """An ``Event`` holding only ``received_at``, encoded by hand with *both* fields explicit.

    Merged into a parsed event it sets received_at in one upb call, cheaper than reaching the
    submessage and assigning or copying into it. Proto3 encoders leave out zero fields, and a
    merge keeps what a field absent from the merged bytes had, so ``nanos`` (or ``seconds``) is
    written even when 0: a device's value never survives the stamp.
    """
    inner = b"\x08" + varint(seconds) + b"\x10" + varint(nanos)
    return varint(_RECEIVED_AT << 3 | 2) + varint(len(inner)) + inner


def accept_wire(body: bytes, binding: Binding, now_ns: int) -> Verdict | None:
    """The verdict on a protobuf ``body`` whose every event passes and is the token's; else None.

    None means "not shown here" (a rule may be broken, an id may not be the token's, the bytes
    may be unusual): decode the body and :func:`judge` it. An empty batch accepts nothing.
    """
    got = accept_bound(body, now_ns / 1e9, binding.school_id, binding.classroom_id, binding.device_id, now_ns)
    if got is None:
        return None
    n, stamped = got
    return Verdict(n, stamped if n else None)


def judge(batch: pb.EventBatch, binding: Binding, now_ns: int) -> Verdict:
    """Split ``batch`` against the token's ``binding`` and the rules of DESIGN §4 at ``now_ns``.

    Accepted events get ``received_at`` = ``now_ns`` (the device's value is overwritten).
    ``batch`` is modified: rejected events are removed from it.

    The whole batch is validated first (``read_batch``, one pass per field); when every event
    passes and carries the token's ids — the common case — the events are stamped and the batch
    serialised as it is. Otherwise each event gets its verdict from ``read_event``, whose ids
    make the binding check three comparisons; a binding mismatch still wins over a rule broken by
    the same event (it is checked first on the error path), so the verdicts are unchanged.
    """
    now_s = now_ns / 1e9
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    stamp = _received_at_bytes(seconds, nanos)
    school, classroom, device = binding.school_id, binding.classroom_id, binding.device_id
    events = batch.events
    items = list(events)  # one wrapper per event, kept for every pass below
    ids = read_batch(items, now_s)
    if (
        ids is not None
        and ids.school_ids == {school}
        and ids.classroom_ids == {classroom}
        and (ids.device_ids == {device})
    ):
        for ev in items:  # every event valid and the token's own: the common case
            ev.MergeFromString(stamp)  # overwrites both fields of the device's received_at
        return Verdict(len(items), batch.SerializeToString())
    bad: list[tuple[int, pb.Event, ValidationError]] = []
    for i, ev in enumerate(items):
        try:
            fields = read_event(ev, now_s)
        except ValidationError as exc:
            if ev.school_id == school and ev.classroom_id == classroom and ev.device_id == device:
                bad.append((i, ev, exc))
            else:
                bad.append((i, ev, _binding_error(ev, binding)))
            continue
        if fields[2] == school and fields[3] == classroom and fields[4] == device:
            ev.MergeFromString(stamp)  # overwrites both fields of the device's received_at
        else:
            bad.append((i, ev, _binding_error(ev, binding)))
    if not bad:
        return Verdict(len(events), batch.SerializeToString() if len(events) else None)
    verdict = Verdict(0, None)
    for i, ev, error in bad:
        raw = ev.SerializeToString()
        verdict.rejected.append({"index": i, "event_id": ev.event_id, "error": str(error)})
        verdict.rejected_fields.append(error.field)
        letter = ppb.DeadLetter(
            source=SOURCE, error=str(error), raw=raw, event_id=ev.event_id[:64], school_id=school
        )
        letter.received_at.seconds = seconds
        letter.received_at.nanos = nanos
        verdict.dead_letters.append(letter.SerializeToString())
    for i, _ev, _error in reversed(bad):
        del events[i]
    verdict.accepted = len(events)
    verdict.value = batch.SerializeToString() if verdict.accepted else None
    return verdict
