"""One ClickHouse-HTTP request executed on a chDB handle: the engine side of :mod:`classtrace.chserver`.

Turns what a ClickHouse HTTP client sends — SQL text (``query`` parameter + body), ``database``,
``default_format``, ``param_*`` binds, settings as URL parameters, ``INSERT … FORMAT X`` followed
by data — into calls on a chDB ``Connection``, and chDB's answer or exception into what
ClickHouse would reply (body, ``X-ClickHouse-*`` headers, exception code and HTTP status).
"""

from __future__ import annotations

import gzip
import importlib
import json
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from classtrace.sqlguard import QueryRefused, check, check_setting

__all__ = ["Failure", "Reply", "decode_body", "failure_from", "http_status", "run_request"]

# URL parameters that steer the HTTP transport itself, not the query: never sent to chDB as SET.
_TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "user", "password", "query_id", "session_id",
        "session_timeout", "session_check", "compress", "decompress", "buffer_size",
        "wait_end_of_query", "client_protocol_version", "role", "quota_key",
        "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "enable_http_compression", "cancel_http_readonly_queries_on_client_close",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)  # fmt: skip
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
# "INSERT INTO t (a, b) [SETTINGS …] FORMAT Native" then, after whitespace up to and including
# the first newline, the data — the way ClickHouse's parser finds where an insert's data starts.
_INSERT = re.compile(
    rb"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(INSERT\s+INTO\s.*?)\bFORMAT\s+(\w+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_HEAD_SCAN = 64 * 1024

# ClickHouse's exception code → HTTP status (HTTPHandler's mapping, the codes that matter here).
_STATUS = {
    194: 401,  # REQUIRED_PASSWORD
    516: 403,  # AUTHENTICATION_FAILED
    497: 403,  # ACCESS_DENIED
    6: 400, 27: 400, 36: 400, 43: 400, 47: 400, 53: 400, 62: 400, 115: 400, 117: 400, 271: 400,
    408: 400,
    46: 404, 60: 404, 73: 404, 81: 404,
    229: 413,  # QUERY_IS_TOO_LARGE
    1: 501, 48: 501,  # UNSUPPORTED_METHOD, NOT_IMPLEMENTED
}  # fmt: skip


class Failure(Exception):
    """A request that fails with a ClickHouse error code; its text is ClickHouse's exception text."""

    def __init__(self, code: int, message: str, name: str = "") -> None:
        # With a name, ``message`` is only the detail: spell it the way ClickHouse does.
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})" if name else message)
        self.code = code


@dataclass
class Reply:
    """What to answer: HTTP status, body and headers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def decode_body(body: bytes, encoding: str) -> bytes:
    """Undo an HTTP ``Content-Encoding``; clickhouse-connect compresses each block on its own, so
    lz4 and zstd bodies are concatenated frames."""
    encoding = encoding.strip().lower()
    if not body or encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        zstd: Any = importlib.import_module("backports.zstd")  # a clickhouse-connect dependency
        return bytes(zstd.decompress(body))
    if encoding == "br":
        brotli: Any = importlib.import_module("brotli")
        return bytes(brotli.decompress(body))
    if encoding == "lz4":
        lz4frame: Any = importlib.import_module("lz4.frame")  # a clickhouse-connect dependency
        out: list[bytes] = []
        rest = body
        while rest:
            decompressor = lz4frame.LZ4FrameDecompressor()
            out.append(decompressor.decompress(rest))
            if not decompressor.eof:
                raise ValueError("truncated lz4 frame")
            rest = decompressor.unused_data
        return b"".join(out)
    raise Failure(89, f"Unknown compression method {encoding!r}", "UNKNOWN_COMPRESSION_METHOD")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def run_request(
    conn: Any, text: bytes, params: Mapping[str, str], timezone: str = "UTC", *, guarded: bool = False
) -> Reply:
    """Run one request's SQL (``text`` = query parameter + newline + body) on chDB ``conn``.

    The handle should be fresh: ``USE`` and the settings are applied to it with ``SET``. A
    ``guarded`` request (an analyst's, not the stack's own) may carry only harmless settings, must
    pass :func:`classtrace.sqlguard.check` and then runs with ``readonly=1``; it never takes the
    INSERT path. Raises :class:`Failure` for errors chDB or the request itself reports (code 497,
    ACCESS_DENIED, for what the guard refuses).
    """
    try:
        return _run(conn, text, params, timezone, guarded)
    except Failure:
        raise
    except QueryRefused as exc:
        raise Failure(497, f"classtrace refused this query: {exc}", "ACCESS_DENIED") from exc
    except Exception as exc:  # chDB raises RuntimeError subclasses carrying "Code: N."
        raise failure_from(exc) from exc


def failure_from(exc: BaseException) -> Failure:
    """The :class:`Failure` for a chDB exception (its "Code: N." when it has one)."""
    message = str(exc)
    start = message.find("Code: ")
    message = message[start:] if start > 0 else message
    match = _CODE.search(message)
    return Failure(int(match.group(1)) if match else 1001, message)


def http_status(code: int) -> int:
    """The HTTP status ClickHouse answers an exception ``code`` with."""
    return _STATUS.get(code, 500)


def _guard(conn: Any, text: bytes, binds: Mapping[str, str], database: str) -> None:
    def run(sql: str, params: Mapping[str, str]) -> str:
        # the binds as the request gave them, bound the way the request's own query binds them
        return bytes(conn.query(sql, "TSVRaw", params=dict(params)).bytes() or b"").decode()

    try:
        sql = text.decode()
    except UnicodeDecodeError as exc:
        raise Failure(62, f"query is not valid UTF-8: {exc}", "SYNTAX_ERROR") from exc
    check(sql, run, binds, database)
    conn.query("SET readonly = 1", "TabSeparated")  # the second fence, after our own SETs


def _apply_settings(conn: Any, params: Mapping[str, str], guarded: bool) -> None:
    """URL parameters other than the transport's and ``param_*`` become ``SET``s on ``conn``."""
    for key, value in params.items():
        if key in _TRANSPORT_PARAMS or key.startswith("param_"):
            continue
        if not _SETTING_NAME.match(key):
            raise Failure(115, f"Unknown setting '{key}'", "UNKNOWN_SETTING")
        if guarded:
            check_setting(key)
        conn.query(f"SET {key} = {_quote(value)}", "TabSeparated")


def _run(conn: Any, text: bytes, params: Mapping[str, str], timezone: str, guarded: bool) -> Reply:
    started = time.perf_counter()
    if database := params.get("database"):
        conn.query(f"USE {_identifier(database)}", "TabSeparated")
    _apply_settings(conn, params, guarded)
    binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
    reply = Reply(headers={"X-ClickHouse-Timezone": timezone})
    if guarded:
        _guard(conn, text, binds, database or "default")
    # Never for guarded SQL: this regex and the engine's parser may disagree (nested comments).
    insert = None if guarded else _INSERT.match(text[:_HEAD_SCAN])
    if insert is not None:
        head, fmt = insert.group(1).decode(), insert.group(2).decode()
        inserter = conn.send_insert(head, fmt)
        with inserter:
            data = text[insert.end() :]
            if data:
                inserter.append(data)
            result = inserter.finish()
        summary = {"written_rows": result.rows_written, "written_bytes": result.bytes_written}
    else:
        try:
            sql = text.decode()
        except UnicodeDecodeError as exc:
            raise Failure(62, f"query is not valid UTF-8: {exc}", "SYNTAX_ERROR") from exc
        embedded = _TRAILING_FORMAT.search(sql)
        fmt = embedded.group(1) if embedded else params.get("default_format", "TabSeparated")
        # Like clickhouse-connect's chDB backend: WithNames tells a statement that yields a
        # (maybe empty) result apart from one that yields none, which the client's command()
        # learns from X-ClickHouse-Format.
        probe = embedded is None and fmt in ("TabSeparated", "TSV")
        result = conn.query(sql, "TabSeparatedWithNames" if probe else fmt, params=binds)
        body = result.bytes() or b""
        if probe:
            newline = body.find(b"\n")
            body = body[newline + 1 :] if newline >= 0 else b""
            if newline >= 0:
                reply.headers["X-ClickHouse-Format"] = fmt
        else:
            reply.headers["X-ClickHouse-Format"] = fmt
        reply.body = body
        summary = {
            "read_rows": result.rows_read(),
            "read_bytes": result.bytes_read(),
            "written_rows": result.rows_written(),
            "written_bytes": result.bytes_written(),
        }
    summary_text = {k: str(v) for k, v in summary.items()}
    summary_text["elapsed_ns"] = str(int((time.perf_counter() - started) * 1e9))
    reply.headers["X-ClickHouse-Summary"] = json.dumps(summary_text)
    return reply
