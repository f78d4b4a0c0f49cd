"""Viewer registry without a broker: hashing, scope, revocation, the data-dir copy and token file."""

from __future__ import annotations

import stat

from classtrace.tokens import token_hash
from readers.dashboard import viewers as v
from readers.dashboard.viewers import Viewer, ViewerRegistry


def _viewer(vid="v1", school="", token="tok", revoked=False):
    return Viewer(vid, school, token_hash(token), "2026-11-23T00:00:00+00:00", revoked=revoked)


def test_lookup_by_token_and_scope():
    registry = ViewerRegistry([_viewer("a", "", "t-all"), _viewer("s", "S1", "t-s1")])
    assert registry.lookup("t-all").scope is None
    assert registry.lookup("t-s1").scope == "S1"
    assert registry.lookup("nope", wait=0) is None and registry.lookup("", wait=0) is None


def test_revocation_and_rotation_replace_the_previous_registration():
    registry = ViewerRegistry([_viewer("a", token="old")])
    registry.put(_viewer("a", token="new"))
    assert registry.lookup("old", wait=0) is None and registry.lookup("new") is not None
    registry.put(_viewer("a", token="new", revoked=True))
    assert registry.lookup("new", wait=0) is None
    assert not registry.is_active(_viewer("a", token="new"))


def test_registration_roundtrip_holds_no_token():
    viewer = _viewer("a", "S1", token="secret-token")
    raw = viewer.encode()
    assert b"secret-token" not in raw and Viewer.decode(raw) == viewer


def test_data_dir_copy_keeps_latest_per_viewer(tmp_path):
    v._keep(tmp_path, _viewer("a", token="x"))
    v._keep(tmp_path, _viewer("b", "S1", token="y"))
    v._keep(tmp_path, _viewer("a", token="x", revoked=True))
    (tmp_path / v.VIEWERS_FILE).open("a").write("not json\n")
    kept = {x.viewer_id: x for x in v.kept_viewers(tmp_path)}
    assert kept["a"].revoked and not kept["b"].revoked and len(kept) == 2
    assert stat.S_IMODE((tmp_path / v.VIEWERS_FILE).stat().st_mode) == 0o600


def test_admin_token_file_is_private_and_reused(tmp_path):
    path = tmp_path / v.ADMIN_TOKEN_FILE
    first = v._read_or_create_token(path)
    assert first.startswith("ctv_") and len(first) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert v._read_or_create_token(path) == first
