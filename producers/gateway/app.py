"""The ingest gateway's ASGI app: ``POST /v1/events``, ``/healthz``, ``/metrics``, ``/openapi.yaml``.

``build_app`` returns a Starlette app. The dashboard mounts its live routes into the same app
through ``extra_routes`` (and ``lifespans`` for its own start/stop), so one port serves both, as
``classtrace up`` and docs/DESIGN.md §5 want. The gateway object is ``app.state.gateway``.

Order of whole-request checks (each a JSON ``{"error": ...}``): 429 (with ``Retry-After``) while
the address or token prefix is blocked for failing authentication too often
(:mod:`classtrace.authlimit`), 401 missing/unknown token, 415 content type, 413 body over the
limit, 408 body not received within ``body_timeout``, 400 undecodable body, 413 over 1000 events;
then per-event verdicts in a 200. 503 (with ``Retry-After``) when Kafka did not confirm: the
device keeps its events and retries.

A body over ``offload_bytes`` is decoded and judged in a worker thread (at most
``offload_threads`` at once), so a large or hostile body cannot stall the event loop and every
other request with it; smaller bodies, the hot path, stay inline (a thread hop costs more than
they do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from classtrace.authlimit import DEFAULT_MAX_FAILURES, DEFAULT_MAX_KEYS, DEFAULT_WINDOW, FailureLimiter
from classtrace.codec import batch_from_json, decode_batch
from classtrace.errors import DecodeError
from classtrace.identity import room_key
from classtrace.signing import RecordKey
from classtrace.topics import DEADLETTER, DEVICES, EVENTS
from classtrace.validation import MAX_BATCH_EVENTS
from producers.errors import TransportError
from producers.gateway.auth import Authenticator, Binding, DeviceDirectory
from producers.gateway.ingest import Verdict, judge
from producers.gateway.limits import BODY_TIMEOUT, OFFLOAD_BYTES, OFFLOAD_THREADS
from producers.gateway.metrics import GatewayMetrics
from producers.gateway.publisher import AsyncPublisher

__all__ = ["Gateway", "GatewayConfig", "Publisher", "build_app"]

logger = logging.getLogger(__name__)

PROTOBUF_TYPES = frozenset(
    {"application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"}
)
JSON_TYPE = "application/json"
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway publishes and reads its registry, and its request limits."""

    bootstrap: str
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    events_topic: str = EVENTS
    deadletter_topic: str = DEADLETTER
    devices_topic: str = DEVICES
    max_body_bytes: int = MAX_BODY_BYTES
    max_events: int = MAX_BATCH_EVENTS
    ready_timeout: float = 30.0
    """How long start-up waits for the registry to be read before serving anyway."""
    body_timeout: float = BODY_TIMEOUT
    """Seconds from the end of the headers to the end of the body; then 408 and the connection
    is closed (``classtrace gateway --body-timeout``)."""
    offload_bytes: int = OFFLOAD_BYTES
    """Bodies above this size are decoded and judged in a worker thread."""
    offload_threads: int = OFFLOAD_THREADS
    """Large bodies decoded in worker threads at once (the rest wait their turn)."""
    auth_max_failures: int = DEFAULT_MAX_FAILURES
    """Failed authentications per address or token prefix within ``auth_window`` before 429
    (``classtrace gateway --auth-max-failures``)."""
    auth_window: float = DEFAULT_WINDOW
    """Seconds failures are counted over, and how long a block lasts (``--auth-window``)."""
    auth_max_keys: int = DEFAULT_MAX_KEYS
    """Addresses and token prefixes the limiter tracks at most (oldest evicted)."""
    record_key: RecordKey | None = None
    """Signs what the gateway publishes and checks the device registry (classtrace/signing.py)."""
    keep_raw: bool = False
    """Dead letters keep the rejected bytes, not only their digest (CLASSTRACE_DEADLETTER_KEEP_RAW)."""


class Publisher(Protocol):
    """What the gateway needs from Kafka (:class:`AsyncPublisher`, or a fake in unit tests)."""

    def publish(self, topic: str, value: bytes, key: str | None = None) -> asyncio.Future[None]: ...


_CLOSE = {"Connection": "close"}


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=JSON_TYPE)


class Gateway:
    """The request handlers and the state they share."""

    def __init__(
        self, config: GatewayConfig, directory: Authenticator, publisher: Publisher, metrics: GatewayMetrics
    ) -> None:
        self.config = config
        self.directory = directory
        self.publisher = publisher
        self.metrics = metrics
        self.limiter = FailureLimiter(config.auth_max_failures, config.auth_window, config.auth_max_keys)
        metrics.track_limiter(lambda: len(self.limiter))
        self._offload_slots = asyncio.Semaphore(config.offload_threads)

    def _error(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        self.metrics.request(status)
        return _json({"error": message}, status, headers)

    async def post_events(self, request: Request) -> Response:
        """``POST /v1/events`` (docs/DESIGN.md §5)."""
        binding = self._authenticate(request)
        if isinstance(binding, Response):
            return binding
        ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if ctype not in PROTOBUF_TYPES and ctype != JSON_TYPE:
            shown = repr(ctype[:80]) if ctype else "(none)"
            return self._error(
                415, f"unsupported content type {shown}: use application/x-protobuf or application/json"
            )
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        if len(body) <= self.config.offload_bytes:
            verdict = self._judge(body, ctype == JSON_TYPE, binding)
        else:
            async with self._offload_slots:
                verdict = await asyncio.to_thread(self._judge, body, ctype == JSON_TYPE, binding)
        if isinstance(verdict, Response):
            return verdict
        publish, config = self.publisher.publish, self.config
        key = room_key(binding.school_id, binding.classroom_id)
        futures = [publish(config.deadletter_topic, letter, key) for letter in verdict.dead_letters]
        if verdict.value is not None:
            futures.append(publish(config.events_topic, verdict.value, key))
        if futures:
            started = time.perf_counter()
            try:
                # One record (the common case) is awaited directly: gather() costs a task per request.
                await (futures[0] if len(futures) == 1 else asyncio.gather(*futures))
            except TransportError as exc:
                logger.warning("publish failed device=%s: %s", binding.device_id, exc)
                return self._error(503, f"not stored, retry: {exc}", {"Retry-After": "1"})
            self.metrics.publish_seconds.observe(time.perf_counter() - started)
        if verdict.accepted:
            self.metrics.accepted.inc(verdict.accepted)
        for reason in verdict.rejected_fields:
            self.metrics.rejected_event(reason)
        self.metrics.request(200)
        return _json({"accepted": verdict.accepted, "rejected": verdict.rejected})

    def _authenticate(self, request: Request) -> Binding | Response:
        """The token's binding, or the 429/401 to answer. A blocked address or token prefix gets
        429 before the token is looked at (see :mod:`classtrace.authlimit` for why even a correct
        one). Failures count only once the registry is loaded: before, every token is unknown."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
        source = request.client.host if request.client else None
        wait = self.limiter.retry_after(source, token)
        if wait is not None:
            self.metrics.auth_throttled.inc()
            return self._error(
                429,
                f"too many failed authentications from this address or token; retry after {wait} s",
                {"Retry-After": str(wait)},
            )
        binding = self.directory.lookup(token) if token else None
        if binding is not None:
            return binding
        if self.directory.ready:
            self.limiter.failed(source, token)
            self.metrics.auth_failures.inc()
        if not token:
            return self._error(401, "missing bearer token (Authorization: Bearer <device token>)")
        return self._error(401, "unknown or revoked device token")

    def _judge(self, body: bytes, is_json: bool, binding: Binding) -> Verdict | Response:
        """Decode and judge a body (inline, or in a worker thread when large), or the 400/413."""
        now_ns = time.time_ns()
        try:
            batch = batch_from_json(body) if is_json else decode_batch(body)
            n_events = len(batch.events)  # upb decodes lazily: a malformed event fails here
        except DecodeError as exc:
            return self._error(400, f"undecodable body: {exc}")
        if n_events > self.config.max_events:
            limit = self.config.max_events
            return self._error(413, f"{n_events} events exceed the limit of {limit} per request")
        return judge(batch, binding, now_ns, keep_raw=self.config.keep_raw)

    async def _read_body(self, request: Request) -> bytes | Response:
        """The body; or 413 once it exceeds the limit (the rest unread), or 408 when it has not
        arrived within ``body_timeout``. Both close the connection, whose unread rest would
        otherwise be parsed as the next request's bytes or keep a trickling client attached."""
        limit = self.config.max_body_bytes
        try:
            async with asyncio.timeout(self.config.body_timeout):
                body = await self._receive(request, limit)
        except TimeoutError:
            timeout = self.config.body_timeout
            return self._error(408, f"request body not received within {timeout:g} s", _CLOSE)
        if body is None:
            return self._error(413, f"body larger than {limit} bytes", _CLOSE)
        return body

    @staticmethod
    async def _receive(request: Request, limit: int) -> bytes | None:
        """The body, or None once it exceeds ``limit`` (without reading the rest)."""
        length = request.headers.get("content-length")
        if length is not None:
            with contextlib.suppress(ValueError):
                if int(length) > limit:
                    return None
                return await request.body()
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                return None
        return bytes(chunks)

    async def healthz(self, _request: Request) -> Response:
        """200 once the device registry is loaded, else 503."""
        if self.directory.ready:
            return _json({"status": "ok", "devices": len(self.directory)})
        return _json({"status": "starting", "devices": len(self.directory)}, 503)

    async def prometheus(self, _request: Request) -> Response:
        """Prometheus text exposition."""
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, _request: Request) -> Response:
        """The OpenAPI document of this API."""
        text = resources.files("producers.gateway").joinpath("openapi.yaml").read_bytes()
        return Response(text, media_type="application/yaml")


def build_app(
    config: GatewayConfig,
    *,
    directory: Authenticator | None = None,
    publisher: Publisher | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    lifespans: Sequence[Callable[[Starlette], AbstractAsyncContextManager[None]]] = (),
) -> Starlette:
    """The gateway app. ``directory``/``publisher`` default to Kafka-backed ones the app starts
    and stops itself; given ones are the caller's to manage. ``lifespans`` run inside the
    gateway's own (Kafka ready first, closed last)."""
    own_directory = own_publisher = None
    if directory is None:
        directory = own_directory = DeviceDirectory(
            config.bootstrap, config.kafka_options, config.devices_topic, record_key=config.record_key
        )
    if publisher is None:
        publisher = own_publisher = AsyncPublisher(
            config.bootstrap, config.kafka_options, record_key=config.record_key
        )
    gateway = Gateway(config, directory, publisher, GatewayMetrics())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_publisher is not None:
            own_publisher.start()
        if own_directory is not None:
            own_directory.start()
            if not await asyncio.to_thread(own_directory.wait_ready, config.ready_timeout):
                logger.warning("device registry not loaded after %.0f s; serving", config.ready_timeout)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for extra in lifespans:
                    await stack.enter_async_context(extra(app))
                yield
        finally:
            if own_directory is not None:
                await asyncio.to_thread(own_directory.stop)
            if own_publisher is not None:
                await asyncio.to_thread(own_publisher.close)

    routes: list[BaseRoute] = [
        Route("/v1/events", gateway.post_events, methods=["POST"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/metrics", gateway.prometheus, methods=["GET"]),
        Route("/openapi.yaml", gateway.openapi, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
