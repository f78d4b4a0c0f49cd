"""Identifiers: event ids (the idempotency key) and student pseudonyms (docs/DESIGN.md §4).

A raw student identifier never leaves the device: the EdgeProducer replaces it with
:func:`pseudonymise` before the event is spooled or sent, and every entry point rejects a
``student_id`` that is not :func:`is_pseudonym`. The HMAC key stays with the school's devices, so
Kafka, ClickHouse and their operators see stable per-student pseudonyms they cannot reverse.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

__all__ = [
    "NIL_UUID",
    "PSEUDONYM_PATTERN",
    "PSEUDONYM_PREFIX",
    "UUID_PATTERN",
    "is_pseudonym",
    "is_uuid",
    "new_event_id",
    "pseudonymise",
]

PSEUDONYM_PREFIX = "ps_"
NIL_UUID = "00000000-0000-0000-0000-000000000000"

# Canonical 8-4-4-4-12 text only: event_id is compared as a string end to end, so the braced,
# urn: and hyphen-less spellings uuid.UUID() also accepts would be distinct keys for one UUID.
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Lowercase only: hexdigest() is lowercase, and one spelling per student keeps counts distinct.
PSEUDONYM_PATTERN = r"ps_[0-9a-f]{32}"
_UUID_MATCH = re.compile(UUID_PATTERN).fullmatch
_PSEUDONYM_MATCH = re.compile(PSEUDONYM_PATTERN).fullmatch


def new_event_id() -> str:
    """A fresh random event id (UUID4): chosen once by the producer and kept across retries."""
    return str(uuid.uuid4())


def is_uuid(s: str) -> bool:
    """True for a UUID in canonical 8-4-4-4-12 hex form (either case), as event ids must be.

    >>> is_uuid("0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65"), is_uuid("xyz")
    (True, False)
    """
    return _UUID_MATCH(s) is not None


def pseudonymise(key: bytes, school_id: str, raw_id: str) -> str:
    """The pseudonym of a student: ``"ps_" + HMAC-SHA256(key, f"{school_id}:{raw_id}")[:32 hex]``.

    Keyed, so nobody without the school's key can test guesses of raw ids; scoped by school, so
    equal raw ids at two schools stay distinct. Called on the device, never downstream.

    Raises ValueError for an empty key (it would make pseudonyms a plain, reversible hash) or
    an empty raw id (there is no student to name).
    """
    if not key:
        raise ValueError("the pseudonym key is empty (set CLASSTRACE_PSEUDONYM_KEY)")
    if not raw_id:
        raise ValueError("raw_id is empty: there is no student to pseudonymise")
    digest = hmac.new(key, f"{school_id}:{raw_id}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def is_pseudonym(s: str) -> bool:
    """True for ``ps_`` + 32 lowercase hex: the only student_id form accepted past the device."""
    return _PSEUDONYM_MATCH(s) is not None
