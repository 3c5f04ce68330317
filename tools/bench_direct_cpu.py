"""Direct mode against raw asyncpg, in one process: throughput and the
caller's CPU per request (``time.process_time``), in alternating rounds.

Both sides run point queries on pools of the same size on the same server;
with everything in one process the CPU figure is exactly what the switch to
``QUERYBUS_MODE=direct`` costs the caller::

    . .stack/env
    .venv/bin/python tools/bench_direct_cpu.py --concurrency 32 --requests 5000 --rounds 3

The table ``querybus_bench`` must exist (``querybus bench`` creates it).
Under py-spy (``py-spy record -p PID -r 500 -f raw``) ``--only direct`` or
``--only asyncpg`` runs one side for ``--seconds`` to profile it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # the baseline, on purpose (tools/, not the package)

from querybus import QueryClient
from querybus.config import ClientSettings, PostgresSettings

_QUERY = "SELECT id, name, price, created FROM querybus_bench WHERE id = $1"


async def _run(call: Callable[[int], Awaitable[Any]], requests: int, concurrency: int) -> float:
    keys = iter(range(requests))

    async def worker() -> None:
        for key in keys:
            await call(key % 1000 + 1)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--only", choices=("direct", "asyncpg"))
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    dsn = PostgresSettings.from_env().dsn
    client = QueryClient(
        ClientSettings(mode="direct", dsn=dsn, pool_size=args.pool_size), timeout=60.0
    )
    await client.start()
    pool = await asyncpg.create_pool(dsn, min_size=args.pool_size, max_size=args.pool_size)
    sides: dict[str, Callable[[int], Awaitable[Any]]] = {
        "direct": lambda key: client.fetchrow(_QUERY, key),
        "asyncpg": lambda key: pool.fetchrow(_QUERY, key),
    }
    try:
        for call in sides.values():  # warm-up: statement caches, pools
            await _run(call, 1000, args.concurrency)
        if args.only:
            print(f"profiling {args.only} in pid {os.getpid()}", flush=True)
            end = time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                await _run(sides[args.only], 2000, args.concurrency)
            return
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, call in sides.items():
                cpu = time.process_time()
                qps = await _run(call, args.requests, args.concurrency)
                used = (time.process_time() - cpu) / args.requests
                figures[name].append((qps, used))
        print(
            f"{os.cpu_count()} cores, concurrency {args.concurrency}, {args.requests} point "
            f"queries per side and round, medians of {args.rounds} alternating rounds:"
        )
        for name, runs in figures.items():
            qps = statistics.median(q for q, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"  {name:8s} {qps:8.0f} q/s  caller CPU {1e6 * cpu:6.1f} µs per request")
        ratio = statistics.median(q for q, _ in figures["direct"]) / statistics.median(
            q for q, _ in figures["asyncpg"]
        )
        print(f"  direct mode / asyncpg: {ratio:.3f}x")
    finally:
        await client.stop()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(_main())
