"""A routing target's connections never outlive an interrupted operation.

Replicas come and go while the adapter runs (discovery adds and removes them)
and the loop doing it can be cancelled at any await. A pool opened for a
replica that never joined the routing list, or whose close was interrupted,
has no other owner: if it is not ended right there, its connections stay
open until the process exits (and pytest's unclosed-connection warnings fail
the run).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.helpers import wait_for
from tests.stack import Stack

from querybus.routing.executor import RoutingExecutor, RoutingSettings
from querybus.routing.targets import ReplicaConfig, Target

FAST = RoutingSettings(lag_interval=0.05, max_replica_lag=5.0, ban_seconds=0.2, ban_max_seconds=1.0)


async def test_adding_a_replica_cancelled_midway_leaves_no_pool_open(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with RoutingExecutor(stack.pg_dsn, [], settings=FAST, pool_size=2) as ex:
        seen: list[Target] = []
        forever = asyncio.Event()

        async def stuck_sample(target: Target) -> None:
            seen.append(target)  # its pool is open: now hang, as a slow sample would
            await forever.wait()

        monkeypatch.setattr(ex.monitor, "sample_replica", stuck_sample)
        adding = asyncio.create_task(ex.add_replica(ReplicaConfig(dsn=stack.replica_dsn)))
        await wait_for(lambda: seen, 10, message="the replica's pool to open")
        [target] = seen
        pool: Any = target._pool
        assert pool is not None
        connections = pool.connections()
        assert connections, "the pool holds open connections"
        adding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await adding
        assert ex.replicas == []  # it never joined
        assert all(conn.is_closed() for conn in connections), "a pool nobody owns stayed open"


async def test_a_close_interrupted_midway_still_ends_every_connection(stack: Stack) -> None:
    target = Target("r", stack.replica_dsn, pool_size=2, max_statement_timeout=30.0)
    await target.open()
    pool: Any = target._pool
    connections = pool.connections()
    assert connections
    # A lag sample holds the monitor lock (as _monitor_call does): the close
    # waits for it, with the pool already detached from the target…
    await target._monitor_lock.acquire()
    try:
        closing = asyncio.create_task(target.close(grace=60.0))
        await wait_for(lambda: target._pool is None, 10, message="the close to start")
        closing.cancel()  # …and is cancelled right there.
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        target._monitor_lock.release()
    assert all(conn.is_closed() for conn in connections), "a detached pool stayed open"
