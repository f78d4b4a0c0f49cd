"""Identifiers: event ids (the idempotency key) and student pseudonyms (docs/DESIGN.md §4).

A raw student identifier never leaves the device: the EdgeProducer replaces it with
:func:`pseudonymise` before the event is spooled or sent, and every entry point rejects a
``student_id`` that is not :func:`is_pseudonym`. The HMAC key is the school's own
(:func:`school_pseudonym_key`, derived from a region secret kept off the servers) and stays with
that school's devices, so Kafka, ClickHouse and their operators see stable per-student pseudonyms
they cannot reverse, and a stolen tablet exposes one school (docs/KEYS.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

__all__ = [
    "MIN_REGION_SECRET_BYTES",
    "NIL_UUID",
    "PSEUDONYM_KEY_INFO",
    "PSEUDONYM_PATTERN",
    "PSEUDONYM_PREFIX",
    "UUID_PATTERN",
    "check_region_secret",
    "is_pseudonym",
    "is_uuid",
    "new_event_id",
    "pseudonymise",
    "school_pseudonym_key",
]

PSEUDONYM_PREFIX = "ps_"
# HKDF info of the school keys; the version is the rotation handle (docs/KEYS.md): bumping it gives
# every school a new key, so every pseudonym changes.
PSEUDONYM_KEY_INFO = b"classtrace pseudonym v1|"
# Shorter secrets are typos or placeholders, not 128 bits of entropy.
MIN_REGION_SECRET_BYTES = 16
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
        raise ValueError("the pseudonym key is empty (provision the school's key: classtrace devices key)")
    if not raw_id:
        raise ValueError("raw_id is empty: there is no student to pseudonymise")
    digest = hmac.new(key, f"{school_id}:{raw_id}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract, then expand to ``length`` ≤ 8160 bytes)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()  # an empty salt is HashLen zeros (§2.2)
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def check_region_secret(region_secret: bytes) -> None:
    """Raise ValueError unless ``region_secret`` is long enough to derive school keys from."""
    if len(region_secret) < MIN_REGION_SECRET_BYTES:
        raise ValueError(
            f"the region secret has {len(region_secret)} bytes, fewer than {MIN_REGION_SECRET_BYTES} "
            "(generate one with `openssl rand -hex 32`)"
        )


def school_pseudonym_key(region_secret: bytes, school_id: str) -> bytes:
    """The pseudonym key of one school's devices: HKDF-SHA256 of the region secret.

    ``HKDF(ikm=region_secret, salt="", info=b"classtrace pseudonym v1|" + school_id, L=32)``,
    returned as 64 lowercase hex ASCII bytes: the text ``classtrace devices key`` prints and a
    device's configuration holds, so passing it to the EdgeProducer as str or as bytes gives the
    same pseudonyms. One school's key reveals neither the region secret nor another school's key.

    Raises ValueError for a region secret shorter than 16 bytes or an empty school id.
    """
    check_region_secret(region_secret)
    if not school_id:
        raise ValueError("school_id is empty: pseudonym keys are per school")
    okm = _hkdf_sha256(region_secret, b"", PSEUDONYM_KEY_INFO + school_id.encode(), 32)
    return okm.hex().encode("ascii")


def is_pseudonym(s: str) -> bool:
    """True for ``ps_`` + 32 lowercase hex: the only student_id form accepted past the device."""
    return _PSEUDONYM_MATCH(s) is not None
