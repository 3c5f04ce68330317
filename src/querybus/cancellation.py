"""Waiting with a timeout, and stopping background tasks, without ever
swallowing a cancellation.

Two patterns lose a ``task.cancel()``, and a loop that loses one runs on
while whoever stops it waits forever:

- ``asyncio.wait_for`` on Python 3.11 returns the awaited result instead of
  raising ``CancelledError`` when the cancellation arrives just as the
  awaited thing completes (CPython gh-86296, fixed in 3.12). A background
  loop around it (a heartbeat, a poll) may then never end. :func:`wait_for`
  is the same call on ``asyncio.timeout``, which counts cancellations.
- ``task.cancel()`` then ``with suppress(CancelledError): await task``
  suppresses the stopper's own cancellation too. :func:`stop_task` swallows
  only the stopped task's.

``asyncio.wait_for`` is not used anywhere else in querybus (a unit test
checks it).

:class:`Deadlines` is ``asyncio.timeout`` for a hot path: many concurrent
waits, each with its deadline, on one timer.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["Deadlines", "stop_task", "wait_for"]

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``await aw``, for at most ``timeout`` seconds (None: no limit).

    Raises:
        TimeoutError: it did not complete in time (it is cancelled).
        asyncio.CancelledError: the caller was cancelled, even when ``aw``
            completed at the same moment.
    """
    async with asyncio.timeout(timeout):
        return await aw


async def stop_task(task: asyncio.Task[Any] | None, *, cancel: bool = True) -> None:
    """Cancel ``task`` (unless ``cancel`` is False) and wait until it has ended.

    Raises:
        asyncio.CancelledError: the caller itself was cancelled meanwhile.
        Exception: what the task raised, other than its cancellation.
    """
    if task is None:
        return
    if cancel:
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # ours, not the task's: pass it on


class _Wait:
    __slots__ = ("done", "fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.done = False
        self.fired = False


class Deadlines:
    """Timeouts for many concurrent waits on one timer.

    ``await deadlines.run(aw, when)`` is ``async with asyncio.timeout_at(when):
    await aw`` at a fifth of the cost (a micro-benchmark on this project's
    busy 2-core machine: 2.4 against 13 µs): a wait is a heap entry, not a timer handle
    and a context manager of its own. The timer is set for the earliest
    deadline; entries of waits that ended are dropped when they reach the
    front, and the heap is compacted when they outnumber the live ones four
    to one, so it stays proportional to the waits in progress.

    Semantics are ``asyncio.timeout``'s: at the deadline the waiting task is
    cancelled and :meth:`run` raises TimeoutError; a cancellation from
    anyone else stays a CancelledError (cancellations are counted, as
    ``asyncio.timeout`` counts them).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Wait]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._live = 0
        self._order = itertools.count()

    async def run(self, aw: Awaitable[T], when: float) -> T:
        """``await aw``, cancelled at ``when`` (event-loop time).

        Raises:
            TimeoutError: ``when`` passed first.
            asyncio.CancelledError: the caller was cancelled.
        """
        task = asyncio.current_task()
        assert task is not None, "Deadlines.run outside a task"
        wait = _Wait(task)
        heap = self._heap
        if len(heap) > 64 and len(heap) > 4 * self._live:
            heap = self._heap = [item for item in heap if not item[2].done]
            heapq.heapify(heap)
        heapq.heappush(heap, (when, next(self._order), wait))
        self._live += 1
        timer = self._timer
        if timer is None or when < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(when, self._expire)
        cancelling = task.cancelling()
        try:
            return await aw
        except asyncio.CancelledError:
            if wait.fired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            wait.done = True
            self._live -= 1

    def _expire(self) -> None:
        """The timer: cancel the waits whose deadline passed, drop the ended
        ones at the front, and set the timer for the next deadline."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and (heap[0][2].done or heap[0][0] <= now):
            _, _, wait = heapq.heappop(heap)
            if not wait.done:
                wait.fired = True
                wait.task.cancel()
        if heap:
            self._timer = loop.call_at(heap[0][0], self._expire)
