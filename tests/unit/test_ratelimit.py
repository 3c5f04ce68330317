"""Token buckets per subject, on an injected clock (no sleeps, no real time).

Rates and times are chosen so that every value is exact in binary floating
point (halves, quarters), so equality asserts are safe.
"""

from __future__ import annotations

import pytest

from querybus.adapter.ratelimit import RateLimiter
from querybus.errors import ConfigurationError, RateLimitedError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refused(limiter: RateLimiter, subject: str, rate: float, burst: int) -> float:
    with pytest.raises(RateLimitedError) as info:
        limiter.check(subject, rate, burst)
    return info.value.retry_after


def test_burst_then_throttle() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(4):
        limiter.check("alice", 2.0, 4)
    assert _refused(limiter, "alice", 2.0, 4) == 0.5
    # a refused request takes nothing: still 0.5 s to wait
    assert _refused(limiter, "alice", 2.0, 4) == 0.5


def test_refill_and_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.check("a", 4.0, 1)
    clock.now += 0.125  # half a token back
    assert _refused(limiter, "a", 4.0, 1) == 0.125
    clock.now += 0.125
    limiter.check("a", 4.0, 1)  # exactly one token: accepted
    assert _refused(limiter, "a", 4.0, 1) == 0.25


def test_refill_is_capped_at_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.check("a", 1.0, 2)
    clock.now += 3600.0  # idle for an hour: back to 2, not 3600
    limiter.check("a", 1.0, 2)
    limiter.check("a", 1.0, 2)
    assert _refused(limiter, "a", 1.0, 2) == 1.0


def test_steady_rate_is_accepted() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(100):
        limiter.check("a", 4.0, 1)
        clock.now += 0.25


def test_two_subjects_are_independent() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.check("alice", 1.0, 1)
    _refused(limiter, "alice", 1.0, 1)
    limiter.check("bob", 1.0, 1)  # bob's bucket is his own
    _refused(limiter, "bob", 1.0, 1)
    assert len(limiter) == 2


def test_now_argument_overrides_the_clock() -> None:
    limiter = RateLimiter(clock=lambda: pytest.fail("clock read"))
    limiter.check("a", 1.0, 1, now=10.0)
    with pytest.raises(RateLimitedError) as info:
        limiter.check("a", 1.0, 1, now=10.5)
    assert info.value.retry_after == 0.5
    limiter.check("a", 1.0, 1, now=11.0)


def test_a_clock_stepping_back_drains_nothing() -> None:
    limiter = RateLimiter()
    limiter.check("a", 1.0, 2, now=10.0)
    limiter.check("a", 1.0, 2, now=5.0)  # 1 token left, none added or lost
    with pytest.raises(RateLimitedError) as info:
        limiter.check("a", 1.0, 2, now=5.0)
    assert info.value.retry_after == 1.0
    limiter.check("a", 1.0, 2, now=11.0)  # the bucket's time did not go back


def test_error_is_retriable_and_keeps_the_subject_out_of_the_message() -> None:
    limiter = RateLimiter()
    limiter.check("secret-subject", 2.0, 1, now=0.0)
    with pytest.raises(RateLimitedError) as info:
        limiter.check("secret-subject", 2.0, 1, now=0.0)
    err = info.value
    assert err.retriable
    assert err.code == "rate_limited"
    assert "secret-subject" not in str(err)
    assert str(err) == (
        "too many requests: the limit is 2 per second with bursts of 1; retry in 0.500 s"
    )


def test_a_changed_policy_applies_to_the_next_request() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        limiter.check("a", 1.0, 3, now=0.0)
    # the role's burst shrinks to 1: the bucket is capped at once
    with pytest.raises(RateLimitedError):
        limiter.check("a", 1.0, 1, now=0.5)
    limiter.check("a", 2.0, 1, now=1.0)  # and a faster rate refills faster


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_invalid_limits(rate: float, burst: int) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter().check("a", rate, burst, now=0.0)


def test_max_subjects_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(max_subjects=0)


# -- the memory bound -------------------------------------------------------------------


def test_never_more_than_max_subjects() -> None:
    limiter = RateLimiter(max_subjects=50)
    for i in range(1000):
        limiter.check(f"s{i}", 1.0, 5, now=float(i) / 1000)
        assert len(limiter) <= 50
    assert len(limiter) == 50


def test_eviction_prefers_a_full_bucket_over_the_oldest() -> None:
    limiter = RateLimiter(max_subjects=3)
    limiter.check("old-busy", 1.0, 1, now=0.0)  # empty until t=1
    limiter.check("idle", 100.0, 1, now=0.0)  # full again after 0.01 s
    limiter.check("recent", 1.0, 1, now=0.5)
    limiter.check("new", 1.0, 1, now=0.5)  # evicts "idle", not the older "old-busy"
    assert len(limiter) == 3
    with pytest.raises(RateLimitedError):
        limiter.check("old-busy", 1.0, 1, now=0.5)  # kept: still limited


def test_without_a_full_bucket_the_least_recently_used_goes() -> None:
    limiter = RateLimiter(max_subjects=2)
    limiter.check("a", 1.0, 1, now=0.0)
    limiter.check("b", 1.0, 1, now=0.0)
    limiter.check("a", 1.0, 1, now=1.0)  # "a" used again: "b" is now the oldest
    limiter.check("c", 1.0, 1, now=1.0)  # no bucket full: "b" goes
    with pytest.raises(RateLimitedError):
        limiter.check("a", 1.0, 1, now=1.0)  # "a" kept, empty
    limiter.check("b", 1.0, 1, now=1.0)  # "b" evicted, back with a full bucket


def test_an_evicted_subject_starts_full_again() -> None:
    # documented: under more active subjects than the bound, an evicted
    # subject gets a fresh burst
    limiter = RateLimiter(max_subjects=1)
    limiter.check("a", 1.0, 1, now=0.0)
    limiter.check("b", 1.0, 1, now=0.0)  # evicts "a" although it is empty
    limiter.check("a", 1.0, 1, now=0.0)
