"""Helpers of the gateway's HTTP tests without Kafka: a fake publisher, one device's events, and a
gateway app served by real uvicorn in a thread (for what only a socket shows: timeouts, a loop
kept free while a large body is judged)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import uvicorn

from classtrace.broker import free_port
from classtrace.ids import pseudonymise
from classtrace.v1 import events_pb2 as pb
from producers.errors import TransportError
from producers.gateway.serve import ForegroundServer, header_deadline_protocol
from tests.helpers.ingest_helpers import WAIT, wait_for

TOKEN = "tok-A"


class FakePublisher:
    """Records what the gateway publishes; ``fail = True`` makes every publish a TransportError."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, str | None]] = []
        self.fail = False

    def publish(self, topic, value, key=None):
        future = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(TransportError("broker down"))
        else:
            self.records.append((topic, value, key))
            future.set_result(None)
        return future

    def on(self, topic):
        return [value for t, value, _ in self.records if t == topic]


def event(**kw) -> pb.Event:
    """A valid event of TOKEN's device (sch-A / room-1 / tab-1), fields overridable."""
    ev = pb.Event(
        event_id=str(uuid.uuid4()),
        school_id="sch-A",
        classroom_id="room-1",
        device_id="tab-1",
        lesson_id="les-1",
        device_kind=pb.DEVICE_KIND_TABLET,
        seq=1,
    )
    ev.occurred_at.seconds = int(time.time())
    ev.trace.student_id = pseudonymise(b"k", "sch-A", "stu-1")
    ev.trace.verb = pb.LearningTrace.VERB_VIEWED
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


@contextlib.contextmanager
def serving(app, header_timeout: float = 10.0) -> Iterator[tuple[str, int]]:
    """Serve ``app`` as ``classtrace gateway`` does (httptools + the header deadline) on a free
    loopback port, in a thread named ``gateway-loop``; yields (host, port) once it accepts."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        http=header_deadline_protocol(header_timeout, app.state.gateway.metrics.header_timeouts.inc),
    )
    server = ForegroundServer(config)
    thread = threading.Thread(target=server.run, name="gateway-loop", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn start")
    assert server.started, "uvicorn did not start"
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(15)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a hang guard of WAIT s)."""
    sock.settimeout(WAIT)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)
