"""Balancing strategies: in which order to try the eligible replicas.

A strategy returns *all* candidates, best first, so that a read whose first
target fails is retried on the next one without asking the strategy again.
Strategies are pure (no I/O) and work on anything with ``weight`` and
``outstanding`` attributes.
"""

from __future__ import annotations

import enum
import itertools
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from querybus.errors import ConfigurationError

__all__ = [
    "Balanced",
    "LeastOutstanding",
    "RoundRobin",
    "Strategy",
    "StrategyName",
    "WeightedRandom",
    "make_strategy",
]


class Balanced(Protocol):
    """What a strategy looks at."""

    @property
    def weight(self) -> float: ...

    @property
    def outstanding(self) -> int: ...


T = TypeVar("T", bound=Balanced)


class StrategyName(enum.StrEnum):
    """Configured names (``QUERYBUS_ROUTING_STRATEGY``)."""

    ROUND_ROBIN = "round_robin"
    LEAST_OUTSTANDING = "least_outstanding"
    WEIGHTED_RANDOM = "weighted_random"


class Strategy(Protocol):
    """Orders candidate targets, best first."""

    def order(self, candidates: Sequence[T]) -> list[T]:
        """All of ``candidates``, the one to try first at the front."""
        ...


class RoundRobin:
    """Each call starts one further along the list (weights ignored)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def order(self, candidates: Sequence[T]) -> list[T]:
        n = len(candidates)
        if n <= 1:
            return list(candidates)
        start = next(self._counter) % n
        return [*candidates[start:], *candidates[:start]]


class LeastOutstanding:
    """Fewest requests in flight per unit of weight first; ties rotate, so two
    idle replicas share the load instead of the first taking it all."""

    def __init__(self) -> None:
        self._rr = RoundRobin()

    def order(self, candidates: Sequence[T]) -> list[T]:
        rotated = self._rr.order(candidates)
        # sorted() is stable: equal loads keep the rotated order.
        return sorted(rotated, key=lambda t: t.outstanding / max(t.weight, 1e-9))


class WeightedRandom:
    """First pick with probability proportional to weight; the rest follow in
    weighted-random order too (sampling without replacement).

    Args:
        rng: a :class:`random.Random` (seed it for reproducible tests).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(self, candidates: Sequence[T]) -> list[T]:
        pool = list(candidates)
        out: list[T] = []
        while pool:
            weights = [max(t.weight, 0.0) for t in pool]
            if sum(weights) <= 0:
                out.extend(pool)
                break
            pick = self._rng.choices(range(len(pool)), weights=weights)[0]
            out.append(pool.pop(pick))
        return out


def make_strategy(name: str | StrategyName) -> Strategy:
    """The strategy called ``name``.

    Raises:
        ConfigurationError: ``name`` is not a known strategy.
    """
    try:
        which = StrategyName(name)
    except ValueError:
        known = ", ".join(s.value for s in StrategyName)
        raise ConfigurationError(f"unknown routing strategy {name!r} (known: {known})") from None
    if which is StrategyName.ROUND_ROBIN:
        return RoundRobin()
    if which is StrategyName.LEAST_OUTSTANDING:
        return LeastOutstanding()
    return WeightedRandom()
