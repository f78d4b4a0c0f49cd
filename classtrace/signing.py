"""Signed Kafka records: who may write the topics a classtrace role trusts (docs/ARCHITECTURE.md).

The embedded broker (Tansu) has no ACLs, and its SASL cannot be bootstrapped (docs/FIELD-NOTES.md),
so anyone on the host who reaches its port could register a device or a dashboard viewer, or write
events for any school. Every record a classtrace role writes therefore carries an HMAC-SHA256 in
its ``ct-sig`` header, under a key only the stack's roles hold (``CLASSTRACE_RECORD_KEY``; the
embedded stack keeps one in ``<data dir>/record.key``), and every reader checks it before use.

The MAC covers the topic, the record key and the value, each length-prefixed after a domain tag,
so a signed record cannot be replayed onto another topic or key, nor cut differently. The header
names the key by a short id (a digest of the key, not a secret), so a key can be rotated: the
setting lists several keys, the first signs, every one verifies. No key configured (a Kafka
cluster with SASL and ACLs, infra/kafka/acls.py): nothing is signed or checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HEADER", "KEY_BYTES", "Headers", "RecordKey", "new_key_text"]

HEADER = "ct-sig"
"""The record header that carries the signature."""
KEY_BYTES = 32
"""Bytes of a record key (written as 64 hex characters)."""
_VERSION = b"1"
_DOMAIN = b"classtrace-record-v1\x00"
_ID_DOMAIN = b"classtrace-record-key-id\x00"
_NONE = struct.pack(">q", -1)  # a missing key or a tombstone, distinct from b""

Headers = Sequence[tuple[str, Any]] | Mapping[str, Any] | None
"""Record headers as confluent-kafka (list of pairs) or Faust/aiokafka (list or mapping) give them."""


def new_key_text() -> str:
    """A fresh random key, as the setting and the key file hold it (hex)."""
    return secrets.token_hex(KEY_BYTES)


def _part(data: bytes | None) -> bytes:
    return _NONE if data is None else struct.pack(">q", len(data))


def _header(headers: Headers) -> bytes | None:
    if not headers:
        return None
    if isinstance(headers, Mapping):
        found = headers.get(HEADER)
        return bytes(found) if found is not None else None
    for name, value in headers:
        if name == HEADER:
            return bytes(value) if value is not None else None
    return None


@dataclass(frozen=True)
class RecordKey:
    """One or more HMAC keys: the first signs, each verifies (rotation: add the new key first)."""

    keys: tuple[bytes, ...]
    _by_id: dict[bytes, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys or any(len(k) < KEY_BYTES for k in self.keys):
            raise ValueError(f"a record key is at least {KEY_BYTES} bytes ({2 * KEY_BYTES} hex characters)")
        by_id = {_key_id(k): hmac.new(k, _DOMAIN, "sha256") for k in self.keys}
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def parse(cls, text: str) -> RecordKey:
        """``hex[,hex…]`` (the setting's form); ValueError on anything else."""
        try:
            keys = tuple(bytes.fromhex(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError("a record key is hex, several separated by commas") from None
        return cls(keys)

    @property
    def key_id(self) -> str:
        """The id of the signing key (safe to log)."""
        return _key_id(self.keys[0]).decode()

    def sign(self, topic: str, key: bytes | str | None, value: bytes | None) -> bytes:
        """The ``ct-sig`` header value of a record."""
        kid = _key_id(self.keys[0])
        return _VERSION + b"." + kid + b"." + self._mac(self._by_id[kid], topic, key, value)

    def headers(
        self, topic: str, key: bytes | str | None, value: bytes | None
    ) -> list[tuple[str, str | bytes | None]]:
        """The record's headers: just its signature (typed as confluent-kafka's ``produce`` takes them)."""
        return [(HEADER, self.sign(topic, key, value))]

    def problem(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers
    ) -> str | None:
        """None when the record's signature is one of these keys' over it, else why not (no value
        quoted: the reason goes into logs and dead letters)."""
        sig = _header(headers)
        if sig is None:
            return "unsigned record: not written by a classtrace role"
        version, _, rest = sig.partition(b".")
        kid, _, mac = rest.partition(b".")
        base = self._by_id.get(kid)
        if version != _VERSION or base is None:
            return "record signed with an unknown key"
        if not hmac.compare_digest(mac, self._mac(base, topic, key, value)):
            return "record signature does not verify"
        return None

    def verify(self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers) -> bool:
        """True when the record carries a valid signature (:meth:`problem` is None)."""
        return self.problem(topic, key, value, headers) is None

    @staticmethod
    def _mac(base: Any, topic: str, key: bytes | str | None, value: bytes | None) -> bytes:
        # A copy of the keyed state (the key's pads are hashed once), then each part length-prefixed.
        h = base.copy()
        name = topic.encode()
        raw_key = key.encode() if isinstance(key, str) else key
        h.update(struct.pack(">q", len(name)) + name + _part(raw_key) + (raw_key or b"") + _part(value))
        if value:
            h.update(value)
        return bytes(h.digest())


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(_ID_DOMAIN + key).hexdigest()[:8].encode()
