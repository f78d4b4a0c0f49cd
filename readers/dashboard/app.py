"""The live endpoints of docs/DESIGN.md §5 as Starlette routes: page ``/``, JSON snapshot, SSE stream.

``live_routes()`` gives the routes plus start/stop callables, so ``classtrace up`` mounts them in
the gateway's app (one HTTP port); ``build_app()`` wraps the same routes in a standalone app for
``classtrace dashboard``. Endpoints::

    GET /                                 the inspection page (no data; asks for a token)
    GET /static/dashboard/…               its JS and CSS
    GET /v1/live/classrooms               {"seq", "scope", "classrooms": [card, …]}
    GET /v1/live/classrooms/{school}/{classroom}
                                          one card + st_codes, series, device_list,
                                          alert_history (404 outside scope)
    GET /v1/live/classrooms/{classroom}   404 naming the two-segment form: room numbers repeat
                                          across schools, so one segment cannot name a classroom
    GET /v1/live/stream                   SSE: "snapshot" once, then "update" with changed cards
                                          at most every push_interval s; ": ping" comments when idle;
                                          "revoked" (then close) when the token is revoked

All ``/v1/live`` endpoints need a viewer token; a school viewer only ever receives its school.
Failed authentication is rate-limited (429 + ``Retry-After``, :func:`readers.dashboard.auth.admit`).
Every snapshot, detail and stream opening is recorded on the access log (:mod:`classtrace.access`,
docs/DASHBOARD.md "Access log"): queued, never awaited, once per stream rather than per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from prometheus_client import Gauge
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from classtrace.access import AccessLog, AccessRecord, AccessRecorder
from classtrace.authlimit import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW, FailureLimiter
from classtrace.signing import RecordKey
from classtrace.topics import ACCESS, ALERTS, METRICS, VIEWERS
from readers.dashboard.auth import admit, client_address
from readers.dashboard.feed import TopicTail, alerts_handler, metrics_handler
from readers.dashboard.headers import SecurityHeaders
from readers.dashboard.state import LiveState
from readers.dashboard.viewers import Viewer, ViewerRegistry

__all__ = ["AMBIGUOUS_CLASSROOM", "LiveRoutes", "LiveService", "build_app", "live_routes"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
SSE_CLIENTS = Gauge("classtrace_dashboard_sse_clients", "Browsers connected to /v1/live/stream")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
AMBIGUOUS_CLASSROOM = (
    "a classroom is named by its school and its id: use /v1/live/classrooms/{school_id}/{classroom_id}"
)
"""The 404 reason of the one-segment detail URL (room numbers repeat across schools)."""


class LiveRoutes(NamedTuple):
    """What :func:`live_routes` returns: routes to mount, and the service's start/stop."""

    routes: list[BaseRoute]
    start: Callable[[], None]
    stop: Callable[[], None]


def _sse(event: str, data: Mapping[str, Any], event_id: int | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


class LiveService:
    """Live classroom state fed from Kafka, and the HTTP handlers that serve it."""

    def __init__(
        self,
        bootstrap: str | None,
        options: Mapping[str, str] | None = None,
        *,
        metrics_topic: str = METRICS,
        alerts_topic: str = ALERTS,
        viewers_topic: str = VIEWERS,
        access_topic: str = ACCESS,
        push_interval: float = 0.5,
        heartbeat_interval: float = 15.0,
        state: LiveState | None = None,
        registry: ViewerRegistry | None = None,
        access_log: AccessRecorder | None = None,
        auth_max_failures: int = DEFAULT_MAX_FAILURES,
        auth_window: float = DEFAULT_WINDOW,
        record_key: RecordKey | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.record_key = record_key
        """Viewer registrations and metrics not signed with it are ignored (classtrace/signing.py)."""
        self.options = dict(options or {})
        self.metrics_topic = metrics_topic
        self.alerts_topic = alerts_topic
        self.viewers_topic = viewers_topic
        self.push_interval = push_interval
        self.heartbeat_interval = heartbeat_interval
        self.state = state if state is not None else LiveState()
        self.registry = registry if registry is not None else ViewerRegistry()
        self.access_topic = access_topic
        self.access_log = access_log
        """Where accesses are recorded: given, else an :class:`AccessLog` made at :meth:`start`."""
        self._own_access_log: AccessLog | None = None
        self.limiter = FailureLimiter(auth_max_failures, auth_window)
        self._feed: TopicTail | None = None
        self._alert_feed: TopicTail | None = None
        self._closing = False
        self._page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Tail the viewer registry, the metrics and alerts topics from their beginnings (non-blocking)."""
        if self.bootstrap is None:
            return  # state and registry were given (tests, tools)
        if self.access_log is None:
            self.access_log = self._own_access_log = AccessLog(
                self.bootstrap, self.options, self.access_topic
            )
        self.registry.follow(self.bootstrap, self.options, self.viewers_topic, record_key=self.record_key)
        handle = metrics_handler(self.state)
        self._feed = TopicTail(
            self.bootstrap,
            self.metrics_topic,
            handle,
            self.options,
            name="metrics",
            record_key=self.record_key,
        )
        self._feed.start()
        self._alert_feed = TopicTail(
            self.bootstrap,
            self.alerts_topic,
            alerts_handler(self.state),
            self.options,
            name="alerts",
            record_key=self.record_key,
        )
        self._alert_feed.start()

    def stop(self) -> None:
        """End the SSE streams and stop the Kafka threads."""
        self._closing = True
        self.registry.stop()
        for feed in (self._feed, self._alert_feed):
            if feed is not None:
                feed.stop()
        if self._own_access_log is not None:
            self._own_access_log.close(timeout=2.0)

    @property
    def caught_up(self) -> bool:
        """True once the metrics topic was read to the end it had at start. The alerts topic is not
        waited for: it may not exist yet (no worker has written one), and the cards stand without it."""
        return self._feed is None or self._feed.ready.is_set()

    # -- handlers ----------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """The routes of docs/DESIGN.md §5's live endpoints (no /healthz, /metrics: the host app has them)."""
        secure = [Middleware(SecurityHeaders)]  # readers/dashboard/headers.py
        static = StaticFiles(directory=STATIC_DIR)
        return [
            Route("/", self.page, methods=["GET"], middleware=secure),
            Mount("/static/dashboard", static, middleware=secure, name="dashboard-static"),
            Route("/v1/live/classrooms", self.snapshot, methods=["GET"], middleware=secure),
            Route(
                "/v1/live/classrooms/{school_id}/{classroom_id}",
                self.detail,
                methods=["GET"],
                middleware=secure,
            ),
            Route("/v1/live/classrooms/{classroom_id}", self.ambiguous, methods=["GET"], middleware=secure),
            Route("/v1/live/stream", self.stream, methods=["GET"], middleware=secure),
        ]

    async def page(self, request: Request) -> Response:
        """The dashboard page; it carries no data, so it needs no token."""
        return HTMLResponse(self._page, headers={"Cache-Control": "no-cache"})

    async def _viewer(
        self, request: Request, action: str, target: str = "", school: str = ""
    ) -> Viewer | Response:
        """The request's viewer, or the 429/401 to answer (a 401 is logged as denied; a 429 is not,
        so a blocked guesser cannot fill the log)."""
        found = await admit(request, self.registry, self.limiter)
        if isinstance(found, Response) and found.status_code == 401:
            self._log(request, None, action, "denied", target, school)
        return found

    def _log(
        self,
        request: Request,
        viewer: Viewer | None,
        action: str,
        outcome: str,
        target: str = "",
        school: str = "",
    ) -> None:
        """Queue one access record; never raises, never waits (the request matters more than its log)."""
        if self.access_log is None:
            return
        viewer_id, scope = (viewer.viewer_id, viewer.scope) if viewer else ("", "")
        source = client_address(request) or ""
        try:
            record = AccessRecord.new(viewer_id, scope, action, target, outcome, source, school_id=school)
            self.access_log.record(record)
        except Exception:  # a broken log must not break the dashboard
            logger.exception("access record not queued action=%s viewer=%s", action, viewer_id)

    async def snapshot(self, request: Request) -> Response:
        """JSON of every classroom card the viewer may see."""
        viewer = await self._viewer(request, "dashboard.snapshot")
        if isinstance(viewer, Response):
            return viewer
        self._log(request, viewer, "dashboard.snapshot", "allowed", school=viewer.school_id)
        seq, cards = self.state.cards(viewer.scope)
        body = {"seq": seq, "scope": viewer.scope, "caught_up": self.caught_up, "classrooms": cards}
        return Response(orjson.dumps(body), media_type="application/json")

    async def detail(self, request: Request) -> Response:
        """One classroom's detail; 404 when unknown or in another school than the viewer's (the
        access log tells the two apart: ``not_found`` and ``denied``)."""
        school, room = request.path_params["school_id"], request.path_params["classroom_id"]
        viewer = await self._viewer(request, "dashboard.detail", f"{school}/{room}", school)
        if isinstance(viewer, Response):
            return viewer
        found = self.state.detail(school, room, viewer.scope)
        outcome = "allowed" if found else "denied" if viewer.scope not in (None, school) else "not_found"
        self._log(request, viewer, "dashboard.detail", outcome, f"{school}/{room}", school)
        if found is None:
            return JSONResponse({"error": "no such classroom"}, status_code=404)
        return Response(orjson.dumps(found), media_type="application/json")

    async def ambiguous(self, request: Request) -> Response:
        """The old one-segment URL: 404 naming the two-segment form, never a guess.

        Two schools may both have the room, so answering with either would show one school's
        lesson to whoever asked for the other's.
        """
        room = request.path_params["classroom_id"]
        viewer = await self._viewer(request, "dashboard.detail", room)
        if isinstance(viewer, Response):
            return viewer
        self._log(request, viewer, "dashboard.detail", "not_found", room)
        return JSONResponse({"error": AMBIGUOUS_CLASSROOM}, status_code=404)

    async def stream(self, request: Request) -> Response:
        """Server-Sent Events: a snapshot, then the cards that changed, every push_interval s.
        Logged once, at opening: the updates are the same access continued."""
        viewer = await self._viewer(request, "dashboard.stream")
        if isinstance(viewer, Response):
            return viewer
        self._log(request, viewer, "dashboard.stream", "allowed", school=viewer.school_id)
        return StreamingResponse(
            self._events(request, viewer), media_type="text/event-stream", headers=_SSE_HEADERS
        )

    async def _events(self, request: Request, viewer: Viewer) -> AsyncIterator[bytes]:
        scope = viewer.scope
        SSE_CLIENTS.inc()
        try:
            seq, cards = self.state.cards(scope)
            yield b"retry: 2000\n" + _sse("snapshot", {"seq": seq, "scope": scope, "classrooms": cards}, seq)
            last_sent = time.monotonic()
            while not self._closing:
                await asyncio.sleep(self.push_interval)
                if not self.registry.is_active(viewer):
                    yield _sse("revoked", {"error": "viewer token revoked"})
                    return
                seq, changed = self.state.changes_since(seq, scope)
                if changed:
                    yield _sse("update", {"seq": seq, "classrooms": changed}, seq)
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= self.heartbeat_interval:
                    yield b": ping\n\n"  # keeps proxies and the browser from timing out
                    last_sent = time.monotonic()
                if await request.is_disconnected():
                    return
        finally:
            SSE_CLIENTS.dec()


def live_routes(
    bootstrap: str,
    options: Mapping[str, str],
    **kwargs: Any,
) -> LiveRoutes:
    """The live endpoints for the gateway's app: ``routes, start, stop = live_routes(...)``.

    Call ``start()`` in the host app's startup (returns at once; state fills in the background)
    and ``stop()`` at shutdown. ``kwargs`` go to :class:`LiveService` (topics, intervals).
    """
    service = LiveService(bootstrap, options, **kwargs)
    return LiveRoutes(service.routes(), service.start, service.stop)


def build_app(bootstrap: str | None, options: Mapping[str, str] | None = None, **kwargs: Any) -> Starlette:
    """The standalone dashboard app of ``classtrace dashboard``: live routes + /healthz + /metrics."""
    service = LiveService(bootstrap, options, **kwargs)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "classrooms": len(service.state), "caught_up": service.caught_up})

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics), *service.routes()],
        lifespan=lifespan,
    )
    app.state.live = service
    return app
