"""Dashboard viewer tokens: issued once, stored as hashes, event-sourced on ``classtrace.viewers.v1``.

A viewer is either all-schools (``school_id == ""``) or bound to one school, whose classrooms are
the only ones it sees. The registry's record of truth is the compacted topic (key = viewer id,
value = a JSON registration holding only the token's SHA-256); every live service materialises it
by tailing the topic from the beginning, so a token added by ``classtrace viewers add`` works
within about a second anywhere.

Tansu keeps topics in memory, so the embedded stack also keeps each registration it publishes in
``<data dir>/viewers.jsonl`` (hashes only) and :func:`restore_viewers` re-publishes them at start.
The one secret kept on disk is the all-schools token ``classtrace up`` prints
(``<data dir>/dashboard.token``, mode 0600): it must be printable again after a restart.

Given the stack's record key (classtrace/signing.py), registrations are signed when published and
readers ignore any that is not: on the embedded broker, which has no ACLs, whoever reaches its port
could otherwise register an all-schools viewer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from classtrace.errors import BrokerError
from classtrace.kafka import Message, ensure_topics, make_producer, read_compacted
from classtrace.signing import RecordKey
from classtrace.tokens import new_token, token_hash
from classtrace.topics import VIEWERS, TopicSpec
from readers.dashboard.feed import TopicTail

__all__ = [
    "ADMIN_TOKEN_FILE",
    "VIEWERS_FILE",
    "Viewer",
    "ViewerRegistry",
    "add_viewer",
    "ensure_admin_token",
    "list_viewers",
    "publish_viewers",
    "restore_viewers",
    "revoke_viewer",
]

logger = logging.getLogger(__name__)

VIEWERS_FILE = "viewers.jsonl"
ADMIN_TOKEN_FILE = "dashboard.token"
ADMIN_VIEWER_ID = "admin"
_TOKEN_PREFIX = "ctv_"


@dataclass(frozen=True)
class Viewer:
    """One viewer registration (what the topic and the data-dir file hold: never the token)."""

    viewer_id: str
    school_id: str
    """``""`` = every school; otherwise the one school this viewer may see."""
    token_sha256: str
    created_at: str
    label: str = ""
    revoked: bool = False

    @property
    def scope(self) -> str | None:
        """The school filter to apply to what this viewer sees (None = all schools)."""
        return self.school_id or None

    def encode(self) -> bytes:
        """The record value on ``classtrace.viewers.v1``."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Viewer:
        """Parse a record value (or a line of the data-dir file)."""
        data = json.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _new_token() -> str:
    return new_token(_TOKEN_PREFIX)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _spec(topic: str) -> TopicSpec:
    return TopicSpec(topic, {"cleanup.policy": "compact"}, single_partition=True)


class ViewerRegistry:
    """The materialised registry: token hash → latest registration of its viewer."""

    def __init__(self, viewers: Iterable[Viewer] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Viewer] = {}
        self._by_hash: dict[str, Viewer] = {}
        self._tail: TopicTail | None = None
        self.ready = threading.Event()
        given = list(viewers)
        for viewer in given:
            self.put(viewer)
        if given:  # a registry built from known viewers (tests, tools) has nothing to wait for
            self.ready.set()

    def put(self, viewer: Viewer) -> None:
        """Apply one registration (the latest per viewer id wins, as on the compacted topic)."""
        with self._lock:
            old = self._by_id.get(viewer.viewer_id)
            if old is not None:
                self._by_hash.pop(old.token_sha256, None)
            self._by_id[viewer.viewer_id] = viewer
            if not viewer.revoked:
                self._by_hash[viewer.token_sha256] = viewer

    def lookup(self, token: str, wait: float = 2.0) -> Viewer | None:
        """The active viewer holding ``token``, or None; waits up to ``wait`` s for the first read."""
        if not token:
            return None
        digest = token_hash(token)
        with self._lock:
            found = self._by_hash.get(digest)
        if found is None and not self.ready.is_set() and self.ready.wait(wait):
            with self._lock:
                found = self._by_hash.get(digest)
        return found

    def is_active(self, viewer: Viewer) -> bool:
        """True while ``viewer``'s token is still registered and not revoked."""
        with self._lock:
            return self._by_hash.get(viewer.token_sha256) is not None

    def viewers(self) -> list[Viewer]:
        """Every registration, revoked ones included, by viewer id."""
        with self._lock:
            return [self._by_id[k] for k in sorted(self._by_id)]

    def _handle(self, message: Message) -> None:
        self.apply(message.key(), message.value())

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        """Apply one record of the registry topic (a value of None is a tombstone)."""
        if value is None:  # a tombstone: the viewer is gone
            key = key.decode() if isinstance(key, bytes) else (key or "")
            with self._lock:
                old = self._by_id.pop(key, None)
                if old is not None:
                    self._by_hash.pop(old.token_sha256, None)
            return
        self.put(Viewer.decode(value))

    def follow(
        self,
        bootstrap: str,
        options: Mapping[str, str] | None = None,
        topic: str = VIEWERS,
        *,
        record_key: RecordKey | None = None,
    ) -> None:
        """Start tailing ``topic`` from its beginning on a background thread (with ``record_key``,
        signed registrations only)."""
        tail = TopicTail(bootstrap, topic, self._handle, options, name="viewers", record_key=record_key)
        self._tail = tail.start()
        threading.Thread(target=self._mirror_ready, daemon=True).start()

    def _mirror_ready(self) -> None:
        tail = self._tail
        while tail is not None and tail.alive() and not tail.ready.wait(0.2):
            pass
        if tail is not None and tail.ready.is_set():
            self.ready.set()

    def stop(self) -> None:
        """Stop tailing."""
        if self._tail is not None:
            self._tail.stop()


# -- publishing ----------------------------------------------------------------------------
def publish_viewers(
    bootstrap: str,
    options: Mapping[str, str] | None,
    viewers: Iterable[Viewer],
    topic: str = VIEWERS,
    *,
    record_key: RecordKey | None = None,
) -> int:
    """Write registrations (signed with ``record_key``) to the registry topic (created if
    missing); returns how many."""
    ensure_topics(bootstrap, 1, options, topics=[_spec(topic)])
    producer = make_producer(bootstrap, options)
    count = 0
    for viewer in viewers:
        key, value = viewer.viewer_id.encode(), viewer.encode()
        headers = record_key.headers(topic, key, value) if record_key else None
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
        count += 1
    if producer.flush(30) > 0:
        raise BrokerError(f"viewer registrations not acknowledged by {bootstrap!r} within 30 s")
    return count


def _keep(data_dir: Path, viewer: Viewer) -> None:
    """Append a registration to the data-dir copy (hashes only; 0600 all the same)."""
    path = Path(data_dir) / VIEWERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(viewer.encode().decode() + "\n")


def kept_viewers(data_dir: Path) -> list[Viewer]:
    """The latest registration per viewer kept in the data dir (unreadable lines are skipped)."""
    latest: dict[str, Viewer] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (Path(data_dir) / VIEWERS_FILE).read_text().splitlines():
            try:
                viewer = Viewer.decode(line)
            except (ValueError, TypeError, KeyError):
                logger.warning("skipping a malformed line of %s", VIEWERS_FILE)
                continue
            latest[viewer.viewer_id] = viewer
    return list(latest.values())


def add_viewer(
    bootstrap: str,
    options: Mapping[str, str] | None,
    school_id: str = "",
    label: str = "",
    data_dir: Path | None = None,
    topic: str = VIEWERS,
    *,
    record_key: RecordKey | None = None,
) -> tuple[Viewer, str]:
    """Register a new viewer; returns it and its token (shown once: only the hash is kept)."""
    token = _new_token()
    viewer = Viewer(
        viewer_id="v_" + secrets.token_hex(6),
        school_id=school_id,
        token_sha256=token_hash(token),
        created_at=_now(),
        label=label,
    )
    publish_viewers(bootstrap, options, [viewer], topic, record_key=record_key)
    if data_dir is not None:
        _keep(data_dir, viewer)
    return viewer, token


def revoke_viewer(
    bootstrap: str,
    options: Mapping[str, str] | None,
    viewer_id: str,
    data_dir: Path | None = None,
    topic: str = VIEWERS,
    *,
    record_key: RecordKey | None = None,
) -> Viewer | None:
    """Mark a viewer revoked (its token stops working within ~1 s); None when unknown."""
    current = {v.viewer_id: v for v in list_viewers(bootstrap, options, topic, record_key=record_key)}
    viewer = current.get(viewer_id)
    if viewer is None:
        return None
    revoked = replace(viewer, revoked=True)
    publish_viewers(bootstrap, options, [revoked], topic, record_key=record_key)
    if data_dir is not None:
        _keep(data_dir, revoked)
    return revoked


def list_viewers(
    bootstrap: str,
    options: Mapping[str, str] | None = None,
    topic: str = VIEWERS,
    timeout: float = 10.0,
    *,
    record_key: RecordKey | None = None,
) -> list[Viewer]:
    """Read the registry topic to its end once; every viewer's latest (signed) registration."""
    ensure_topics(bootstrap, 1, options, topics=[_spec(topic)])
    registry = ViewerRegistry()
    read_compacted(
        bootstrap, topic, registry.apply, options, timeout=timeout, name="viewers", record_key=record_key
    )
    return registry.viewers()


# -- the embedded stack (`classtrace up`) ---------------------------------------------------
def restore_viewers(
    data_dir: Path,
    bootstrap: str,
    options: Mapping[str, str],
    topic: str = VIEWERS,
    *,
    record_key: RecordKey | None = None,
) -> int:
    """Re-publish the registrations kept in ``data_dir`` (Tansu forgot them); returns how many."""
    kept = kept_viewers(data_dir)
    if kept:
        publish_viewers(bootstrap, options, kept, topic, record_key=record_key)
        logger.info("restored viewer registrations count=%d", len(kept))
    return len(kept)


def ensure_admin_token(
    data_dir: Path,
    bootstrap: str,
    options: Mapping[str, str],
    topic: str = VIEWERS,
    *,
    record_key: RecordKey | None = None,
) -> str:
    """The all-schools token ``classtrace up`` prints: the one kept in ``data_dir``, else a new one.

    The token lives in ``<data dir>/dashboard.token`` (0600) so the URL stays the same across
    restarts; its registration (hash only) is published every time, since the topic may be new.
    """
    path = Path(data_dir) / ADMIN_TOKEN_FILE
    token = _read_or_create_token(path)
    viewer = Viewer(ADMIN_VIEWER_ID, "", token_hash(token), _now(), label="classtrace up")
    publish_viewers(bootstrap, options, [viewer], topic, record_key=record_key)
    return token


def _read_or_create_token(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token
        path.unlink()
        return _read_or_create_token(path)
    token = _new_token()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token
