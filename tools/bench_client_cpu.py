"""The caller's CPU per request through the bus, for A/B runs of two code versions.

Runs point queries at a given concurrency for some seconds against adapters
already serving ``QUERYBUS_TOPIC_PREFIX`` and prints the throughput and this
process's CPU time per request (``time.process_time``: exact, not /proc ticks).
Everything but the client is shared between the runs, so alternating two
versions of the client (``PYTHONPATH=<other checkout>/src``) against one
adapter isolates the client's cost, which ``querybus bench`` mixes with the
rest of the machine's noise::

    . .stack/env
    export QUERYBUS_TOPIC_PREFIX=ab. QUERYBUS_GROUP_ID=ab.adapters QUERYBUS_HTTP_PORT=0 \\
           QUERYBUS_REPLICA_DSNS= QUERYBUS_REGISTRY=
    .venv/bin/querybus serve --no-register &
    git worktree add /tmp/qb-before <commit>
    for i in 1 2 3; do
        PYTHONPATH=/tmp/qb-before/src .venv/bin/python tools/bench_client_cpu.py 16 6
        .venv/bin/python tools/bench_client_cpu.py 16 6
    done

The table ``querybus_bench`` must exist (``querybus bench`` creates it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from querybus import QueryClient
from querybus.config import BusSettings

_QUERY = "SELECT id, name, price, created FROM querybus_bench WHERE id = $1"


async def _run(concurrency: int, seconds: float) -> None:
    async with QueryClient(BusSettings.from_env(), timeout=60) as client:
        await client.fetchval("SELECT 1", timeout=60)  # the adapter has joined
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await client.fetchrow(_QUERY, done % 1000 + 1)
                done += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        used = time.process_time() - cpu
    print(
        f"{os.environ.get('PYTHONPATH') or 'this checkout'}: concurrency {concurrency}, "
        f"{done / wall:.0f} q/s, caller CPU {1e6 * used / done:.0f} µs per request"
    )


if __name__ == "__main__":
    asyncio.run(_run(int(sys.argv[1]), float(sys.argv[2])))
