"""The gateway's HTTP hardening (docs/INGEST.md, "Limits"): 429 after repeated failed
authentication, 408 for stalled headers or bodies, and large bodies judged off the event loop."""

from __future__ import annotations

import socket
import threading

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from classtrace.codec import encode_batch
from classtrace.v1 import events_pb2 as pb
from producers.gateway import app as gateway_app
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.auth import Binding, StaticDirectory
from tests.helpers.gateway_http import TOKEN, FakePublisher, event, read_until_closed, serving
from tests.helpers.ingest_helpers import WAIT

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BINDING = Binding("sch-A", "room-1", "tab-1", pb.DEVICE_KIND_TABLET)
PB = "application/x-protobuf"


class Directory(StaticDirectory):
    """A static token table whose readiness a test sets."""

    is_ready = True

    @property
    def ready(self) -> bool:
        return self.is_ready


def make_app(publisher=None, directory=None, **config):
    return build_app(
        GatewayConfig("unused:9092", events_topic="ev", deadletter_topic="dl", **config),
        directory=directory or Directory({TOKEN: BINDING}),
        publisher=publisher or FakePublisher(),
    )


def post(client, token, body=b""):
    headers = {"Content-Type": PB}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/v1/events", content=body, headers=headers)


# -- failed-authentication limit --------------------------------------------------------------


def test_a_guessing_address_gets_429_and_other_addresses_are_served():
    app = make_app(auth_max_failures=3, auth_window=60)
    guesser = TestClient(app, client=("203.0.113.5", 40000))
    school = TestClient(app, client=("198.51.100.7", 40000))
    statuses = [post(guesser, token).status_code for token in ("guess-1", None, "guess-3", "guess-4")]
    assert statuses == [401, 401, 401, 429]
    refused = post(guesser, TOKEN, encode_batch([event()]))  # correct, but the address is blocked
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"].startswith("too many failed authentications")
    assert post(school, TOKEN, encode_batch([event()])).json() == {"accepted": 1, "rejected": []}
    text = school.get("/metrics").text
    assert "classtrace_gateway_auth_failures_total 3.0" in text
    assert "classtrace_gateway_auth_throttled_total 2.0" in text
    assert 'classtrace_gateway_requests_total{status="429"} 2.0' in text
    assert "classtrace_gateway_auth_limiter_keys 3.0" in text  # 1 address + 2 token prefixes


def test_one_wrong_token_from_rotating_addresses_is_blocked_by_its_prefix():
    app = make_app(auth_max_failures=3)
    stolen = "revoked-token-0123456789"
    for i in range(3):
        assert post(TestClient(app, client=(f"10.1.0.{i}", 1)), stolen).status_code == 401
    fresh = TestClient(app, client=("10.1.0.99", 1))
    r = post(fresh, stolen)
    assert r.status_code == 429 and stolen not in r.text
    assert post(fresh, TOKEN, encode_batch([event()])).status_code == 200  # the address itself is fine


def test_failures_before_the_registry_is_loaded_do_not_count():
    directory = Directory({TOKEN: BINDING})
    directory.is_ready = False  # every token is unknown until the registry is read
    client = TestClient(make_app(directory=directory, auth_max_failures=2), client=("10.2.0.1", 1))
    assert {post(client, "issued-but-not-yet-read").status_code for _ in range(5)} == {401}
    directory.is_ready = True
    assert post(client, TOKEN, encode_batch([event()])).status_code == 200


# -- timeouts, on a real server ---------------------------------------------------------------


def _headers(extra: str = "") -> bytes:
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: {PB}\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("first", "stalled"),
    [
        (b"", b""),  # connects and sends nothing
        (b"", b"POST /v1/ev"),  # half a request line
        (b"", b"POST /v1/events HTTP/1.1\r\nHost: gw\r\nAuthoriz"),  # half the headers
        (b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHo"),  # keep-alive
    ],
    ids=["silent", "request-line", "headers", "second-request"],
)
def test_a_connection_stalled_in_its_headers_is_closed_with_408(first, stalled):
    app = make_app()
    with serving(app, header_timeout=0.5) as (host, port), socket.create_connection((host, port)) as sock:
        sock.settimeout(WAIT)
        if first:
            sock.sendall(first)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(stalled)
        answer = read_until_closed(sock)  # returns only once the server has closed the connection
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head
        assert orjson.loads(body) == {"error": "request line and headers not received in time"}
        metrics = httpx.get(f"http://{host}:{port}/metrics", timeout=WAIT).text
    assert "classtrace_gateway_header_timeouts_total 1.0" in metrics


@pytest.mark.parametrize("framing", ["Content-Length: 1000\r\n", "Transfer-Encoding: chunked\r\n"])
def test_a_trickled_body_gets_408_and_the_connection_is_closed(framing):
    publisher = FakePublisher()
    app = make_app(publisher, body_timeout=0.5)
    with serving(app) as (host, port), socket.create_connection((host, port)) as sock:
        partial = b"\x0a\x05" if framing.startswith("Content") else b"2\r\n\x0a\x05\r\n"
        sock.sendall(_headers(framing) + partial)  # and the rest never comes
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
    assert b"request body not received within 0.5 s" in body
    assert publisher.records == []


# -- large bodies off the event loop ----------------------------------------------------------


class Held:
    """Wraps a function of the gateway so that a call signals ``entered`` and waits for
    ``release`` (at most WAIT s) before running: the request is parked inside it for as long
    as the test needs, and the thread it runs on is recorded."""

    def __init__(self, func) -> None:
        self.func = func
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait(WAIT)
        return self.func(*args, **kwargs)


EMPTY_EVENTS_MIB = b'{"events":[' + b",".join([b"{}"] * 349_000) + b"]}"  # just under 1 MiB


@pytest.mark.parametrize(
    ("target", "ctype", "body", "status"),
    [
        ("batch_from_json", "application/json", EMPTY_EVENTS_MIB, 413),
        ("judge", PB, encode_batch([event() for _ in range(1000)]), 200),
    ],
    ids=["1MiB-empty-json-events", "1000-protobuf-events"],
)
def test_healthz_is_answered_while_a_large_body_is_judged(monkeypatch, target, ctype, body, status):
    assert gateway_app.OFFLOAD_BYTES < len(body) <= gateway_app.MAX_BODY_BYTES
    held = Held(getattr(gateway_app, target))
    monkeypatch.setattr(gateway_app, target, held)
    order: list[str] = []
    big: list[httpx.Response] = []

    def post_big() -> None:
        headers = {"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}"}
        big.append(httpx.post(url + "/v1/events", content=body, headers=headers, timeout=2 * WAIT))
        order.append("large body")

    with serving(make_app()) as (host, port):
        url = f"http://{host}:{port}"
        sender = threading.Thread(target=post_big)
        sender.start()
        try:
            assert held.entered.wait(WAIT), "the large body never reached the decoder"
            assert httpx.get(url + "/healthz", timeout=2 * WAIT).status_code == 200
            order.append("healthz")
        finally:
            held.release.set()
            sender.join(2 * WAIT)
    assert order == ["healthz", "large body"]
    assert big[0].status_code == status
    assert held.threads and held.threads[0] != "gateway-loop"


def test_a_small_body_is_judged_inline_on_the_event_loop(monkeypatch):
    held = Held(gateway_app.judge)
    held.release.set()
    monkeypatch.setattr(gateway_app, "judge", held)
    with serving(make_app()) as (host, port):
        headers = {"Content-Type": PB, "Authorization": f"Bearer {TOKEN}"}
        body = encode_batch([event() for _ in range(100)])
        r = httpx.post(f"http://{host}:{port}/v1/events", content=body, headers=headers, timeout=WAIT)
    assert r.json()["accepted"] == 100
    assert held.threads == ["gateway-loop"]  # the hot path pays no thread hop
