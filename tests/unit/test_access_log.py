"""The access log's record, its rows in the sink, and the dashboard side: every access recorded
with the viewer id (never the token), and guessing tokens rate-limited with 429 + Retry-After."""

from __future__ import annotations

import hashlib

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from classtrace.access import ACCESS_LOG_COLUMNS, AccessRecord, cli_identity, query_target
from classtrace.errors import DecodeError
from classtrace.tokens import token_hash
from readers.dashboard.app import LiveService
from readers.dashboard.state import LiveState
from readers.dashboard.viewers import Viewer, ViewerRegistry
from sinks.batcher import Batch, SinkTopics
from sinks.metrics import sink_metrics
from tests.helpers.dashboard_support import batch, summary

ALL_TOKEN, SCHOOL_A = "ctv_all-schools-token-0001", "ctv_school-a-token-00001"


def test_a_record_survives_the_topic_unchanged():
    record = AccessRecord.new("v_1", "s1", "dashboard.detail", "s1/C101", "allowed", "10.0.0.7")
    assert AccessRecord.decode(record.encode()) == record
    assert record.scope == "s1" and record.at_ms > 0
    assert AccessRecord.new("os:ana", None, "query", "", "allowed", "cli:ana@h").scope == "all"


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xff\xfe", b"[]", b'{"v": 1}', b'{"v": 2, "record_id": "x"}'],
    ids=["empty", "not json", "a list", "missing fields", "other version"],
)
def test_bytes_that_are_no_record_are_a_decode_error_keeping_them(raw):
    with pytest.raises(DecodeError) as caught:
        AccessRecord.decode(raw)
    assert caught.value.raw == raw


def test_a_record_of_the_wrong_kinds_is_refused():
    good = AccessRecord.new("v_1", "s1", "dashboard.snapshot", "", "allowed", "h").encode()
    for bad in (good.replace(b'"allowed"', b'"maybe"'), good.replace(b'"v_1"', b"42")):
        with pytest.raises(DecodeError):
            AccessRecord.decode(bad)
    with pytest.raises(ValueError):
        AccessRecord.new("v_1", "s1", "dashboard.delete", "", "allowed", "h")


def test_a_query_is_kept_as_digest_and_length_never_its_text():
    sql = "SELECT count() FROM events WHERE student_id = {s:String}"
    target = query_target(sql)
    assert target == f"sha256={hashlib.sha256(sql.encode()).hexdigest()} length={len(sql)}"
    assert "SELECT" not in target and "student_id" not in target


def test_the_cli_names_the_os_account_and_keeps_it_under_an_as_name():
    viewer, source = cli_identity(None)
    assert viewer.startswith("os:") and source.startswith("cli:")
    claimed, kept = cli_identity("analyst-li")
    assert claimed == "analyst-li" and kept == source


def test_the_sink_turns_a_record_into_an_access_log_row_and_poison_into_a_dead_letter():
    topics = SinkTopics("ev", "me", "dl", access="ac")
    assert "ac" in topics.all()
    b = Batch(topics, sink_metrics())
    record = AccessRecord.new("v_1", None, "dashboard.snapshot", "", "allowed", "10.0.0.7", at_ms=1_000)
    b.add("ac", 0, 5, record.encode())
    b.add("ac", 0, 6, b"not json")
    block = b.blocks["access_log"]
    assert len(block) == 1
    assert block.row(0) == dict(zip(ACCESS_LOG_COLUMNS, record.row(), strict=True))
    assert block.row(0)["viewer_id"] == "v_1" and block.row(0)["scope"] == "all"
    assert len(b.blocks["dead_letters"]) == 1 and b.blocks["dead_letters"].row(0)["offset"] == 6


# -- the dashboard --------------------------------------------------------------------------------


class Recorded(list):
    def record(self, record: AccessRecord) -> None:
        self.append(record)


@pytest.fixture
def service():
    state = LiveState()
    state.apply(batch([summary("C101", "A"), summary("C101", "B")]))
    registry = ViewerRegistry(
        [
            Viewer("v_all", "", token_hash(ALL_TOKEN), "now"),
            Viewer("v_a", "A", token_hash(SCHOOL_A), "now"),
        ]
    )
    return LiveService(None, state=state, registry=registry, access_log=Recorded(), auth_max_failures=5)


def _client(service, host="10.0.0.9"):
    return TestClient(Starlette(routes=service.routes()), client=(host, 40000))


def test_every_access_is_recorded_with_viewer_scope_action_and_target_never_the_token(service):
    client = _client(service)
    auth = {"Authorization": f"Bearer {SCHOOL_A}"}
    assert client.get("/v1/live/classrooms", headers=auth).status_code == 200
    assert client.get("/v1/live/classrooms/A/C101", headers=auth).status_code == 200
    assert client.get("/v1/live/classrooms/B/C101", headers=auth).status_code == 404
    assert client.get("/v1/live/classrooms/A/C999", headers=auth).status_code == 404
    assert client.get("/v1/live/classrooms", params={"token": "ctv_wrong"}).status_code == 401
    got = [(r.viewer_id, r.scope, r.school_id, r.action, r.target, r.outcome) for r in service.access_log]
    assert got == [
        ("v_a", "A", "A", "dashboard.snapshot", "", "allowed"),
        ("v_a", "A", "A", "dashboard.detail", "A/C101", "allowed"),
        # answered 404 like an unknown room, but the log says what it was
        ("v_a", "A", "B", "dashboard.detail", "B/C101", "denied"),
        ("v_a", "A", "A", "dashboard.detail", "A/C999", "not_found"),
        ("", "", "", "dashboard.snapshot", "", "denied"),
    ]
    assert {r.source for r in service.access_log} == {"10.0.0.9"}
    assert not any(t in r.encode().decode() for r in service.access_log for t in (SCHOOL_A, "ctv_wrong"))


def test_guessing_viewer_tokens_gets_429_with_retry_after_and_others_still_get_in(service):
    guesser = _client(service, "203.0.113.5")
    answers = [guesser.get("/v1/live/classrooms", params={"token": f"ctv_guess-{i:04d}"}) for i in range(8)]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    blocked = answers[5:]
    assert {a.status_code for a in blocked} == {429}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in blocked)
    # even the right token from the blocked source waits: otherwise each guess would still be judged
    assert guesser.get("/v1/live/classrooms", params={"token": ALL_TOKEN}).status_code == 429
    honest = _client(service, "198.51.100.7")
    assert honest.get("/v1/live/classrooms", params={"token": ALL_TOKEN}).status_code == 200
    # a blocked guesser's knocking is not logged: it cannot fill the access log
    denied = [r for r in service.access_log if r.outcome == "denied"]
    assert len(denied) == 5
