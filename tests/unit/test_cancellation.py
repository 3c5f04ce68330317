"""``stop_task``: stops a background task without swallowing the stopper's
own cancellation (the flaw of ``cancel(); with suppress(CancelledError):
await task``, which left a cancelled ``stop()`` running on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import querybus
from querybus.cancellation import Deadlines, stop_task, wait_for


async def test_the_stopped_tasks_cancellation_is_swallowed() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled()
    await stop_task(None)  # nothing to stop


async def test_the_stoppers_own_cancellation_is_passed_on() -> None:
    """The stopped task takes a while to unwind; the stopper is cancelled
    meanwhile (a timeout around a shutdown): it must end cancelled, not go on."""
    release = asyncio.Event()
    unwinding = asyncio.Event()
    went_on = False

    async def slow_to_unwind() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            unwinding.set()
            await release.wait()  # cleanup that outlasts the stopper's patience

    async def stopper(task: asyncio.Task[None]) -> None:
        nonlocal went_on
        await stop_task(task)
        went_on = True

    task = asyncio.create_task(slow_to_unwind())
    await asyncio.sleep(0)
    outer = asyncio.create_task(stopper(task))
    await unwinding.wait()  # the stopper has cancelled it and waits for its end
    outer.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled()
    assert not went_on
    assert task.cancelled()


async def test_a_timeout_around_it_ends_at_the_timeout() -> None:
    release = asyncio.Event()

    async def slow_to_unwind() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()

    task = asyncio.create_task(slow_to_unwind())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await stop_task(task)
    release.set()
    await asyncio.wait([task])


async def test_the_tasks_own_failure_is_raised_and_cancel_false_only_waits() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await stop_task(failed)

    done = asyncio.Event()

    async def ends() -> str:
        await asyncio.sleep(0.01)
        done.set()
        return "ok"

    task = asyncio.create_task(ends())
    await stop_task(task, cancel=False)
    assert done.is_set()
    assert not task.cancelled()


async def test_wait_for_passes_a_cancellation_on_even_when_the_result_arrives_with_it() -> None:
    """Python 3.11's asyncio.wait_for returns the result here and loses the
    cancellation (gh-86296): a loop around it would never stop."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiter() -> int:
        return await wait_for(fut, 10)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    fut.set_result(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_for_times_out_and_returns_results() -> None:
    assert await wait_for(asyncio.sleep(0, result="done"), 1) == "done"
    assert await wait_for(asyncio.sleep(0, result="no limit"), None) == "no limit"
    with pytest.raises(TimeoutError):
        await wait_for(asyncio.sleep(3600), 0.01)


def test_querybus_never_uses_asyncio_wait_for() -> None:
    """The flawed call stays out of the code (use querybus.cancellation.wait_for)."""
    src = Path(querybus.__file__).parent
    users = [
        str(path.relative_to(src))
        for path in sorted(src.rglob("*.py"))
        if path.name != "cancellation.py" and "asyncio.wait_for(" in path.read_text("utf-8")
    ]
    assert users == []


# -- Deadlines: many timeouts on one timer ---------------------------------------------------


async def test_deadlines_return_results_and_time_out_what_runs_too_long() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()  # the awaited work itself is cancelled, as with asyncio.timeout
            raise
        return 1

    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    assert await deadlines.run(quick(), loop.time() + 30) == 7
    with pytest.raises(TimeoutError):
        await deadlines.run(slow(), loop.time() + 0.05)
    assert cancelled.is_set()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_deadlines_keep_each_waits_own_deadline() -> None:
    """An early deadline that ends first does not take the later one's
    timer away, and a later wait with an earlier deadline moves the timer."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    started = loop.time()
    late = asyncio.ensure_future(deadlines.run(asyncio.sleep(3600), loop.time() + 0.3))
    assert await deadlines.run(asyncio.sleep(0, "early"), loop.time() + 0.05) == "early"
    soon = asyncio.ensure_future(deadlines.run(asyncio.sleep(3600), loop.time() + 0.1))
    with pytest.raises(TimeoutError):
        await soon
    assert not late.done()
    with pytest.raises(TimeoutError):
        await late
    assert loop.time() - started >= 0.3


async def test_deadlines_pass_the_callers_own_cancellation_on() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(deadlines.run(asyncio.sleep(3600), loop.time() + 30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_deadlines_stay_proportional_to_the_waits_in_progress() -> None:
    """Ended waits leave entries behind until they reach the front; the heap
    is compacted, so thousands of quick waits with far deadlines do not pile up."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    for _ in range(5000):
        await deadlines.run(asyncio.sleep(0), loop.time() + 3600)
    assert len(deadlines._heap) <= 65
    assert deadlines._live == 0
