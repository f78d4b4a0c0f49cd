"""Failed-authentication rate limit shared by the HTTP roles (gateway devices, dashboard viewers).

A guessing client is slowed down per *source* (its address; an IPv6 address by its /64, which one
host usually owns whole) and per *token prefix* (a keyed hash of the first characters of the token
it presents, so a token retried from rotating addresses is caught too). After ``max_failures``
failures within ``window`` seconds a key is blocked for ``window`` seconds; the caller answers 429
with ``Retry-After`` before it looks the token up, so a blocked client costs two dict reads.

A correct token presented from a blocked source is refused as well, until the block ends: were it
checked, every guess would still be answered (429 for wrong, 200 for right), and the block would
protect nothing. The cost falls on honest devices sharing the guesser's address (a school's NAT);
the defaults leave room for several misconfigured devices retrying with capped backoff.

Neither the token nor its prefix is stored: only a keyed BLAKE2b hash of the prefix, under a key
made at start. Memory is bounded: at most ``max_keys`` entries, the least recently seen (failing, or knocking
while blocked) evicted first. A flood from more than ``max_keys`` addresses can therefore evict
a quiet block early; it cannot grow the table. Not thread-safe: use one limiter from one event loop.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_FAILURES",
    "DEFAULT_MAX_KEYS",
    "DEFAULT_WINDOW",
    "PREFIX_CHARS",
    "FailureLimiter",
]

DEFAULT_MAX_FAILURES = 30
"""Failures per key and window before a block: several honest devices behind one NAT retrying a
revoked token every ≤ 30 s (the SDK's backoff cap) stay below it."""
DEFAULT_WINDOW = 60.0
"""Seconds over which failures are counted, and how long a block lasts."""
DEFAULT_MAX_KEYS = 65_536
"""Entries kept at most (~150 bytes each): a bound on memory whatever an attacker sends."""
PREFIX_CHARS = 12
"""Characters of a token that make its prefix key: past any fixed prefix (``ctv_``), yet far too
few (~48 random bits) to stand for the token."""


@dataclass(slots=True)
class _Entry:
    started: float
    failures: int = 0
    blocked_until: float = 0.0


class FailureLimiter:
    """``retry_after(source, token)`` before checking a token, ``failed(source, token)`` after a
    wrong one. ``source`` is the client address (None when unknown), ``token`` the presented token
    ("" when none)."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window <= 0 or max_keys < 2:
            raise ValueError(
                f"need max_failures >= 1, window > 0, max_keys >= 2; got {max_failures}, {window}, {max_keys}"
            )
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._key = secrets.token_bytes(16)
        self._table: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, source: str | None, token: str) -> int | None:
        """Whole seconds until ``source`` and ``token``'s prefix are both unblocked; None when
        neither is blocked (the common case: one or two dict reads)."""
        if not self._table:
            return None
        now = self._clock()
        until = 0.0
        for key in self._keys(source, token):
            entry = self._table.get(key)
            if entry is not None and entry.blocked_until > now:
                until = max(until, entry.blocked_until)
                self._table.move_to_end(key)  # a blocked client still knocking is kept
        return max(1, math.ceil(until - now)) if until else None

    def failed(self, source: str | None, token: str) -> None:
        """Count one failed authentication against ``source`` and ``token``'s prefix."""
        now = self._clock()
        for key in self._keys(source, token):
            entry = self._table.get(key)
            if entry is None or (now >= entry.started + self.window and now >= entry.blocked_until):
                entry = self._table[key] = _Entry(now)
                self._table.move_to_end(key)
                while len(self._table) > self.max_keys:
                    self._table.popitem(last=False)
            else:
                self._table.move_to_end(key)
            entry.failures += 1
            if entry.failures >= self.max_failures and entry.blocked_until <= now:
                entry.blocked_until = now + self.window

    def _keys(self, source: str | None, token: str) -> list[str]:
        keys = []
        if source:
            keys.append("a:" + _source_key(source))
        if token:
            prefix = token[:PREFIX_CHARS].encode()
            keys.append("t:" + hashlib.blake2b(prefix, key=self._key, digest_size=12).hexdigest())
        return keys


def _source_key(host: str) -> str:
    """An IPv4 address as is, an IPv6 address by its /64, anything else (a socket path) as is."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
