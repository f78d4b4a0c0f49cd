"""classtrace.authlimit: when an address or a token prefix is blocked, for how long, and that the
table stays bounded and holds no token."""

from __future__ import annotations

import pytest

from classtrace.authlimit import PREFIX_CHARS, FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def limiter(clock, **kw):
    return FailureLimiter(**{"max_failures": 3, "window": 60.0, **kw}, clock=clock)


def test_blocked_after_n_failures_until_the_block_ends(clock):
    lim = limiter(clock)
    for _ in range(2):
        lim.failed("10.0.0.1", "wrong")
        assert lim.retry_after("10.0.0.1", "") is None
    lim.failed("10.0.0.1", "wrong")
    assert lim.retry_after("10.0.0.1", "any-other-token") == 60
    clock.now += 45.5
    assert lim.retry_after("10.0.0.1", "") == 15  # whole seconds, rounded up
    assert lim.retry_after("10.0.0.2", "a-good-token") is None  # other sources are not affected
    clock.now += 15
    assert lim.retry_after("10.0.0.1", "") is None
    lim.failed("10.0.0.1", "")  # a fresh window: one failure does not block again
    assert lim.retry_after("10.0.0.1", "") is None


def test_failures_spread_over_more_than_a_window_never_block(clock):
    lim = limiter(clock)
    for _ in range(10):
        lim.failed("10.0.0.1", "")
        lim.failed("10.0.0.1", "")
        clock.now += 61
        assert lim.retry_after("10.0.0.1", "") is None


def test_one_token_tried_from_rotating_sources_is_blocked_by_its_prefix(clock):
    lim = limiter(clock)
    stolen = "ctv_" + "x" * 40
    for i in range(3):
        lim.failed(f"10.0.0.{i}", stolen)
    fresh = "10.9.9.9"
    assert lim.retry_after(fresh, stolen) == 60
    assert lim.retry_after(fresh, stolen[:PREFIX_CHARS] + "other-suffix") == 60  # the prefix is the key
    assert lim.retry_after(fresh, "ctv_" + "y" * 40) is None  # same fixed prefix, another token


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64: one host's range
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:192.0.2.7", "192.0.2.7", True),  # an IPv4-mapped address is the IPv4 one
        ("192.0.2.7", "192.0.2.8", False),
    ],
)
def test_source_keys(clock, first, second, shared):
    lim = limiter(clock)
    for _ in range(3):
        lim.failed(first, "")
    assert (lim.retry_after(second, "") is not None) is shared


def test_table_is_bounded_and_evicts_the_least_recently_seen(clock):
    lim = limiter(clock, max_keys=100)
    for source in ("10.0.0.1", "10.0.0.2"):
        for _ in range(3):
            lim.failed(source, "")  # both blocked
    for i in range(1000):  # an attacker rotating addresses
        lim.failed(f"192.168.{i // 250}.{i % 250}", "")
        assert lim.retry_after("10.0.0.1", "") == 60  # blocked and still knocking: kept
    assert len(lim) == 100
    assert lim.retry_after("10.0.0.2", "") is None  # blocked but quiet: evicted first
    assert lim.retry_after("192.168.0.0", "") is None


def test_neither_token_nor_prefix_is_stored(clock):
    lim = limiter(clock)
    token = "SECRET-token-value-1234567890"
    lim.failed("10.0.0.1", token)
    state = repr(vars(lim)) + repr(list(lim._table))
    assert token[:PREFIX_CHARS] not in state and token[:6] not in state


def test_two_limiters_hash_prefixes_under_their_own_keys(clock):
    a, b = limiter(clock), limiter(clock)
    a.failed(None, "tok-same")
    b.failed(None, "tok-same")
    assert list(a._table) != list(b._table)  # a leaked table cannot be matched against another


@pytest.mark.parametrize(
    "kw", [{"max_failures": 0}, {"window": 0.0}, {"max_keys": 1}], ids=["failures", "window", "keys"]
)
def test_bad_limits_are_refused(kw):
    with pytest.raises(ValueError, match="need max_failures >= 1, window > 0, max_keys >= 2"):
        FailureLimiter(**kw)
