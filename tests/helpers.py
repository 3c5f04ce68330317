"""Small helpers shared by the unit and integration tests."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from querybus.transport import PartitionReader, Record

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy; return it.

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        await asyncio.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float,
    interval: float = 0.02,
) -> T:
    """Poll ``probe`` until ``accept`` holds for its value; return that value.

    Raises:
        AssertionError: it did not hold within ``within`` seconds (the last value is shown).
    """
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def collect(
    reader: PartitionReader,
    count: int,
    *,
    timeout: float = 20.0,
    where: Callable[[Record], bool] = lambda _: True,
) -> list[Record]:
    """Read from ``reader`` until ``count`` records matching ``where`` arrived."""
    deadline = time.monotonic() + timeout
    out: list[Record] = []
    while len(out) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(out)} of {count} records within {timeout} s")
        out.extend(r for r in await reader.getmany(min(0.2, left)) if where(r))
    return out


def bounded(seconds: float) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Bound a whole async test: a hang fails after ``seconds`` with a traceback
    through the await that never completed (pytest-timeout only shows the loop)."""

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            async with asyncio.timeout(seconds):
                return await fn(*args, **kwargs)

        return wrapper

    return decorate
