"""Who is asking: the viewer behind a request's token, or a 401 (429 while guessing) — and nothing else.

The token comes as ``Authorization: Bearer …`` or ``?token=…`` (EventSource cannot set headers).
Authorisation is by scope, applied by the handlers: a school viewer's snapshot, stream and detail
are filtered server-side to its school, so no other school's data ever reaches its browser.
Failed authentication is rate-limited per source and per token prefix, as at the gateway
(:mod:`classtrace.authlimit`): :func:`admit` answers 429 with ``Retry-After`` before it looks a
token up, and counts a failure only once the viewer registry is loaded (before, every token is
unknown).
"""

from __future__ import annotations

import asyncio

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from classtrace.authlimit import FailureLimiter
from readers.dashboard.viewers import Viewer, ViewerRegistry

__all__ = ["admit", "authenticate", "client_address", "request_token", "throttled", "unauthorized"]


def request_token(conn: HTTPConnection) -> str:
    """The viewer token a request carries ("" when none)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.query_params.get("token", "").strip()


async def authenticate(conn: HTTPConnection, registry: ViewerRegistry) -> Viewer | None:
    """The active viewer of ``conn``, or None for a missing, unknown or revoked token."""
    token = request_token(conn)
    if not token:
        return None
    # lookup may wait for the registry's first read at start-up: keep that off the event loop.
    return registry.lookup(token, wait=0) or await asyncio.to_thread(registry.lookup, token)


def unauthorized(conn: HTTPConnection) -> JSONResponse:
    """401 with a JSON reason, as the gateway answers (docs/DESIGN.md §5)."""
    reason = (
        "unknown or revoked viewer token"
        if request_token(conn)
        else ("a viewer token is required (Authorization: Bearer … or ?token=…)")
    )
    return JSONResponse({"error": reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def client_address(conn: HTTPConnection) -> str | None:
    """The peer address of ``conn`` (None when the server does not know it)."""
    return conn.client.host if conn.client else None


def throttled(wait: int) -> JSONResponse:
    """429 with ``Retry-After``, as the gateway answers a guessing client."""
    return JSONResponse(
        {"error": f"too many failed authentications from this address or token; retry after {wait} s"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


async def admit(
    conn: HTTPConnection, registry: ViewerRegistry, limiter: FailureLimiter
) -> Viewer | JSONResponse:
    """The viewer of ``conn``, or the 429 / 401 to answer.

    A blocked source or token prefix gets 429 before its token is looked at, a correct token too
    (:mod:`classtrace.authlimit` says why). A 401 counts against both once the registry is ready.
    """
    token, source = request_token(conn), client_address(conn)
    wait = limiter.retry_after(source, token)
    if wait is not None:
        return throttled(wait)
    viewer = await authenticate(conn, registry)
    if viewer is not None:
        return viewer
    if registry.ready.is_set():
        limiter.failed(source, token)
    return unauthorized(conn)
