"""Request rates per subject: one token bucket per caller.

Each subject (the token's ``sub``; every anonymous caller shares
``"anonymous"``) has a bucket holding up to ``burst`` tokens that refills at
``rate`` tokens per second; a request takes one, and a request finding less
than one is refused with :class:`~querybus.errors.RateLimitedError`, whose
``retry_after`` says when one will be there. The rate and burst come with
each call (from the caller's role policy), so a changed policy applies to
the next request.

The limit is per adapter instance: buckets live in this process's memory,
so N adapters sharing the request topic let a subject through at up to N
times its rate (a subject's requests are spread over the instances by
partition). A shared limit would need shared state on every request; this
one costs no I/O.

Memory is bounded: at most ``max_subjects`` buckets (a few hundred bytes
each with the subject's string). A new subject beyond that evicts one: among
the 8 least recently used, the first bucket that has refilled (an idle
subject, which loses nothing by it), else the least recently used. An
evicted subject that comes back starts with a full bucket, so under more
active subjects than the bound, a subject can get up to one extra burst each
time it is evicted. Each check is O(1).

Not thread-safe: an adapter calls it from its event loop.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable

from querybus.errors import ConfigurationError, RateLimitedError

__all__ = ["RateLimiter"]

#: How many of the least recently used buckets eviction looks at for a full one.
_EVICTION_SCAN = 8


class _Bucket:
    # rate and burst of the last check: eviction needs them to tell a full bucket
    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, tokens: float, at: float, rate: float, burst: int) -> None:
        self.tokens = tokens
        self.at = at
        self.rate = rate
        self.burst = burst

    def full(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.at) * self.rate >= self.burst


class RateLimiter:
    """Token buckets per subject (see the module docstring).

    Args:
        max_subjects: the most buckets kept.
        clock: seconds from a monotonic clock (tests inject one).
    """

    def __init__(
        self, max_subjects: int = 100_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_subjects < 1:
            raise ConfigurationError(f"max_subjects must be at least 1, got {max_subjects}")
        self.max_subjects = max_subjects
        self._clock = clock
        # Least recently used first.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, subject: str, rate: float, burst: int, now: float | None = None) -> None:
        """Take one token from ``subject``'s bucket.

        Args:
            subject: who is asking.
            rate: tokens per second added to the bucket (> 0).
            burst: the bucket's size (≥ 1).
            now: the time, from the same clock as ``clock``; read from it when None.

        Raises:
            RateLimitedError: the bucket holds less than one token; nothing
                was taken. ``retry_after`` is the seconds until one is there.
            ConfigurationError: ``rate`` or ``burst`` is out of range.
        """
        if not rate > 0 or burst < 1:
            raise ConfigurationError(
                f"a rate limit needs rate > 0 and burst >= 1, got {rate}/{burst}"
            )
        if now is None:
            now = self._clock()
        bucket = self._buckets.get(subject)
        if bucket is None:
            if len(self._buckets) >= self.max_subjects:
                self._evict(now)
            # A new subject starts full and takes its token at once.
            self._buckets[subject] = _Bucket(burst - 1.0, now, rate, burst)
            return
        self._buckets.move_to_end(subject)
        bucket.rate, bucket.burst = rate, burst
        # max(): an injected clock that steps back must not drain the bucket.
        tokens = min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate)
        bucket.at = max(bucket.at, now)
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return
        bucket.tokens = tokens
        retry_after = (1.0 - tokens) / rate
        raise RateLimitedError(
            f"too many requests: the limit is {rate:g} per second with bursts of {burst}; "
            f"retry in {retry_after:.3f} s",
            retry_after=retry_after,
        )

    def _evict(self, now: float) -> None:
        # The least recently used buckets are the likeliest to be full, but
        # with rates differing by role not surely the first: look at a few
        # (O(1)), evict the first full one, else the least recently used.
        oldest = next(iter(self._buckets))
        for subject, bucket in itertools.islice(self._buckets.items(), _EVICTION_SCAN):
            if bucket.full(now):
                del self._buckets[subject]
                return
        del self._buckets[oldest]
