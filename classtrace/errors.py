"""The error root of classtrace and the errors of its shared core.

Every error classtrace raises on purpose derives from :class:`ClasstraceError`, so a caller can
catch the project's failures without catching programming errors::

    ClasstraceError
    ├── ConfigError            a setting is missing or malformed (names the setting)
    ├── ValidationError        an event breaks a rule of docs/DESIGN.md §4 (carries field and reason)
    ├── DecodeError            bytes that are not the expected message (keeps the raw bytes and
    │                          where they came from: topic/partition/offset)
    ├── BrokerError            Kafka or the embedded broker failed (start, connect, topic admin)
    ├── StoreError             ClickHouse failed (carries the ClickHouse error code when known)
    │   └── MigrationError     a numbered migration failed to apply
    └── StackNotRunning        a command needs a running embedded stack and found none

Stage packages (producers, stream_processors, sinks, …) derive their own errors from these.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ClasstraceError",
    "ConfigError",
    "DecodeError",
    "MigrationError",
    "StackNotRunning",
    "StoreError",
    "ValidationError",
]


class ClasstraceError(Exception):
    """Root of every error classtrace raises on purpose."""


class ConfigError(ClasstraceError):
    """A setting is missing or malformed; the message names the setting and its env var."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class ValidationError(ClasstraceError):
    """An event breaks a rule of docs/DESIGN.md §4.

    ``field`` is the dotted path of the offending field (``trace.student_id``), ``reason`` the
    broken rule in words that never quote a text value of the event, and ``got`` that value as
    the sender wrote it (shortened), or None. ``str(error)`` adds ``got`` and is meant only for
    the sender (it is their own data); :attr:`rule` leaves it out and is what dead letters and
    logs keep, so a raw identifier sent by mistake is never stored (issue 17).
    """

    def __init__(self, field: str, reason: str, got: str | None = None) -> None:
        text = f"{field}: {reason}" if field else reason
        super().__init__(text if got is None else f"{text}, got {got}")
        self.field = field
        self.reason = reason
        self.got = got

    @property
    def rule(self) -> str:
        """``field: reason`` without the offending value: the text that may be stored or logged."""
        return f"{self.field}: {self.reason}" if self.field else self.reason


class DecodeError(ClasstraceError):
    """Bytes that do not decode as the expected message.

    Keeps the raw bytes and, for a Kafka record, where it was found, so the record can be
    dead-lettered as received.
    """

    def __init__(
        self,
        message: str,
        raw: bytes = b"",
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.raw = raw
        self.topic = topic
        self.partition = partition
        self.offset = offset


class BrokerError(ClasstraceError):
    """Kafka or the embedded Tansu broker failed: start-up, connection, topic administration."""


class StoreError(ClasstraceError):
    """ClickHouse failed; ``code`` is ClickHouse's numeric error code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MigrationError(StoreError):
    """A numbered schema migration failed to apply; ``version`` names it."""

    def __init__(self, version: int, message: str, code: int | None = None) -> None:
        super().__init__(f"migration {version:04d}: {message}", code)
        self.version = version


class StackNotRunning(ClasstraceError):
    """A command needed the running embedded stack of a data dir and found none."""
