"""The ClickHouse seam: the one module that imports ``clickhouse_connect`` (docs/ARCHITECTURE.md).

Everything that talks to ClickHouse gets its client here, from a URL (docs/DESIGN.md §3)::

    chdb:///abs/dir                      the embedded engine (chDB, in this process)
    http(s)://user:pass@host:port/db     a ClickHouse server — or the HTTP endpoint of the
                                         ``classtrace up`` process that owns a chDB engine

chDB allows one engine per directory per process: a second process opening the same directory
fails with "Cannot lock file …/status". So :func:`resolve_target` lets a process that does *not*
own the embedded engine go through the owner instead: when ``<data dir>/runtime.json`` names a
running stack (another pid), it answers with that stack's ``clickhouse_http_url`` (served by
:mod:`classtrace.chserver`); otherwise it opens chDB directly.

Thread safety of the clients returned by :func:`connect`:

* HTTP clients are made without a session id (``autogenerate_session_id=False``), so one client
  can be shared by threads (e.g. ``asyncio.to_thread``): urllib3's pool is thread-safe and the
  server sees independent requests. The price: ``SET`` and temporary tables do not survive
  between calls — pass per-call ``settings=`` instead.
* A chDB client owns one engine handle guarded by a lock: sharing it between threads is safe but
  serialises their calls, and a thread must not start a call while it still iterates an open
  stream of the same client. For parallel work open one client per worker thread — handles are
  cheap (about 1 ms) and run concurrently on the one engine.

Errors from clickhouse-connect are turned into :class:`~classtrace.errors.StoreError` carrying
the ClickHouse error code (see :func:`store_errors`); messages name the URL with its password
redacted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from classtrace.errors import StoreError
from classtrace.runtime import read_runtime
from classtrace.settings import Settings, redact_url

__all__ = [
    "CHDB_PATH_KEY",
    "DEFAULT_DATABASE",
    "Client",
    "Target",
    "chdb_url",
    "close_quietly",
    "connect",
    "engine_dir",
    "local_schema_settings",
    "resolve_target",
    "store_errors",
    "target_of",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "classtrace"
CHDB_PATH_KEY = "chdb_path"
"""Key of ``Runtime.extra`` where the owner of an embedded engine records the engine's directory,
so that a process configured for a *different* chDB directory does not use that stack."""

TargetKind = Literal["chdb", "server", "stack"]


@dataclass(frozen=True)
class Target:
    """Which ClickHouse to use and how it was chosen.

    ``kind`` is ``chdb`` when this process opens the embedded engine itself (and so may have to
    create the schema), ``server`` for a configured ClickHouse server, ``stack`` for the HTTP
    endpoint of the running ``classtrace up`` that owns the embedded engine.
    """

    url: str
    kind: TargetKind

    @property
    def redacted(self) -> str:
        """The URL with its password replaced by ``***``: safe to log and print."""
        return redact_url(self.url)


def chdb_url(path: str | os.PathLike[str]) -> str:
    """``chdb:///abs/path`` for an engine directory (resolved: chDB compares paths literally)."""
    return "chdb://" + str(Path(path).resolve())


def target_of(url: str) -> Target:
    """The :class:`Target` a URL names by itself (no runtime-file lookup)."""
    scheme = urlsplit(url).scheme
    if scheme == "chdb":
        return Target(url, "chdb")
    if scheme in ("http", "https"):
        return Target(url, "server")
    raise StoreError(f"unsupported ClickHouse URL {redact_url(url)!r}: expected chdb://, http:// or https://")


def resolve_target(settings: Settings) -> Target:
    """The ClickHouse this process should use, honouring a running embedded stack.

    A server URL is used as given. For the embedded engine: when the data dir's runtime file
    names a running ``classtrace up`` of *another* process that serves the same chDB directory,
    go through its ClickHouse-HTTP endpoint; otherwise open chDB directly. The owner itself
    (same pid) always opens chDB.
    """
    path = settings.chdb_path
    if path is None:
        assert settings.clickhouse_url is not None  # chdb_path is None only for server URLs
        return Target(settings.clickhouse_url, "server")
    runtime = read_runtime(settings.data_dir)
    if (
        runtime is not None
        and runtime.clickhouse_http_url
        and runtime.pid != os.getpid()
        and runtime.extra.get(CHDB_PATH_KEY, str(path)) == str(path)
    ):
        return Target(runtime.clickhouse_http_url, "stack")
    return Target(chdb_url(path), "chdb")


def connect(
    target: str | Target | Settings,
    *,
    database: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **options: Any,
) -> Client:
    """A clickhouse-connect client for ``target`` (a URL, a :class:`Target` or the settings).

    ``database`` becomes the client's default database; when None, the database named in an
    HTTP URL's path, else ``classtrace``. The database is not checked here (it may not exist
    before migrations run); calls with ``use_database=False`` work regardless. ``settings`` are
    ClickHouse settings for every call; ``options`` go to ``clickhouse_connect.get_client``.

    Given :class:`~classtrace.settings.Settings`, the target is :func:`resolve_target`'s choice.
    Raises :class:`StoreError` when the connection cannot be made.
    """
    if isinstance(target, Settings):
        target = resolve_target(target)
    elif isinstance(target, str):
        target = target_of(target)
    parts = urlsplit(target.url)
    kwargs: dict[str, Any] = dict(options)
    if parts.scheme == "chdb":
        url_db = None
        # chdb:///abs/path: the whole path is the engine directory (no database part).
        kwargs["dsn"] = chdb_url(unquote(parts.netloc + parts.path))
    else:
        url_db = unquote(parts.path.strip("/")) or None
        kwargs["dsn"] = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
        kwargs["interface"] = parts.scheme  # clickhouse-connect reads TLS from the port, not the scheme
        # One client shared by threads must not carry a session: concurrent calls in one
        # session are refused by clickhouse-connect and by the server.
        kwargs.setdefault("autogenerate_session_id", False)
        if target.kind == "stack":
            # Loopback to our own process: compressing would only burn CPU on both ends.
            kwargs.setdefault("compress", False)
    with store_errors(f"cannot connect to ClickHouse at {target.redacted}"):
        client = clickhouse_connect.get_client(settings=dict(settings or {}), **kwargs)
    # Set after construction: the handshake must not depend on the database existing yet.
    client.database = database or url_db or DEFAULT_DATABASE
    logger.debug(
        "clickhouse connected url=%s kind=%s database=%s", target.redacted, target.kind, client.database
    )
    return client


def close_quietly(client: Client | None) -> None:
    """Close ``client``, logging instead of raising (for ``finally`` blocks and shutdown)."""
    if client is None:
        return
    try:
        client.close()
    except Exception:
        logger.debug("closing a ClickHouse client failed", exc_info=True)


def _clickhouse_message(exc: BaseException) -> str:
    """The ClickHouse part of a clickhouse-connect error, without the driver's preamble."""
    text = str(exc).strip()
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    # HTTP errors end with "(for url http://host:port)"; the caller names the URL itself.
    cut = text.rfind(" (for url ")
    if cut > 0:
        text = text[:cut]
    return text


@contextmanager
def store_errors(context: str = "") -> Iterator[None]:
    """Turn clickhouse-connect errors raised inside the block into :class:`StoreError`.

    The StoreError carries ClickHouse's numeric code (``None`` for transport failures) and a
    message ``"<context>: <ClickHouse message>"``::

        with store_errors("query failed"):
            client.command("DROP TABLE nope")
    """
    try:
        yield
    except ClickHouseError as exc:
        code = getattr(exc, "code", None)
        message = _clickhouse_message(exc)
        if "Cannot lock file" in message:
            message += (
                " — another process owns this chDB directory; start it with `classtrace up` so"
                " it publishes its runtime file, or point CLASSTRACE_CLICKHOUSE_URL elsewhere"
            )
        raise StoreError(f"{context}: {message}" if context else message, code) from exc


def engine_dir(client: Any) -> Path | None:
    """The directory of an embedded chDB client; None for a ClickHouse server (or a stand-in)."""
    if type(client).__name__ != "ChdbClient":
        return None
    path = getattr(client, "path", None)
    return Path(path) if isinstance(path, str) and path else None


def local_schema_settings(settings: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """``settings`` with an inline format schema (``format_schema_source = 'string'``) turned
    into a file under ``directory``, for chDB.

    With an inline schema ClickHouse caches it as a file under its ``format_schema_path``, which
    for chDB is the process's working directory (a stray ``__cache__/`` wherever ``classtrace up``
    was started; measured with chDB 26.9, whose ``format_schema_path`` option has no effect). An
    embedded engine reads a schema file by absolute path instead, so the schema is written once
    under the engine's directory, named by its content hash. Other settings pass through.
    """
    if str(settings.get("format_schema_source", "")).lower() != "string":
        return dict(settings)
    text = str(settings.get("format_schema", ""))
    message = str(settings.get("format_schema_message_name", ""))
    schemas = directory / "format_schemas"
    path = schemas / f"inline_{hashlib.sha256(text.encode()).hexdigest()[:16]}.proto"
    if not path.exists():
        schemas.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: concurrent writers of the same schema agree on the content
    rest = {
        k: v
        for k, v in settings.items()
        if k not in ("format_schema_source", "format_schema", "format_schema_message_name")
    }
    return {**rest, "format_schema": f"{path}:{message}" if message else str(path)}
