"""The live endpoints without Kafka: tokens, school scope, the page, the SSE event sequence."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from classtrace.tokens import token_hash
from readers.dashboard.app import AMBIGUOUS_CLASSROOM, LiveService, live_routes
from readers.dashboard.state import LiveState
from readers.dashboard.viewers import Viewer, ViewerRegistry
from tests.helpers.dashboard_support import batch, summary

ALL, SCHOOL_A, SCHOOL_B = "token-all", "token-a", "token-b"


@pytest.fixture
def service():
    state = LiveState()
    state.apply(batch([summary("a1", "A"), summary("a2", "A"), summary("b1", "B")]))
    # both schools have a room C101, each with its own lesson running
    state.apply(batch([summary("C101", "A", st_rt=0.9), summary("C101", "B", st_rt=0.2)]))
    registry = ViewerRegistry(
        [
            Viewer("all", "", token_hash(ALL), "now"),
            Viewer("a", "A", token_hash(SCHOOL_A), "now"),
            Viewer("b", "B", token_hash(SCHOOL_B), "now"),
            Viewer("gone", "", token_hash("revoked"), "now", revoked=True),
        ]
    )
    return LiveService(None, state=state, registry=registry, push_interval=0.01, heartbeat_interval=0.03)


@pytest.fixture
def client(service):
    return TestClient(Starlette(routes=service.routes()))


@pytest.mark.parametrize(
    "path", ["/v1/live/classrooms", "/v1/live/classrooms/A/a1", "/v1/live/classrooms/a1", "/v1/live/stream"]
)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer revoked"}]
)
def test_live_endpoints_need_an_active_token(client, path, headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 401 and "error" in response.json()


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"headers": {"Authorization": f"Bearer {ALL}"}}, ["A/C101", "A/a1", "A/a2", "B/C101", "B/b1"]),
        ({"params": {"token": SCHOOL_A}}, ["A/C101", "A/a1", "A/a2"]),
        ({"params": {"token": SCHOOL_B}}, ["B/C101", "B/b1"]),
    ],
)
def test_snapshot_is_filtered_to_the_viewers_school(client, auth, expected):
    body = client.get("/v1/live/classrooms", **auth).json()
    assert [f"{c['school_id']}/{c['classroom_id']}" for c in body["classrooms"]] == expected


def test_detail_outside_the_school_is_not_found(client):
    assert client.get("/v1/live/classrooms/A/a1", params={"token": SCHOOL_A}).json()["st_codes"]
    assert client.get("/v1/live/classrooms/B/b1", params={"token": SCHOOL_A}).status_code == 404
    assert client.get("/v1/live/classrooms/B/b1", params={"token": ALL}).status_code == 200
    assert client.get("/v1/live/classrooms/A/b1", params={"token": ALL}).status_code == 404


@pytest.mark.parametrize(("token", "school", "st_rt"), [(SCHOOL_A, "A", 0.9), (SCHOOL_B, "B", 0.2)])
def test_each_school_viewer_gets_its_own_c101_and_never_the_others(client, token, school, st_rt):
    own = client.get(f"/v1/live/classrooms/{school}/C101", params={"token": token})
    assert own.status_code == 200 and (own.json()["school_id"], own.json()["st_rt"]) == (school, st_rt)
    other = "B" if school == "A" else "A"
    hidden = client.get(f"/v1/live/classrooms/{other}/C101", params={"token": token})
    # the same answer as for a room that does not exist: the other school's room is not revealed
    assert hidden.status_code == 404 and hidden.json() == {"error": "no such classroom"}


@pytest.mark.parametrize("token", [ALL, SCHOOL_A])
def test_the_one_segment_detail_url_names_the_new_form_and_guesses_no_school(client, token):
    response = client.get("/v1/live/classrooms/C101", params={"token": token})
    assert response.status_code == 404
    assert response.json() == {"error": AMBIGUOUS_CLASSROOM}
    assert "/v1/live/classrooms/{school_id}/{classroom_id}" in AMBIGUOUS_CLASSROOM


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/", {}),
        ("/static/dashboard/app.js", {}),
        ("/v1/live/classrooms", {"token": ALL}),
        ("/v1/live/classrooms", {}),  # refused requests too
        ("/v1/live/classrooms/B/b1", {"token": SCHOOL_A}),
        ("/v1/live/classrooms/b1", {"token": SCHOOL_A}),
    ],
)
def test_every_dashboard_response_carries_the_security_headers(client, path, params):
    # The viewer token rides in the page's URL: no Referer may carry it away, no site may frame
    # the page, and it runs only its own scripts and styles.
    headers = client.get(path, params=params).headers
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_live_stream_gets_the_headers_and_stays_a_stream(service):
    with (
        TestClient(Starlette(routes=service.routes())) as client,
        client.stream("GET", "/v1/live/stream", params={"token": ALL}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["referrer-policy"] == "no-referrer"
        first = next(response.iter_lines())
        assert first.startswith(("event:", "data:", ":", "retry:", "id:"))


def test_page_is_served_as_utf8_chinese(client):
    response = client.get("/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "线上巡课" in response.text and 'lang="zh-CN"' in response.text
    assert client.get("/static/dashboard/app.js").status_code == 200


class _Request:
    async def is_disconnected(self):
        return False


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for chunk in raw:
        fields = dict(
            line.split(": ", 1) for line in chunk.decode().splitlines() if ": " in line and line[0] != ":"
        )
        out.append((fields.get("event", "comment"), orjson.loads(fields["data"]) if "data" in fields else {}))
    return out


def test_stream_sends_snapshot_then_scoped_updates_heartbeats_and_revocation(service):
    async def run():
        viewer = service.registry.lookup(SCHOOL_A)
        gen = service._events(_Request(), viewer)
        raw = [await anext(gen)]
        # other school, including its own C101: not sent
        service.state.apply(batch([summary("b1", "B", version=2), summary("C101", "B", version=2)]))
        service.state.apply(batch([summary("a2", "A", version=2, st_rt=0.95)]))
        raw.append(await anext(gen))
        raw.append(await anext(gen))  # nothing changed: a heartbeat comment
        service.registry.put(Viewer("a", "A", token_hash(SCHOOL_A), "now", revoked=True))
        raw.append(await anext(gen))
        with pytest.raises(StopAsyncIteration):
            await anext(gen)
        return raw

    raw = asyncio.run(run())
    events = _events(raw)
    assert events[0][0] == "snapshot" and [c["classroom_id"] for c in events[0][1]["classrooms"]] == [
        "C101",
        "a1",
        "a2",
    ]
    assert events[1][0] == "update" and [c["classroom_id"] for c in events[1][1]["classrooms"]] == ["a2"]
    assert events[1][1]["classrooms"][0]["st_rt"] == 0.95
    assert raw[2] == b": ping\n\n"
    assert events[3][0] == "revoked"


def test_live_routes_shape():
    routes, start, stop = live_routes("127.0.0.1:1", {})
    paths = {getattr(r, "path", "") for r in routes}
    assert {"/", "/v1/live/classrooms", "/v1/live/stream", "/static/dashboard"} <= paths
    assert callable(start) and callable(stop)
