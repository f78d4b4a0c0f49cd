"""Per-school pseudonym keys (docs/KEYS.md): the derivation, the devices' key CLI, the SDK's use."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classtrace.cli import main
from classtrace.cli.stack import REGION_SECRET_FILE
from classtrace.errors import ValidationError
from classtrace.ids import _hkdf_sha256, pseudonymise, school_pseudonym_key
from classtrace.v1 import events_pb2 as pb
from producers.sdk import EdgeProducer

REGION = b"classtrace-region-secret-test"
SCHOOLS = st.text(min_size=1, max_size=64)

# RFC 5869 appendix A, test cases 1 and 3 (SHA-256; case 3 has an empty salt, as the school keys do).
RFC5869 = [
    (
        bytes([0x0B]) * 22,
        bytes(range(13)),
        bytes(range(0xF0, 0xFA)),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes([0x0B]) * 22,
        b"",
        b"",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]
# Computed independently with OpenSSL 3:
#   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:classtrace-region-secret-test \
#     -kdfopt salt: -kdfopt info:'classtrace pseudonym v1|sch-0001' HKDF
SCHOOL_VECTORS = [
    ("sch-0001", b"a55148c7900b06fad945d2411d8c2e9c7e00db61c9c695f5c9d0dd3a428f8832"),
    ("第一中学", b"4b68baeba71c3153386f362f6b5605c158114050c7001a571af345e7b0eb7804"),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "okm"), RFC5869)
def test_hkdf_matches_rfc5869(ikm, salt, info, okm):
    assert _hkdf_sha256(ikm, salt, info, 42).hex() == okm


@pytest.mark.parametrize(("school", "expected"), SCHOOL_VECTORS)
def test_school_key_matches_openssl_hkdf(school, expected):
    assert school_pseudonym_key(REGION, school) == expected


@given(st.binary(min_size=16, max_size=64), SCHOOLS, SCHOOLS)
def test_schools_get_different_keys_and_pseudonyms(region, school_a, school_b):
    if school_a == school_b:
        school_b += "x"
    key_a, key_b = school_pseudonym_key(region, school_a), school_pseudonym_key(region, school_b)
    assert key_a != key_b
    assert school_pseudonym_key(region, school_a) == key_a  # stable: pseudonyms stay per student
    # A stolen tablet of school A: its key names A's students only, never B's (same raw id).
    assert pseudonymise(key_a, school_b, "S20230517") != pseudonymise(key_b, school_b, "S20230517")
    assert pseudonymise(key_a, school_a, "S20230517") != pseudonymise(key_b, school_b, "S20230517")


@given(st.binary(min_size=16, max_size=64), st.binary(min_size=16, max_size=64), SCHOOLS)
def test_another_region_secret_gives_another_key(region_a, region_b, school):
    if region_a == region_b:
        region_b += b"x"
    assert school_pseudonym_key(region_a, school) != school_pseudonym_key(region_b, school)


@pytest.mark.parametrize(
    ("region", "school", "message"),
    [
        (b"short", "sch-1", "fewer than 16"),
        (b"", "sch-1", "fewer than 16"),
        (REGION, "", "school_id is empty"),
    ],
)
def test_school_key_refuses_weak_secret_or_no_school(region, school, message):
    with pytest.raises(ValueError, match=message):
        school_pseudonym_key(region, school)


# -- the SDK holds one school's key ------------------------------------------------------------------


class _Unused:
    """A transport never reached: these producers spool, and nothing flushes them."""

    per_device = False
    max_record_bytes = 1 << 20

    def send(self, records):
        raise AssertionError("nothing should be sent")

    def close(self) -> None:
        pass


def _edge(tmp_path, key, name="s.db"):
    return EdgeProducer(
        "sch-1", "room-1", _Unused(), spool=tmp_path / name, pseudonym_key=key, background=False
    )


def test_sdk_gives_the_same_pseudonyms_for_the_key_as_printed_or_as_bytes(tmp_path):
    key = school_pseudonym_key(REGION, "sch-1")
    with _edge(tmp_path, key) as as_bytes, _edge(tmp_path, key.decode(), "t.db") as as_text:
        assert (
            as_bytes.pseudonym("stu-42")
            == as_text.pseudonym("stu-42")
            == pseudonymise(key, "sch-1", "stu-42")
        )


def test_sdk_refuses_a_raw_student_of_another_school(tmp_path):
    with _edge(tmp_path, school_pseudonym_key(REGION, "sch-1")) as edge:
        ev = edge.event("tab-1", pb.DEVICE_KIND_TABLET, lesson_id="les-1")
        ev.school_id = "sch-2"
        ev.trace.student_id = "stu-42"
        ev.trace.verb = pb.LearningTrace.VERB_VIEWED
        with pytest.raises(ValidationError, match="not this producer's school 'sch-1'") as info:
            edge.send_events([ev])
        assert info.value.field == "events[0].school_id" and "stu-42" not in str(info.value)
        assert edge.depth == 0


# -- classtrace devices key ------------------------------------------------------------------------


@pytest.fixture
def no_region_env(monkeypatch):
    monkeypatch.delenv("CLASSTRACE_REGION_SECRET", raising=False)


def _key_cli(capsys, *argv):
    code = main(["devices", "key", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_key_prints_the_school_key_from_the_data_dir_secret(tmp_path, capsys, no_region_env):
    code, out, err = _key_cli(capsys, "--school", "sch-1", "--data-dir", str(tmp_path))
    assert code == 0
    secret_file = tmp_path / REGION_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert out == school_pseudonym_key(secret_file.read_text().strip().encode(), "sch-1").decode() + "\n"
    assert secret_file.read_text().strip() not in out + err
    assert "sch-1" in err and str(secret_file) in err
    # Same school again: same key (the secret is kept); another school: another key.
    assert _key_cli(capsys, "--school", "sch-1", "--data-dir", str(tmp_path))[1] == out
    other = _key_cli(capsys, "--school", "sch-2", "--data-dir", str(tmp_path))[1]
    assert other != out and len(other.strip()) == 64


def test_devices_key_uses_the_configured_region_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLASSTRACE_REGION_SECRET", REGION.decode())
    code, out, _ = _key_cli(capsys, "--school", "sch-0001", "--data-dir", str(tmp_path))
    assert (code, out) == (0, SCHOOL_VECTORS[0][1].decode() + "\n")
    assert not (tmp_path / REGION_SECRET_FILE).exists()
    flag = _key_cli(capsys, "--school", "sch-0001", "--region-secret", "another-region-secret")[1]
    assert flag.strip() == school_pseudonym_key(b"another-region-secret", "sch-0001").decode()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--school", "sch 1"], "school: must be 1–64 characters of [A-Za-z0-9_.:-]"),
        (["--school", "sch-1", "--region-secret", "hunter2"], "region_secret (CLASSTRACE_REGION_SECRET)"),
    ],
)
def test_devices_key_refuses_bad_input_precisely(tmp_path, capsys, no_region_env, argv, message):
    code, out, err = _key_cli(capsys, *argv, "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert message in err
    if "hunter2" in argv:
        assert "fewer than 16" in err and "hunter2" not in err


def test_devices_key_refuses_a_region_secret_file_others_can_read(tmp_path, capsys, no_region_env):
    secret_file = tmp_path / REGION_SECRET_FILE
    secret_file.write_text("a-region-secret-of-enough-bytes\n")
    os.chmod(secret_file, 0o644)
    code, out, err = _key_cli(capsys, "--school", "sch-1", "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert "mode 644" in err and f"chmod 600 {secret_file}" in err
