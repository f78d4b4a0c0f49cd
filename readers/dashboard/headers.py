"""Security headers on every dashboard response (issue 17's HTTP hardening).

The page is served with its viewer token in the URL (``?token=…``) and shows minors' classrooms,
so: no referrer leaves it (the token would travel in ``Referer``), no other site may frame it
(clickjacking), the browser may not guess content types, and the page may load and run only
its own scripts and styles, and connect only to its own origin (the SSE stream). The page,
``static/`` and the live endpoints all get them, whether the dashboard runs on its own
(``classtrace dashboard``) or mounted in the gateway's app (``classtrace up``).

A pure ASGI middleware: it adds headers to ``http.response.start`` and leaves the body alone, so
a Server-Sent Events stream passes through unbuffered.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "SecurityHeaders"]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
)
_ENCODED = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS]
_NAMES = {name for name, _ in _ENCODED}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (replacing any
    header of the same name the route set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": [*kept, *_ENCODED]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
