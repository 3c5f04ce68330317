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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["stop_task", "wait_for"]

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
