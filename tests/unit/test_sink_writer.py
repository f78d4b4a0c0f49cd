"""ClickHouseWriter without a server: tokens, retry on outages, bisection down to poison rows."""

from __future__ import annotations

import threading
import time

import pytest

from classtrace.errors import StoreError
from sinks.batcher import Batch, SinkTopics
from sinks.clickhouse_writer import ClickHouseWriter, classify, dedup_token
from sinks.errors import SinkStopped
from sinks.metrics import sink_metrics
from tests.helpers.sinkdata import event_batches

TOPICS = SinkTopics("ev", "me", "dl")


class FakeClient:
    """Records inserts; fails while ``down`` or for blocks holding a poison event id."""

    def __init__(self, poison=(), down=0, fail=None):
        self.poison = set(poison)
        self.down = down  # number of calls that fail with a transport error
        self.fail = fail or (lambda: StoreError("connection refused", None))
        self.inserts = []

    def insert(self, table, data, column_names, database, column_type_names, column_oriented, settings):
        assert column_oriented
        assert "LowCardinality" not in " ".join(column_type_names)
        if self.down:
            self.down -= 1
            raise self.fail()
        cols = dict(zip(column_names, data, strict=True))
        if "event_id" in cols and self.poison & set(cols["event_id"]):
            raise StoreError("Code: 53. DB::Exception: Type mismatch", 53)
        self.inserts.append((table, settings["insert_deduplication_token"], cols))

    def command(self, *a, **k):
        raise NotImplementedError


def events_block(n=40):
    batch = Batch(TOPICS, sink_metrics())
    for offset, (_key, records) in enumerate(event_batches(n, per_batch=10, now_ms=int(time.time() * 1000))):
        batch.add("ev", 0, offset, records.SerializeToString())
    return batch


def writer(client, **kw):
    return ClickHouseWriter(client, "db", sink_metrics(), sleep=lambda s: None, **kw)


def test_token_depends_on_table_and_ranges_only():
    a = dedup_token("events", [("ev", 1, 10, 20), ("ev", 0, 5, 9)])
    assert a == dedup_token("events", [("ev", 0, 5, 9), ("ev", 1, 10, 20)])
    assert a != dedup_token("events", [("ev", 0, 5, 9), ("ev", 1, 10, 21)])
    assert a != dedup_token("metric_points", [("ev", 0, 5, 9), ("ev", 1, 10, 20)])


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (StoreError("connection refused", None), "transient"),
        (StoreError("Code: 241. MEMORY_LIMIT_EXCEEDED", 241), "transient"),
        (StoreError("Code: 60. UNKNOWN_TABLE", 60), "transient"),
        (StoreError("Code: 469. VIOLATED_CONSTRAINT", 469), "data"),
        (StoreError("Code: 53. TYPE_MISMATCH", 53), "data"),
        (StoreError("Code: 252. Too many partitions for single INSERT block (more than 100)", 252), "data"),
        (StoreError("Code: 252. Too many parts (300)", 252), "transient"),
        (OverflowError("int too big to convert"), "data"),
        (ConnectionResetError(), "transient"),
    ],
)
def test_classify(exc, kind):
    assert classify(exc) == kind


def test_one_insert_per_block_with_its_token():
    batch = events_block(40)
    client = FakeClient()
    assert writer(client).write(batch.event_rows(), batch.token("events")) == []
    assert len(client.inserts) == 1
    table, token, cols = client.inserts[0]
    assert (table, token) == ("events", batch.token("events"))
    assert len(cols["event_id"]) == 40


def test_transient_failures_retry_the_same_token():
    batch = events_block(20)
    client = FakeClient(down=3)
    w = writer(client)
    before = sink_metrics().retries.labels("events")._value.get()
    assert w.write(batch.event_rows(), "tok") == []
    assert [t for _, t, _ in client.inserts] == ["tok"]
    assert sink_metrics().retries.labels("events")._value.get() - before == 3


def test_poison_rows_are_isolated_by_bisection():
    batch = events_block(40)
    block = batch.event_rows()
    poison = {block.columns["event_id"][7], block.columns["event_id"][31]}
    client = FakeClient(poison=poison)
    refused = writer(client).write(block, "tok")
    assert sorted(i for i, _ in refused) == [7, 31]
    assert all("Type mismatch" in reason for _, reason in refused)
    landed = [e for _, _, cols in client.inserts for e in cols["event_id"]]
    assert sorted(landed) == sorted(set(block.columns["event_id"]) - poison)
    tokens = [t for _, t, _ in client.inserts]
    assert len(set(tokens)) == len(tokens) and all(t.startswith("tok/") for t in tokens)


def test_stop_abandons_retries_after_grace():
    batch = events_block(10)
    stopping = threading.Event()
    stopping.set()
    client = FakeClient(down=10**9)
    w = ClickHouseWriter(client, "db", sink_metrics(), stopping=stopping, stop_grace=0.05, sleep=time.sleep)
    with pytest.raises(SinkStopped, match="uncommitted"):
        w.write(batch.event_rows(), "tok")
    assert client.inserts == []


class ProtobufClient:
    """raw_insert only: fails with the given errors in turn, then lands."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = []

    def raw_insert(self, table, column_names, insert_block, settings, fmt):
        self.calls.append((table, fmt, settings["insert_deduplication_token"], len(insert_block)))
        if self.errors:
            raise self.errors.pop(0)


def test_protobuf_inserts_retry_outages_under_one_token():
    batch = events_block()
    client = ProtobufClient(StoreError("connection refused", None), StoreError("Code: 202. TOO_MANY", 202))
    assert writer(client).write_events(batch.events, batch.token("events")) is None
    assert [c[:3] for c in client.calls] == [("db.events_ingest", "ProtobufList", batch.token("events"))] * 3


@pytest.mark.parametrize(
    "error",
    [
        StoreError("Code: 115. Unknown setting 'format_schema_source'", 115),  # ClickHouse < 25.6
        StoreError("Code: 444. Protobuf messages are corrupted", 444),
        StoreError("Code: 53. Type mismatch", 53),
    ],
)
def test_a_server_that_cannot_take_protobuf_gets_rows_instead(error):
    batch = events_block()
    client = ProtobufClient(error)
    reason = writer(client).write_events(batch.events, batch.token("events"))
    assert reason is not None and str(error.code) in reason
    assert len(client.calls) == 1  # not retried as protobuf: the caller writes the rows


def test_an_older_server_is_asked_once():
    batch = events_block()
    client = ProtobufClient(StoreError("Code: 115. Unknown setting 'format_schema_source'", 115))
    w = writer(client)
    before = w.metrics.row_fallbacks._value.get()
    assert w.write_events(batch.events, "t1") is not None
    assert w.write_events(batch.events, "t2") is not None
    assert len(client.calls) == 1
    assert w.metrics.row_fallbacks._value.get() == before + 2  # both blocks went as rows
