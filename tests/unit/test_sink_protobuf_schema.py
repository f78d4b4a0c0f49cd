"""Migration 0006's view spells the proto enums as the row path does: a new value cannot slip by."""

from __future__ import annotations

import re

from classtrace.migrate import load_migrations
from classtrace.v1 import events_pb2 as pb
from sinks.protobuf_events import ingest_settings, schema_text

_VIEW_SQL = next(m.sql for m in load_migrations() if m.name == "events_ingest")

_ENUMS = {
    "i.device_kind": (pb.DeviceKind, "DEVICE_KIND_"),
    "i.lesson_phase": (pb.LessonLifecycle.Phase, "PHASE_"),
    "i.teaching_kind": (pb.TeachingBehavior.Kind, "KIND_"),
    "b": (pb.ClassObservation.Behavior, "BEHAVIOR_"),
    "trace_verb": (pb.LearningTrace.Verb, "VERB_"),
    "trace_context": (pb.LearningTrace.Context, "CONTEXT_"),
}


def _transforms() -> dict[str, tuple[list[int], list[str]]]:
    found = {}
    for column, numbers, names in re.findall(
        r"transform\(([\w.]+),\s*\[([\d,\s]+)\],\s*\[([^\]]+)\],\s*''\)", _VIEW_SQL
    ):
        found[column] = (
            [int(n) for n in numbers.split(",")],
            [n.strip().strip("'") for n in names.split(",")],
        )
    return found


def test_every_enum_value_has_its_short_name_in_the_view():
    transforms = _transforms()
    assert set(transforms) == set(_ENUMS)
    for column, (enum, prefix) in _ENUMS.items():
        expected = sorted((number, name.removeprefix(prefix)) for name, number in enum.items() if number)
        numbers, names = transforms[column]
        assert sorted(zip(numbers, names, strict=True)) == expected, column


def test_the_view_knows_every_payload():
    oneof = pb.Event.DESCRIPTOR.oneofs_by_name["payload"]
    kinds = set(re.findall(r"'(\w+)'", _VIEW_SQL.split("AS kind")[0].split("multiIf(")[1]))
    assert kinds == {f.name for f in oneof.fields}


def test_the_inline_schema_is_self_contained_and_names_the_row_message():
    text = schema_text()
    assert "import" not in text and "package" not in text
    assert f"message {ingest_settings()['format_schema_message_name']} {{" in text
    for field in pb.Event.DESCRIPTOR.fields:
        assert re.search(rf"\b{field.name} = {field.number};", text), field.name
    assert "optional bool correct = 5;" in text  # presence kept: NULL when ungraded
