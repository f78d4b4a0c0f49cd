"""Event ids and student pseudonyms (docs/DESIGN.md §4)."""

from __future__ import annotations

import pytest

from classtrace.ids import is_pseudonym, is_uuid, new_event_id, pseudonymise

# Computed independently, e.g.:
#   printf '%s' 'sch-0001:S20230517' | openssl dgst -sha256 -hmac classtrace-test-key
VECTORS = [
    (b"classtrace-test-key", "sch-0001", "S20230517", "ps_608929005c80d15adc1a081ecc3ed82d"),
    # UTF-8 school and student ids (printf '%s' '第一中学:学号-042' | openssl dgst -sha256 -hmac k)
    (b"k", "第一中学", "学号-042", "ps_7db8e098e8dfe85684252f7037002c59"),
]


@pytest.mark.parametrize(("key", "school", "raw", "expected"), VECTORS)
def test_pseudonym_matches_hand_computed_hmac(key, school, raw, expected):
    assert pseudonymise(key, school, raw) == expected
    assert is_pseudonym(expected)


def test_pseudonym_is_scoped_by_school_and_key():
    base = pseudonymise(b"k1", "sch-1", "42")
    assert pseudonymise(b"k1", "sch-2", "42") != base
    assert pseudonymise(b"k2", "sch-1", "42") != base
    assert pseudonymise(b"k1", "sch-1", "42") == base


@pytest.mark.parametrize(("key", "raw"), [(b"", "42"), (b"k", "")])
def test_pseudonymise_refuses_empty_key_or_id(key, raw):
    with pytest.raises(ValueError):
        pseudonymise(key, "sch-1", raw)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ps_" + "0123456789abcdef" * 2, True),
        ("ps_" + "0123456789ABCDEF" * 2, False),  # one spelling per student: lowercase only
        ("ps_" + "0" * 31, False),
        ("ps_" + "0" * 33, False),
        ("px_" + "0" * 32, False),
        ("ps_" + "0" * 32 + "\n", False),
        ("20230517", False),
        ("", False),
    ],
)
def test_is_pseudonym(value, ok):
    assert is_pseudonym(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65", True),
        ("0B6F3C2E-5D1A-4C8E-9F4A-2F1E0C9B7A65", True),
        ("0b6f3c2e5d1a4c8e9f4a2f1e0c9b7a65", False),  # hyphen-less: a second key for one UUID
        ("{0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65}", False),
        ("urn:uuid:0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65", False),
        ("0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a6", False),
        ("0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65\n", False),
        ("xyz", False),
        ("", False),
    ],
)
def test_is_uuid(value, ok):
    assert is_uuid(value) is ok


def test_new_event_id_is_a_fresh_uuid4():
    first, second = new_event_id(), new_event_id()
    assert is_uuid(first) and is_uuid(second) and first != second
    assert first[14] == "4"
