"""A ClickHouse-HTTP endpoint in front of this process's chDB engine, for the other processes.

chDB allows one engine per data directory per process, so the process that owns it (``classtrace
up``) answers everybody else's SQL (docs/DESIGN.md §2): ``classtrace query``, ``report``, the
loadtest reconciliation. :class:`ChdbHttpServer` speaks enough of ClickHouse's HTTP interface for a
stock ``clickhouse_connect.get_client(host=..., port=..., password=...)`` client — and curl::

    server = ChdbHttpServer("/data/chdb").start()
    write_runtime(data_dir, Runtime(..., clickhouse_http_url=server.url,
                                    extra={CHDB_PATH_KEY: "/data/chdb"}))

What it does, per request: SQL from the ``query`` URL parameter followed by the body (or the
body alone; multipart forms too), ``database``, ``default_format``, ``param_*`` bind
parameters, other URL parameters applied as ClickHouse settings (``SET``), ``INSERT … FORMAT X``
with the data in the body streamed in through chDB's ``send_insert`` (gzip, deflate, zstd, lz4
and br ``Content-Encoding`` decoded), the result in the format the SQL ends with (TabSeparated
by default), errors as ClickHouse sends them (non-200, the exception text, the
``X-ClickHouse-Exception-Code`` header), ``GET /ping``.

Security: it binds to a loopback address only and every request but ``/ping`` must carry the
shared secret as the password — HTTP basic auth (``user:secret``), ``X-ClickHouse-Key`` or the
``password`` URL parameter; the user name is not checked. The secret is random per start unless
given, and :attr:`ChdbHttpServer.url` carries it (``http://classtrace:<secret>@127.0.0.1:port``):
the owner publishes that URL in the runtime file, which only the owner's user can read.

Limits: no sessions (each request gets a fresh chDB handle, so ``SET``/``USE``/temporary tables do
not outlive a request — exactly like ClickHouse HTTP without ``session_id``); results are built in
memory before they are sent (no streaming; keep results reasonable); no external data tables;
ClickHouse's own compressed format (``decompress=1``) is refused; at most ``max_concurrency``
queries run at once (others wait). Handles are cheap (~1 ms) and run concurrently on the one
engine, so requests need no global lock.
"""

from __future__ import annotations

import atexit
import base64
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

from classtrace.chquery import Failure, Reply, decode_body, http_status, run_request
from classtrace.clickhouse import local_schema_settings
from classtrace.errors import StoreError
from classtrace.sqlguard import READER_USER

__all__ = ["ChdbHttpServer"]

logger = logging.getLogger(__name__)

_open_handle: Callable[[str], Any] = chdb.connect  # typed here: chdb's connect is not annotated


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _password(authorization: str, key: str | None, params: Mapping[str, str]) -> str | None:
    """The secret a request gives: ``password`` parameter, else ``X-ClickHouse-Key``, else basic auth."""
    given: str | None = None
    if authorization.startswith("Basic "):
        try:
            given = base64.b64decode(authorization[6:]).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = "\0"  # malformed: a wrong secret (no secret contains NUL), not a missing one
    return params.get("password", key or given) or None


def _basic_user(authorization: str) -> str | None:
    if not authorization.startswith("Basic "):
        return None
    try:
        return base64.b64decode(authorization[6:]).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return None


def _engine_path(client_or_path: Any) -> str:
    """The engine directory of a path or a clickhouse-connect chDB client (``client.path``)."""
    path = (
        client_or_path
        if isinstance(client_or_path, (str, os.PathLike))
        else getattr(client_or_path, "path", None)
    )
    if path is None:
        raise StoreError("ChdbHttpServer needs a chDB directory or a chdb:// client")
    text = os.fspath(path)
    if text.startswith("chdb://"):
        text = text[len("chdb://") :]
    # chDB compares engine paths literally: spell it the way clickhouse-connect does.
    return os.path.realpath(text)


class ChdbHttpServer:
    """Serve this process's chDB engine over a subset of the ClickHouse HTTP interface.

    ``client_or_path`` is the engine directory or a clickhouse-connect chDB client on it (the
    engine must be this process's one). Bound to ``host`` (loopback only) and ``port`` (0 = any
    free port). ``password`` is the shared secret, random when None.
    """

    def __init__(
        self,
        client_or_path: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        password: str | None = None,
        *,
        username: str = "classtrace",
        reader_password: str | None = None,
        max_concurrency: int = 4,
        max_body_bytes: int = 1 << 30,
    ) -> None:
        if not _loopback(host):
            raise ValueError(f"ChdbHttpServer binds to loopback addresses only, not {host!r}")
        self.path = _engine_path(client_or_path)
        self.host = host
        self.username = username
        self.password = password or secrets.token_urlsafe(32)
        self.reader_password = reader_password or secrets.token_urlsafe(32)
        self.max_body_bytes = max_body_bytes
        self._requested_port = port
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._anchor: Any = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.timezone = "UTC"
        self.version = ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ChdbHttpServer:
        """Open the engine (or join this process's open one) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        try:
            # Held for the server's lifetime: the engine stays up even if no other handle is open.
            self._anchor = _open_handle(self.path)
            info = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode()
        except Exception as exc:
            raise StoreError(f"cannot open chDB at {self.path}: {exc}") from exc
        self.version, _, tz = info.strip().partition("\t")
        self.timezone = tz or "UTC"
        handler = type("_BoundHandler", (_Handler,), {"server_owner": self})
        self._httpd = ThreadingHTTPServer((self.host, self._requested_port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="chdb-http", daemon=True
        )
        self._thread.start()
        # chDB crashes at interpreter exit if a handle is still open: close ours first.
        atexit.register(self.stop)
        logger.info("chdb http endpoint listening url=%s path=%s", self.redacted_url, self.path)
        return self

    def stop(self) -> None:
        """Stop serving and release the engine handle (in-flight requests finish first)."""
        atexit.unregister(self.stop)
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    def __enter__(self) -> ChdbHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._httpd is None:
            raise StoreError("ChdbHttpServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://<user>:<secret>@host:port``: a URL for :func:`classtrace.clickhouse.connect`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{self.username}:{self.password}@{host}:{self.port}"

    @property
    def reader_url(self) -> str:
        """``http://reader:<reader secret>@host:port``: what to hand an analyst or a viewer's tool;
        every request with it is guarded (:mod:`classtrace.sqlguard`) and read-only."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{READER_USER}:{self.reader_password}@{host}:{self.port}"

    @property
    def redacted_url(self) -> str:
        """:attr:`url` without the secret, for logs."""
        return self.url.replace(self.password, "***")

    # -- request execution (called from handler threads) ---------------------------------------

    def authorized(self, authorization: str, key: str | None, params: Mapping[str, str]) -> bool | None:
        """True for a known secret (owner's or reader's), False for a wrong one, None for none.

        The secret may come as basic auth (``Authorization``), ``X-ClickHouse-Key`` or the
        ``password`` URL parameter, the ways ClickHouse accepts a password.
        """
        given = _password(authorization, key, params)
        if given is None:
            return None
        return any(hmac.compare_digest(given.encode(), s.encode()) for s in self._secrets())

    def guarded(
        self, authorization: str, key: str | None, user: str | None, params: Mapping[str, str]
    ) -> bool:
        """Whether an authorized request is an analyst's: the reader secret, or the reader user name.

        Only the owner's secret with another user name is trusted (the stack's own roles: sink,
        migrations, reports, loadtest); that secret is in the owner's runtime file alone.
        """
        given = _password(authorization, key, params) or ""
        if self.reader_password and hmac.compare_digest(given.encode(), self.reader_password.encode()):
            return True
        name = params.get("user") or user or _basic_user(authorization)
        return name == READER_USER

    def _secrets(self) -> list[str]:
        return [self.password, *([self.reader_password] if self.reader_password else [])]

    def execute(self, text: bytes, params: Mapping[str, str], *, guarded: bool = False) -> Reply:
        """Run one request's SQL on a fresh handle (its own ``USE`` and ``SET`` state); a
        ``guarded`` one through :mod:`classtrace.sqlguard` and read-only."""
        with self._slots:
            conn = _open_handle(self.path)
            try:
                # an inline format schema becomes a file under the engine directory (see
                # local_schema_settings): chDB would otherwise cache it in our working directory
                if not guarded:  # a guarded request may not name a schema file (check_setting)
                    params = {k: str(v) for k, v in local_schema_settings(params, Path(self.path)).items()}
                return run_request(conn, text, params, self.timezone, guarded=guarded)
            finally:
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    """One connection's requests (keep-alive); the logic lives in :class:`ChdbHttpServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "classtrace-chdb"
    server_owner: ChdbHttpServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("chdb http %s", format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _fail(self, failure: Failure) -> None:
        body, code, version = str(failure), failure.code, self.server_owner.version
        body = f"{body} (version {version})\n" if version and "(version" not in body else body + "\n"
        self._send(
            Reply(
                status=http_status(code),
                body=body.encode(),
                headers={
                    "X-ClickHouse-Exception-Code": str(code),
                    "Content-Type": "text/plain; charset=UTF-8",
                },
            )
        )

    def _handle(self) -> None:
        owner = self.server_owner
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/ping":
            self._send(Reply(body=b"Ok.\n"))
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        ok = owner.authorized(
            self.headers.get("Authorization", ""), self.headers.get("X-ClickHouse-Key"), params
        )
        if not ok:
            self.close_connection = True  # the body was not read
            if ok is None:
                self._fail(Failure(194, "classtrace: a password is required", "REQUIRED_PASSWORD"))
            else:
                self._fail(Failure(516, "classtrace: password is incorrect", "AUTHENTICATION_FAILED"))
            return
        if url.path not in ("", "/"):
            self.close_connection = True
            self._fail(Failure(48, f"unknown HTTP path {url.path!r}", "NOT_IMPLEMENTED"))
            return
        try:
            body = self._read_body(owner.max_body_bytes)
            if params.get("decompress") in ("1", "true"):
                raise Failure(48, "compressed bodies (decompress=1) are not supported", "NOT_IMPLEMENTED")
            body = decode_body(body, self.headers.get("Content-Encoding", ""))
            if self.headers.get_content_type() == "multipart/form-data":
                body = self._form_query(body, params)
            query = params.get("query", "")
            text = (query.encode() + b"\n" + body) if query else body
            if not text.strip():
                raise Failure(62, "Empty query", "SYNTAX_ERROR")
            guarded = owner.guarded(
                self.headers.get("Authorization", ""),
                self.headers.get("X-ClickHouse-Key"),
                self.headers.get("X-ClickHouse-User"),
                params,
            )
            self._send(owner.execute(text, params, guarded=guarded))
        except Failure as exc:
            self._fail(exc)
        except (ValueError, OSError, EOFError) as exc:  # undecodable body / bad chunking
            self.close_connection = True
            self._fail(Failure(271, str(exc), "CANNOT_DECOMPRESS"))
        except Exception as exc:  # a bug here must still answer, not drop the connection
            logger.exception("chdb http request failed")
            self.close_connection = True
            self._fail(Failure(1001, f"{type(exc).__name__}: {exc}", "STD_EXCEPTION"))

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    self.close_connection = True
                    raise Failure(229, f"request body over {limit} bytes", "QUERY_IS_TOO_LARGE")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self.close_connection = True
            raise Failure(229, f"request body over {limit} bytes", "QUERY_IS_TOO_LARGE")
        return self.rfile.read(length) if length else b""

    def _form_query(self, body: bytes, params: dict[str, str]) -> bytes:
        """multipart/form-data (clickhouse-connect's form encoding): fields become parameters."""
        head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            if part.get_filename():
                raise Failure(48, "external data is not supported here", "NOT_IMPLEMENTED")
            payload = part.get_payload(decode=True)
            params[name] = payload.decode() if isinstance(payload, bytes) else str(payload)
        return b""
