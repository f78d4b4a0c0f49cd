"""The sink's protobuf path into events (migration 0006) lands exactly the rows of the row path."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace.errors import StoreError
from classtrace.kafka import make_producer
from classtrace.v1 import events_pb2 as pb
from sinks.batcher import Batch, BatchPolicy, SinkTopics
from sinks.clickhouse_writer import ClickHouseWriter
from sinks.metrics import sink_metrics
from sinks.protobuf_events import RawEvents
from sinks.rows import add_event_batch, new_block
from sinks.service import SinkService
from tests.helpers import strategies

pytestmark = pytest.mark.integration

_ROW_QUERY = "SELECT * EXCEPT (ingested_at) FROM {db}.events ORDER BY event_id"


def _rows(ch_db: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in ch_db.client.query(_ROW_QUERY.format(db=ch_db.database)).result_rows]


def _writer(ch_db: Any, client: Any = None) -> ClickHouseWriter:
    return ClickHouseWriter(client or ch_db.client, ch_db.database, sink_metrics(), backoff_base=0.01)


def _stamped(batch: pb.EventBatch, seconds: int) -> pb.EventBatch:
    for event in batch.events:  # as the gateway does: every event carries received_at
        event.received_at.seconds, event.received_at.nanos = seconds, 123_000_000
    return batch


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(strategies.event_batches(max_size=15), min_size=1, max_size=4))
def test_protobuf_path_writes_the_same_rows_as_the_row_path(ch_db, batches):
    batches = [_stamped(b, int(strategies.NOW)) for b in batches]
    table = f"{ch_db.database}.events"
    ch_db.client.command(f"TRUNCATE TABLE {table}")
    block = new_block("events")
    for i, batch in enumerate(batches):
        add_event_batch(batch, ("ev", 0, i), strategies.NOW, block)
    assert _writer(ch_db).write(block, "rows") == []
    by_rows = _rows(ch_db)

    ch_db.client.command(f"TRUNCATE TABLE {table}")
    raw = RawEvents()
    for i, batch in enumerate(batches):
        raw.add(batch.SerializeToString(), ("ev", 0, i), len(batch.events))
    assert _writer(ch_db).write_events(raw, "protobuf") is None
    assert _rows(ch_db) == by_rows
    assert len(by_rows) == sum(len(b.events) for b in batches)


def _valid_batches(n_records: int, per_record: int) -> list[bytes]:
    from loadtests.traffic import BatchFactory, load_devices, template_events

    factory = BatchFactory(load_devices("0123abcd", 1)[0], template_events(), per_record)
    return [factory.next_batch()[0] for _ in range(n_records)]


def test_a_retried_insert_with_the_same_token_lands_once(ch_db):
    batch = Batch(SinkTopics(events="ev"), sink_metrics())
    for offset, value in enumerate(_valid_batches(5, 100)):
        batch.add("ev", 0, offset, value)
    writer = _writer(ch_db)
    assert writer.write_events(batch.events, batch.token("events")) is None
    assert writer.write_events(batch.events, batch.token("events")) is None  # e.g. after a crash
    count = ch_db.client.command(f"SELECT count() FROM {ch_db.database}.events")
    assert count == 500


def test_events_without_received_at_are_stamped_on_arrival(ch_db):
    batch = Batch(SinkTopics(events="ev"), sink_metrics())
    before = time.time()
    batch.add("ev", 0, 0, _valid_batches(1, 10)[0])  # load-test events carry no received_at
    assert _writer(ch_db).write_events(batch.events, "tok") is None
    after = time.time()
    low, high = ch_db.client.query(
        f"SELECT min(toUnixTimestamp64Milli(received_at)), max(toUnixTimestamp64Milli(received_at)) "
        f"FROM {ch_db.database}.events"
    ).result_rows[0]
    assert before * 1000 - 1000 <= low <= high <= after * 1000 + 1000


class _RefusesProtobuf:
    """A real client whose protobuf inserts ClickHouse 'refuses' (a data error)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.refused = 0

    def raw_insert(self, *args: Any, **kwargs: Any) -> Any:
        self.refused += 1
        raise StoreError("Code: 53. Type mismatch in events_ingest", 53)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_refused_protobuf_block_lands_through_the_row_path(ch_db, kafka, topic_factory, group_id):
    topics = SinkTopics(
        events=topic_factory(partitions=1, prefix="events"),
        metrics=topic_factory(partitions=1, prefix="metrics"),
        deadletter=topic_factory(partitions=1, prefix="dl"),
    )
    producer = make_producer(kafka.bootstrap)
    for value in _valid_batches(3, 50):
        producer.produce(topics.events, value=value, key=b"room")
    assert producer.flush(30) == 0
    client = _RefusesProtobuf(ch_db.client)
    sink = SinkService(
        client, kafka.bootstrap, {}, database=ch_db.database, group=group_id, topics=topics,
        policy=BatchPolicy(max_rows=2_000, max_wait=0.3),
    )  # fmt: skip
    sink.start()
    try:
        deadline = time.monotonic() + 60
        count = 0
        while count < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
            count = ch_db.client.command(f"SELECT count() FROM {ch_db.database}.events")
    finally:
        sink.stop(10)
    assert client.refused >= 1
    assert count == 150
    assert ch_db.client.command(f"SELECT count() FROM {ch_db.database}.dead_letters") == 0
