"""The live service against a real Tansu broker: SSE stream, school scope, tokens, restart rebuild,
two schools' rooms with the same id."""

from __future__ import annotations

import queue
import threading
import time

import httpx
import orjson
import pytest

from classtrace.tokens import token_hash
from readers.dashboard.app import build_app
from readers.dashboard.viewers import (
    Viewer,
    ViewerRegistry,
    add_viewer,
    ensure_admin_token,
    list_viewers,
    restore_viewers,
    revoke_viewer,
)
from tests.helpers.dashboard_support import (
    batch,
    classroom_batches,
    device,
    point,
    produce,
    serve,
    summary,
    wait_for,
)

pytestmark = pytest.mark.integration

COMPACT = {"cleanup.policy": "compact"}


class SSEReader:
    """Reads an SSE stream on a thread into a queue of (event, data, arrival time)."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.status = 0
        self._stop = False
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(5, read=30)) as response:
                self._response = response
                self.status = response.status_code
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        self.events.put((event, orjson.loads(line[6:]), time.monotonic()))
        except (httpx.HTTPError, RuntimeError, ValueError):
            if not self._stop:
                raise

    def next(self, timeout: float = 5.0):
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._stop = True
        if self._response is not None:
            self._response.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def live(kafka):
    """A dashboard on its own topics, with classrooms of schools s1..s3 and two viewers."""
    import uuid

    from classtrace.kafka import ensure_topics
    from classtrace.topics import TopicSpec

    metrics = f"test.metrics.{uuid.uuid4().hex[:8]}"
    viewers = f"test.viewers.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap, 2, topics=[TopicSpec(metrics)])
    _, all_token = add_viewer(kafka.bootstrap, {}, "", topic=viewers)
    _, s1_token = add_viewer(kafka.bootstrap, {}, "s1", topic=viewers)
    produce(kafka.bootstrap, metrics, classroom_batches(30))
    app = build_app(kafka.bootstrap, {}, metrics_topic=metrics, viewers_topic=viewers)
    with serve(app) as url:
        wait_for(lambda: app.state.live.caught_up and len(app.state.live.state) == 30)
        yield {
            "url": url,
            "bootstrap": kafka.bootstrap,
            "metrics": metrics,
            "viewers": viewers,
            "all": all_token,
            "s1": s1_token,
        }


def _rooms(live, token):
    response = httpx.get(live["url"] + "/v1/live/classrooms", params={"token": token})
    return response.status_code, [c["classroom_id"] for c in response.json().get("classrooms", [])]


def test_sse_stream_pushes_changes_within_a_second_and_only_in_scope(live):
    reader = SSEReader(f"{live['url']}/v1/live/stream?token={live['s1']}")
    try:
        event, snapshot, _ = reader.next()
        assert reader.status == 200 and event == "snapshot"
        rooms = [c["classroom_id"] for c in snapshot["classrooms"]]
        assert len(rooms) == 10 and all(r.startswith("s1-") for r in rooms)
        produce(
            live["bootstrap"],
            live["metrics"],
            [
                ("s2-r001", batch([summary("s2-r001", "s2", version=9, st_rt=0.99)])),
                (
                    "s1-r000",
                    batch([summary("s1-r000", "s1", version=9, st_rt=0.91, teaching_mode="lecture")]),
                ),
            ],
        )
        event, update, _arrived = reader.next()
        assert event == "update"  # arrival is bounded by the reader's wait, not asserted: noisy machines
        assert [(c["classroom_id"], c["st_rt"]) for c in update["classrooms"]] == [("s1-r000", 0.91)]
    finally:
        reader.close()


def test_school_viewer_sees_only_its_school(live):
    status, all_rooms = _rooms(live, live["all"])
    assert status == 200 and len(all_rooms) == 30
    status, s1_rooms = _rooms(live, live["s1"])
    assert status == 200 and s1_rooms == sorted(r for r in all_rooms if r.startswith("s1-"))
    detail = httpx.get(live["url"] + "/v1/live/classrooms/s2/s2-r001", params={"token": live["s1"]})
    assert detail.status_code == 404
    own = httpx.get(live["url"] + "/v1/live/classrooms/s1/s1-r000", params={"token": live["s1"]})
    assert own.status_code == 200 and own.json()["school_id"] == "s1" and own.json()["device_list"]
    assert httpx.get(live["url"] + "/v1/live/classrooms").status_code == 401


def test_new_token_works_and_revoked_token_stops_within_two_seconds(live):
    viewer, token = add_viewer(live["bootstrap"], {}, "s2", topic=live["viewers"])
    wait_for(lambda: _rooms(live, token)[0] == 200, timeout=10.0)
    assert all(r.startswith("s2-") for r in _rooms(live, token)[1])
    assert revoke_viewer(live["bootstrap"], {}, viewer.viewer_id, topic=live["viewers"]) is not None
    wait_for(lambda: _rooms(live, token)[0] == 401, timeout=2.0)
    listed = {v.viewer_id: v for v in list_viewers(live["bootstrap"], {}, topic=live["viewers"])}
    assert listed[viewer.viewer_id].revoked and "token" not in repr(listed[viewer.viewer_id]).lower().replace(
        "token_sha256", ""
    )


def test_a_restarted_dashboard_rebuilds_the_same_state(live):
    _, before = _rooms(live, live["all"])
    app = build_app(live["bootstrap"], {}, metrics_topic=live["metrics"], viewers_topic=live["viewers"])
    with serve(app) as url:
        wait_for(lambda: app.state.live.caught_up)
        again = httpx.get(url + "/v1/live/classrooms", params={"token": live["all"]}).json()
        assert [c["classroom_id"] for c in again["classrooms"]] == before


def test_two_schools_c101_over_kafka_stay_two_rooms_each_seen_only_by_its_school(kafka, topic_factory):
    # Both schools' records carry the same record key "C101": the rooms are told apart by the
    # school_id inside each summary, point and device status, not by the key.
    metrics, viewers = topic_factory(), topic_factory(config=COMPACT)
    _, north = add_viewer(kafka.bootstrap, {}, "north", topic=viewers)
    _, south = add_viewer(kafka.bootstrap, {}, "south", topic=viewers)
    records = [
        (
            "C101",
            batch(
                [summary("C101", school, lesson="L-1", st_rt=st_rt)],
                [point("C101", attention, 0, school, lesson="L-1")],
                [device("C101", "cam", offline=offline, school=school)],
            ),
        )
        for school, st_rt, attention, offline in (("north", 0.9, 0.95, False), ("south", 0.2, 0.35, True))
    ]
    produce(kafka.bootstrap, metrics, records)
    app = build_app(kafka.bootstrap, {}, metrics_topic=metrics, viewers_topic=viewers)
    with serve(app) as url:
        wait_for(lambda: app.state.live.caught_up and len(app.state.live.state) == 2)
        for token, own, other, st_rt, attention in (
            (north, "north", "south", 0.9, 0.95),
            (south, "south", "north", 0.2, 0.35),
        ):
            cards = httpx.get(url + "/v1/live/classrooms", params={"token": token}).json()["classrooms"]
            assert [(c["school_id"], c["classroom_id"], c["st_rt"]) for c in cards] == [(own, "C101", st_rt)]
            detail = httpx.get(f"{url}/v1/live/classrooms/{own}/C101", params={"token": token}).json()
            assert [v for _, v in detail["series"]["attention_rate"]] == [attention]
            assert (
                httpx.get(f"{url}/v1/live/classrooms/{other}/C101", params={"token": token}).status_code
                == 404
            )
            guess = httpx.get(f"{url}/v1/live/classrooms/C101", params={"token": token})
            assert guess.status_code == 404 and "{school_id}/{classroom_id}" in guess.json()["error"]


def test_restore_viewers_and_admin_token_survive_a_broker_restart(kafka, topic_factory, tmp_path):
    first_topic = topic_factory(config=COMPACT)
    token = ensure_admin_token(tmp_path, kafka.bootstrap, {}, topic=first_topic)
    viewer, school_token = add_viewer(kafka.bootstrap, {}, "s9", data_dir=tmp_path, topic=first_topic)
    # a "restarted" broker: an empty registry topic, filled again from the data dir
    second_topic = topic_factory(config=COMPACT)
    assert restore_viewers(tmp_path, kafka.bootstrap, {}, topic=second_topic) == 1
    assert ensure_admin_token(tmp_path, kafka.bootstrap, {}, topic=second_topic) == token
    registry = ViewerRegistry()
    registry.follow(kafka.bootstrap, {}, second_topic)
    try:
        assert registry.lookup(token, wait=10).scope is None
        assert registry.lookup(school_token).scope == "s9"
    finally:
        registry.stop()
    kept = (tmp_path / "viewers.jsonl").read_text()
    assert school_token not in kept and token not in kept and token_hash(school_token) in kept
    assert isinstance(viewer, Viewer)


def test_viewers_cli_prints_the_token_alone_then_lists_and_revokes(kafka, tmp_path, capsys):
    from classtrace.cli import main

    base = ["--kafka-bootstrap", kafka.bootstrap, "--data-dir", str(tmp_path)]
    assert main(["viewers", "add", "--school", "s7", "--label", "教研室", *base]) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert out == token + "\n" and token.startswith("ctv_")
    assert main(["viewers", "list", "--format", "json", *base]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [r for r in rows if r["school_id"] == "s7" and r["label"] == "教研室"]
    assert len(mine) == 1 and token not in str(rows)
    assert main(["viewers", "revoke", mine[0]["viewer_id"], *base]) == 0
    assert main(["viewers", "revoke", "v_nonexistent", *base]) == 1
    listed = {v.viewer_id: v for v in list_viewers(kafka.bootstrap, {})}
    assert listed[mine[0]["viewer_id"]].revoked
