"""Bearer-token authentication of devices: the gateway's live view of ``classtrace.devices.v1``.

A background thread reads the compacted registry topic from the beginning to its end and keeps
following it (:class:`classtrace.kafka.CompactedTopicReader`), so a token from
``classtrace devices add`` works within a poll interval or two and a revoked one stops as soon as
the revocation is read. Lookups are one SHA-256 (:func:`classtrace.tokens.token_hash`) and one
dict read, on the request path. With the stack's record key, a registration that is not signed
with it (classtrace/signing.py) is logged and ignored: it grants no token.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from classtrace.kafka import CompactedTopicReader, KafkaException
from classtrace.signing import RecordKey
from classtrace.tokens import token_hash
from classtrace.topics import DEVICES
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.registry import apply_record

__all__ = ["Authenticator", "Binding", "DeviceDirectory", "StaticDirectory"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Binding:
    """What a token allows: events of exactly this school, classroom and device."""

    school_id: str
    classroom_id: str
    device_id: str
    device_kind: pb.DeviceKind.ValueType = pb.DEVICE_KIND_UNSPECIFIED

    @classmethod
    def of(cls, reg: ppb.DeviceRegistration) -> Binding:
        """The binding a registration grants."""
        return cls(reg.school_id, reg.classroom_id, reg.device_id, reg.device_kind)


class Authenticator(Protocol):
    """Token → binding; the gateway needs nothing else from the registry."""

    @property
    def ready(self) -> bool:
        """True once the registry has been read up to where it was at start."""
        ...

    def lookup(self, token: str) -> Binding | None:
        """The binding of a valid, unrevoked token, else None."""
        ...

    def __len__(self) -> int: ...


class StaticDirectory:
    """A fixed token table (tests, benchmarks): ``StaticDirectory({token: binding})``."""

    def __init__(self, tokens: Mapping[str, Binding]) -> None:
        self._by_hash = {token_hash(t): b for t, b in tokens.items()}

    @property
    def ready(self) -> bool:
        """Always ready."""
        return True

    def lookup(self, token: str) -> Binding | None:
        """The binding of ``token``."""
        return self._by_hash.get(token_hash(token))

    def __len__(self) -> int:
        return len(self._by_hash)


class DeviceDirectory:
    """Materialises the registry topic in a thread: start(), wait_ready(), lookup(), stop()."""

    def __init__(
        self,
        bootstrap: str,
        options: Mapping[str, str] | None = None,
        topic: str = DEVICES,
        poll_interval: float = 0.1,
        record_key: RecordKey | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.record_key = record_key
        self.options = dict(options or {})
        self.topic = topic
        self.poll_interval = poll_interval
        self._registrations: dict[str, ppb.DeviceRegistration] = {}
        self._by_hash: dict[str, Binding] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """True once the registry was read up to its end at start."""
        return self._ready.is_set()

    def lookup(self, token: str) -> Binding | None:
        """The binding of a valid, unrevoked token."""
        return self._by_hash.get(token_hash(token))

    def __len__(self) -> int:
        return len(self._by_hash)

    def start(self) -> None:
        """Start following the topic."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="device-directory", daemon=True)
            self._thread.start()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until caught up (True) or ``timeout`` (False)."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                logger.exception("device directory failed; reconnecting topic=%s", self.topic)
                self._stop.wait(1.0)

    def _follow(self) -> None:
        with CompactedTopicReader(
            self.bootstrap, self.topic, self.options, name="gateway", record_key=self.record_key
        ) as reader:
            while not self._stop.is_set():
                try:
                    reader.catch_up(self._apply, math.inf, self._stop.is_set)
                    break
                except KafkaException as exc:  # the topic may not exist yet
                    logger.warning("registry topic not readable yet topic=%s: %s", self.topic, exc)
                    self._stop.wait(0.5)
            if reader.caught_up:
                self._mark_ready()
            while not self._stop.is_set():
                reader.poll(self._apply, self.poll_interval)

    def _mark_ready(self) -> None:
        self._ready.set()
        logger.info("device directory ready devices=%d topic=%s", len(self._by_hash), self.topic)

    def _apply(self, key: bytes | str | None, value: bytes | None) -> None:
        # In-place updates: a dict get/set/pop is atomic under the GIL, so request handlers
        # read without a lock, and catching up on a large registry stays linear.
        name = key.decode() if isinstance(key, bytes) else (key or "")
        previous = self._registrations.get(name)
        reg = apply_record(self._registrations, key, value)
        if previous is not None:
            self._by_hash.pop(previous.token_sha256, None)
        if reg is not None and not reg.revoked:
            self._by_hash[reg.token_sha256] = Binding.of(reg)
