"""Where direct mode's CPU goes: the caller's CPU per request at each layer
of a plain statement's path, from raw asyncpg up to ``QueryClient``, in
alternating rounds in one process::

    . .stack/env
    .venv/bin/python tools/bench_direct_layers.py --rounds 4

Each layer adds one step to the one above it:

- ``asyncpg``: ``pool.fetchrow`` on a plain asyncpg pool (which resets each
  connection it gets back: one more round trip);
- ``pool``: querybus's pool (:class:`querybus.database.pool.ConnectionPool`:
  no reset, no task or timer), ``acquire`` + ``fetchrow`` + ``release``;
- ``pooled``: the same through :class:`querybus.database.postgres.pooled`
  with its acquire timeout;
- ``statement``: :func:`run_on_connection` (deadline, integer checks, row
  description, the outcome) instead of ``fetchrow``;
- ``executor``: ``PostgresExecutor.run`` (error mapping), with
  ``caller_bounds`` as direct mode sets it (no timers of its own);
- ``handler``: ``RequestHandler.handle_plain`` (policy, limits, the reply
  and its size check);
- ``client``: ``QueryClient.fetchrow`` in direct mode (the request, one
  timeout, the result).

Internal APIs on purpose (tools/, not the package). The table
``querybus_bench`` must exist (``querybus bench`` creates it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # the baseline, on purpose

from querybus import QueryClient
from querybus.config import ClientSettings, PostgresSettings
from querybus.database.postgres import pooled, run_on_connection
from querybus.execution import Deadline, Job
from querybus.protocol import QueryRequest, ReplyAddress

_QUERY = "SELECT id, name, price, created FROM querybus_bench WHERE id = $1"


async def _cpu_per_request(
    call: Callable[[int], Awaitable[Any]], requests: int, concurrency: int
) -> float:
    keys = iter(range(requests))

    async def worker() -> None:
        for key in keys:
            await call(key % 1000 + 1)

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) / requests


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    dsn = PostgresSettings.from_env().dsn
    client = QueryClient(ClientSettings(mode="direct", dsn=dsn, pool_size=10), timeout=60.0)
    await client.start()
    direct: Any = client._direct
    handler, executor = direct._handler, direct._executor
    ours = executor._pool
    theirs = await asyncpg.create_pool(dsn, min_size=10, max_size=10)

    def request(key: int) -> QueryRequest:
        now = time.time()
        return QueryRequest(
            id="layers",
            client="layers",
            sql=_QUERY,
            params=[key],
            reply_to=ReplyAddress("direct", 0),
            deadline=now + 60,
            sent_at=now,
        )

    statement = handler.policy.check(request(1))

    def job(key: int, *, caller_bounds: bool = False) -> Job:
        r = request(key)
        return Job(
            r,
            [key],
            statement,
            Deadline.from_wall(r.deadline, cap=300),
            caller_bounds=caller_bounds,
        )

    async def pool_fetchrow(key: int) -> Any:
        conn = await ours.acquire()
        try:
            return await conn.fetchrow(_QUERY, key)
        finally:
            await ours.release(conn, timeout=5)

    async def pooled_fetchrow(key: int) -> Any:
        async with pooled(ours, 60) as conn:
            return await conn.fetchrow(_QUERY, key)

    async def statement_path(key: int) -> Any:
        async with pooled(ours, 60) as conn:
            return await run_on_connection(conn, job(key), session_timeout=30.0)

    layers: dict[str, Callable[[int], Awaitable[Any]]] = {
        "asyncpg": lambda key: theirs.fetchrow(_QUERY, key),
        "pool": pool_fetchrow,
        "pooled": pooled_fetchrow,
        "statement": statement_path,
        "executor": lambda key: executor.run(job(key, caller_bounds=True)),
        "handler": lambda key: handler.handle_plain(request(key)),
        "client": lambda key: client.fetchrow(_QUERY, key),
    }
    try:
        for call in layers.values():  # warm-up: statement caches, pools
            await _cpu_per_request(call, 1000, args.concurrency)
        figures: dict[str, list[float]] = {name: [] for name in layers}
        for _ in range(args.rounds):
            for name, call in layers.items():
                figures[name].append(await _cpu_per_request(call, args.requests, args.concurrency))
        print(
            f"{os.cpu_count()} cores, concurrency {args.concurrency}, {args.requests} point "
            f"queries per layer and round, medians of {args.rounds} alternating rounds:"
        )
        base = statistics.median(figures["asyncpg"])
        for name, runs in figures.items():
            cpu = statistics.median(runs)
            print(f"  {name:10s} {1e6 * cpu:6.1f} µs caller CPU per request  {cpu / base:5.2f}x")
    finally:
        await client.stop()
        await theirs.close()


if __name__ == "__main__":
    asyncio.run(_main())
