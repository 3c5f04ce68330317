"""Small helpers shared by the unit and integration tests."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from querybus.protocol import QueryRequest, ReplyAddress
from querybus.transport import PartitionReader, Record

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    message: str = "condition",
    accept: Callable[[Any], Any] = bool,
) -> Any:
    """Poll ``predicate`` (sync or async) until ``accept`` holds for its value
    (by default: until the value is truthy); return that value.

    The one polling loop of the tests: everything that waits for a condition
    calls this (or :func:`eventually`, the same loop with the acceptance test first).

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds (the last value is shown).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached within {timeout} s; last value: {value!r}")
        await asyncio.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float,
    interval: float = 0.02,
) -> T:
    """Poll ``probe`` until ``accept`` holds for its value; return that value
    (:func:`wait_for` with an acceptance test, for the registry tests' style).

    Raises:
        AssertionError: it did not hold within ``within`` seconds (the last value is shown).
    """
    value: T = await wait_for(probe, within, interval=interval, accept=accept)
    return value


def make_request(
    sql: str, params: Sequence[Any] = (), *, timeout: float = 30.0, **fields: Any
) -> QueryRequest:
    """A :class:`QueryRequest` for a test: the one place tests build them.

    Defaults: a unique ``id``, client ``"test"``, ``reply_to`` partition 0 of
    topic ``"r"``, and a ``deadline`` ``timeout`` seconds from now (a negative
    ``timeout`` gives an expired request). ``params`` are in wire form; any other
    field (``op``, ``many``, ``route``, ``min_lsn``, an explicit ``deadline``, ...)
    by keyword.
    """
    fields.setdefault("id", uuid.uuid4().hex)
    fields.setdefault("client", "test")
    fields.setdefault("reply_to", ReplyAddress("r", 0))
    fields.setdefault("deadline", time.time() + timeout)
    return QueryRequest(sql=sql, params=list(params), **fields)


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
