"""CLASSTRACE_DEADLETTER_KEEP_RAW reaches every role that dead-letters (issue 17).

Off (the default), a dead letter is a digest and a length wherever it is written; on, the gateway,
the worker and the sink keep the rejected bytes (a raw student_id still replaced), and the sink
stores them in ``raw_kept``, the column with the 7-day TTL (migration 0012).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from classtrace import deadletters
from classtrace.codec import encode_batch
from classtrace.migrate import split_statements
from classtrace.settings import Settings
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.auth import Binding, StaticDirectory
from sinks.batcher import Batch, SinkTopics
from sinks.metrics import sink_metrics
from stream_processors.processor import Processor, ProcessorConfig, Record
from tests.helpers.gateway_http import TOKEN, FakePublisher, event
from tests.helpers.worker_tables import DictTable, Sink

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BINDING = Binding("sch-A", "room-1", "tab-1", pb.DEVICE_KIND_TABLET)
RAW_ID = "20230117"  # a student number a device failed to pseudonymise
GARBAGE = b"\xff\xfe not an EventBatch"


def _gateway_letter(keep_raw: bool) -> tuple[ppb.DeadLetter, pb.Event]:
    publisher = FakePublisher()
    app = build_app(
        GatewayConfig("unused:9092", events_topic="ev", deadletter_topic="dl", keep_raw=keep_raw),
        directory=StaticDirectory({TOKEN: BINDING}),
        publisher=publisher,
    )
    bad = event()
    bad.trace.student_id = RAW_ID
    with TestClient(app) as client:
        response = client.post(
            "/v1/events",
            content=encode_batch([bad]),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 200 and response.json()["rejected"]
    (value,) = publisher.on("dl")
    return ppb.DeadLetter.FromString(value), bad


def test_the_gateway_keeps_a_rejected_events_bytes_only_with_the_setting():
    off, bad = _gateway_letter(keep_raw=False)
    redacted = deadletters.redact_event(bad).SerializeToString()
    assert off.raw == b"" and off.raw_sha256 == hashlib.sha256(redacted).hexdigest()
    on, bad = _gateway_letter(keep_raw=True)
    kept = pb.Event.FromString(on.raw)
    assert kept.event_id == bad.event_id and kept.trace.student_id == deadletters.REDACTED_STUDENT_ID
    assert RAW_ID.encode() not in on.raw


def test_the_setting_is_off_unless_the_operator_sets_it():
    assert Settings.load({}, environ={}).deadletter_keep_raw is False
    env = {"CLASSTRACE_DEADLETTER_KEEP_RAW": "true"}
    assert Settings.load({}, environ=env).deadletter_keep_raw is True


@pytest.mark.parametrize("keep_raw", [False, True])
def test_the_worker_keeps_an_undecodable_records_bytes_only_with_the_setting(keep_raw):
    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, ProcessorConfig(keep_raw=keep_raw))
    proc.process_records([Record("classtrace.events.v1", 0, 5, b"room-1", GARBAGE)])
    (letter,) = sink.dead
    assert letter.raw == (GARBAGE if keep_raw else b"")
    assert (letter.raw_sha256, letter.raw_length) == (hashlib.sha256(GARBAGE).hexdigest(), len(GARBAGE))


@pytest.mark.parametrize("keep_raw", [False, True])
def test_the_sink_stores_bytes_in_raw_kept_only_with_the_setting(keep_raw):
    upstream = ppb.DeadLetter(source="gateway", error="rule", raw=b"kept bytes", raw_length=10)
    batch = Batch(SinkTopics(events="ev", metrics="mt", deadletter="dl"), sink_metrics(), keep_raw=keep_raw)
    batch.add("dl", 0, 0, upstream.SerializeToString(), now_s=1.7e9)  # a letter from upstream
    batch.add("ev", 0, 1, GARBAGE, now_s=1.7e9)  # one the sink finds itself
    rows = batch.blocks["dead_letters"]
    stored = [(rows.row(i)["raw"], rows.row(i)["raw_kept"]) for i in range(len(rows))]
    if keep_raw:
        assert stored == [(b"", b"kept bytes"), (b"", GARBAGE)]  # `raw` is a key column: no TTL
    else:
        assert stored == [(b"", b""), (b"", b"")]


def test_the_raw_kept_ttl_stays_on_the_cluster_local_table():
    # The generated file is checked fresh by test_sink_cluster_ddl; a Distributed table takes no TTL.
    cluster = Path(__file__).resolve().parents[2] / "infra/clickhouse/cluster/0012_dead_letter_raw_ttl.sql"
    statements = split_statements(cluster.read_text(encoding="utf-8"))
    local, distributed = (s for s in statements if "ADD COLUMN" in s)
    assert "dead_letters_local" in local and "TTL toDateTime(received_at) + toIntervalDay(7)" in local
    assert "dead_letters ON CLUSTER" in distributed and "TTL" not in distributed.split("'")[-1]
    assert "raw_kept String CODEC(ZSTD(3))" in distributed  # inserts through it keep the column
