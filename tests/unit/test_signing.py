"""Signed records (classtrace/signing.py): only a holder of the stack's key writes what roles use."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classtrace.cli.stack import RECORD_KEY_FILE, record_key
from classtrace.errors import ConfigError
from classtrace.settings import Settings
from classtrace.signing import HEADER, RecordKey, new_key_text
from classtrace.v1 import pipeline_pb2 as ppb
from sinks.batcher import Batch, SinkTopics
from sinks.metrics import sink_metrics
from stream_processors.processor import Processor, Record
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_tables import DictTable, Sink

KEY = RecordKey.parse(new_key_text())
OTHER = RecordKey.parse(new_key_text())
topics = st.sampled_from(["classtrace.events.v1", "classtrace.devices.v1", "classtrace.viewers.v1"])
keys = st.none() | st.binary(max_size=40)
values = st.none() | st.binary(max_size=2000)


@given(topic=topics, key=keys, value=values)
def test_a_signed_record_verifies(topic, key, value):
    assert KEY.verify(topic, key, value, KEY.headers(topic, key, value))


@given(topic=topics, key=keys, value=values, other=st.tuples(topics, keys, values))
def test_a_signature_does_not_carry_to_another_topic_key_or_value(topic, key, value, other):
    if other == (topic, key, value):
        return
    assert not KEY.verify(*other, KEY.headers(topic, key, value))


@given(topic=topics, key=keys, value=values, flip=st.integers(min_value=0))
def test_any_change_to_the_signature_breaks_it(topic, key, value, flip):
    sig = bytearray(KEY.sign(topic, key, value))
    sig[flip % len(sig)] ^= 1 << (flip % 8)
    assert not KEY.verify(topic, key, value, [(HEADER, bytes(sig))])


def test_unsigned_and_foreign_records_say_why_without_quoting_them():
    value = b"ps_secret-ish payload"
    assert "unsigned" in (KEY.problem("t", b"k", value, None) or "")
    assert "unknown key" in (KEY.problem("t", b"k", value, OTHER.headers("t", b"k", value)) or "")
    for why in (
        KEY.problem("t", b"k", value, []),
        KEY.problem("t", b"k", value, OTHER.headers("t", b"k", value)),
    ):
        assert why is not None and "payload" not in why


def test_rotation_the_new_key_signs_and_the_old_still_verifies():
    rotated = RecordKey((OTHER.keys[0], KEY.keys[0]))
    old_record = KEY.headers("t", b"k", b"v")
    assert rotated.verify("t", b"k", b"v", old_record)
    assert OTHER.verify("t", b"k", b"v", rotated.headers("t", b"k", b"v"))
    assert not KEY.verify("t", b"k", b"v", rotated.headers("t", b"k", b"v"))


def test_headers_as_faust_gives_them_a_mapping_verify_too():
    assert KEY.verify("t", "k", b"v", dict(KEY.headers("t", b"k", b"v")))


@pytest.mark.parametrize("text", ["", "zz", "00" * 16])
def test_a_short_or_malformed_key_is_refused(text):
    with pytest.raises(ValueError):
        RecordKey.parse(text)


def test_the_embedded_stack_keeps_its_key_in_the_data_dir_0600(tmp_path):
    embedded = Settings.load({"data_dir": tmp_path}, environ={})
    assert record_key(embedded) is None  # no `up` yet: nothing to sign with
    made = record_key(embedded, create=True)
    path = tmp_path / RECORD_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record_key(embedded) == made  # the CLI of the same data dir signs with it
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        record_key(embedded)


def test_a_cluster_without_the_setting_signs_nothing_even_with_a_key_file(tmp_path):
    record_key(Settings.load({"data_dir": tmp_path}, environ={}), create=True)
    cluster = Settings.load({"data_dir": tmp_path, "kafka_bootstrap": "kafka:9092"}, environ={})
    assert record_key(cluster) is None
    given_key = Settings.load(
        {"kafka_bootstrap": "kafka:9092"}, environ={"CLASSTRACE_RECORD_KEY": new_key_text()}
    )
    assert record_key(given_key) is not None


def test_the_worker_dead_letters_an_unsigned_events_record_and_counts_none_of_it():
    value = chunks(recorded_lesson(seed=3), 50)[0]
    room = b"sch-0001/room-101"
    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, record_key=KEY)
    topic = "classtrace.events.v1"
    proc.process_records(
        [
            Record(topic, 0, 0, room, value),  # unsigned
            Record(topic, 0, 1, room, value, OTHER.headers(topic, room, value)),  # another key
            Record(topic, 0, 2, b"sch-0001/room-999", value, KEY.headers(topic, room, value)),  # moved
        ]
    )
    assert proc.stats.events == 0
    assert len(sink.dead) == 3
    assert all(letter.raw == b"" for letter in sink.dead)
    proc.process_records([Record(topic, 0, 3, room, value, KEY.headers(topic, room, value))])
    assert proc.stats.events > 0


def test_the_sink_stores_an_unsigned_record_as_a_dead_letter_not_rows():
    topics_ = SinkTopics(events="ev", metrics="mt", deadletter="dl")
    batch = Batch(topics_, sink_metrics(), record_key=KEY)
    value = chunks(recorded_lesson(seed=3), 50)[0]
    metrics = ppb.MetricBatch(summaries=[ppb.LessonSummary(lesson_id="l1")]).SerializeToString()
    batch.add("ev", 0, 0, value, now_s=1.0, headers=None, key=b"s/r")
    batch.add("mt", 0, 0, metrics, now_s=1.0, headers=OTHER.headers("mt", b"s/r", metrics), key=b"s/r")
    assert len(batch.events) == 0 and len(batch.blocks["lesson_summary"]) == 0
    assert len(batch.blocks["dead_letters"]) == 2
    batch.add("ev", 0, 1, value, now_s=1.0, headers=KEY.headers("ev", b"s/r", value), key=b"s/r")
    assert len(batch.events) > 0
