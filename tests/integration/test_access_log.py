"""The access log end to end on Tansu and chDB: a viewer's dashboard accesses and a ``classtrace
query`` run land in ``access_log`` with who, scope, action and target — and no token, no SQL."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid

import httpx
import pytest

from classtrace.kafka import ensure_topics
from classtrace.topics import ACCESS, TopicSpec
from readers.dashboard.app import build_app
from readers.dashboard.viewers import add_viewer
from sinks.batcher import BatchPolicy, SinkTopics
from sinks.service import SinkService
from tests.helpers.dashboard_support import batch, produce, serve, summary, wait_for

pytestmark = pytest.mark.integration


def _rows(ch_db, where: str, **params):
    return ch_db.client.query(
        "SELECT viewer_id, scope, school_id, action, target, outcome, source, record_id "
        f"FROM {ch_db.database}.access_log FINAL WHERE {where} ORDER BY at, action, target",
        parameters=params,
    ).result_rows


def test_dashboard_and_query_accesses_land_in_access_log(kafka, topic_factory, ch_db, group_id, tmp_path):
    # The contract topic, as `classtrace query` publishes to it; rows are told apart by viewer id
    # and SQL digest, so other tests' records there do not matter.
    ensure_topics(kafka.bootstrap, 1, topics=[TopicSpec(ACCESS)])
    metrics, viewers = topic_factory(), topic_factory(config={"cleanup.policy": "compact"})
    viewer, token = add_viewer(kafka.bootstrap, {}, "s1", topic=viewers)
    produce(kafka.bootstrap, metrics, [("C101", batch([summary("C101", "s1")]))])
    sink = SinkService(
        ch_db.client,
        kafka.bootstrap,
        {},
        database=ch_db.database,
        group=group_id,
        topics=SinkTopics(topic_factory(prefix="ev"), topic_factory(prefix="me"), topic_factory(prefix="dl")),
        policy=BatchPolicy(max_rows=1_000, max_wait=0.3),
    )
    sink.start()
    try:
        app = build_app(kafka.bootstrap, {}, metrics_topic=metrics, viewers_topic=viewers)
        with serve(app) as url:
            wait_for(lambda: len(app.state.live.state) == 1)
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(url + "/v1/live/classrooms", headers=auth).status_code == 200
            assert httpx.get(url + "/v1/live/classrooms/s1/C101", headers=auth).status_code == 200
            assert httpx.get(url + "/v1/live/classrooms/s2/C101", headers=auth).status_code == 404

        sql = f"SELECT '{uuid.uuid4().hex}' AS marker"
        ran = subprocess.run(
            [sys.executable, "-m", "classtrace.cli", "query", sql, "--as", "analyst-li",
             "--kafka-bootstrap", kafka.bootstrap, "--data-dir", str(tmp_path)],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        digest = hashlib.sha256(sql.encode()).hexdigest()

        mine = "viewer_id = {v:String}"
        wait_for(lambda: len(_rows(ch_db, mine, v=viewer.viewer_id)) == 3, timeout=30)
        wait_for(lambda: _rows(ch_db, "viewer_id = 'analyst-li'"), timeout=30)
    finally:
        sink.stop()
    assert sink.failure is None

    dashboard = [r[:6] for r in _rows(ch_db, mine, v=viewer.viewer_id)]
    assert sorted(dashboard) == sorted(
        [
            (viewer.viewer_id, "s1", "s1", "dashboard.snapshot", "", "allowed"),
            (viewer.viewer_id, "s1", "s1", "dashboard.detail", "s1/C101", "allowed"),
            (viewer.viewer_id, "s1", "s2", "dashboard.detail", "s2/C101", "denied"),
        ]
    )
    ((who, scope, _school, action, target, outcome, source, _id),) = _rows(ch_db, "viewer_id = 'analyst-li'")
    assert (who, scope, action, outcome) == ("analyst-li", "all", "query", "allowed")
    assert target == f"sha256={digest} length={len(sql.encode())}"
    assert source.startswith("cli:")
    everything = str(ch_db.client.query(f"SELECT * FROM {ch_db.database}.access_log").result_rows)
    assert token not in everything and sql not in everything
