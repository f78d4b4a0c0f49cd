"""classtrace.tokens: the one way registries make, hash and compare bearer tokens."""

from __future__ import annotations

import hashlib
import re

from classtrace.tokens import TOKEN_BYTES, new_token, token_hash, token_matches
from producers.gateway.auth import Binding, StaticDirectory
from readers.dashboard.viewers import Viewer, ViewerRegistry


def test_new_tokens_are_random_urlsafe_and_prefixed():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens)  # 32 bytes, base64url
    assert TOKEN_BYTES == 32
    assert re.fullmatch(r"ctv_[A-Za-z0-9_-]{43}", new_token("ctv_"))


def test_token_hash_is_hex_sha256_of_the_utf8_token():
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert token_hash("令牌") == hashlib.sha256("令牌".encode()).hexdigest()
    assert token_hash("a") != token_hash("a ")


def test_token_matches_only_its_own_digest():
    token = new_token()
    assert token_matches(token, token_hash(token))
    assert not token_matches(token, token_hash(token + "x"))
    assert not token_matches(token, "")
    assert not token_matches("", token_hash(token))


def test_device_and_viewer_registries_store_the_same_hash():
    token = new_token()
    devices = StaticDirectory({token: Binding("s", "c", "d")})
    viewers = ViewerRegistry([Viewer("v", "", token_hash(token), "now")])
    assert devices.lookup(token) == Binding("s", "c", "d")
    found = viewers.lookup(token)
    assert found is not None and found.viewer_id == "v"
    assert devices.lookup(token[:-1]) is None and viewers.lookup(token[:-1], wait=0) is None
