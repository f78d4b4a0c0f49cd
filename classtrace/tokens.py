"""Bearer tokens of the device and viewer registries: made once, stored only as a hash.

One home for how a token is made, hashed and compared: ``classtrace devices add`` and
``classtrace viewers add`` print a token once (:func:`new_token`), the registries on
``classtrace.devices.v1`` / ``classtrace.viewers.v1`` and the data-dir copies keep only
:func:`token_hash`, and the gateway and the dashboard look a presented token up by its hash.

A lookup by hash is a dict read of a SHA-256 digest, which leaks nothing useful through its
timing (finding a stored digest byte by byte would need SHA-256 preimages). Where a presented
token is compared with one stored digest, :func:`token_matches` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["TOKEN_BYTES", "new_token", "token_hash", "token_matches"]

TOKEN_BYTES = 32
"""Random bytes in a token (256 bits; ~43 URL-safe characters)."""


def new_token(prefix: str = "") -> str:
    """A fresh random bearer token, ``prefix`` + 32 random bytes in URL-safe base64."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Hex SHA-256 of a bearer token: what registries store and look tokens up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    """Whether ``token`` hashes to ``digest`` (hex), compared in constant time."""
    return hmac.compare_digest(token_hash(token).encode(), digest.encode())
