"""``querybus bench``: the same point query through querybus and directly through
asyncpg, on the same database, in one run.

The adapter runs as a separate process (as in production: the caller does not
share its CPU with the adapter), on its own topic prefix and group, with a
pool as large as the direct side's. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from querybus.cli.common import console
from querybus.client import QueryClient
from querybus.config import BusSettings, PostgresSettings, TopicNames
from querybus.errors import QueryBusError

__all__ = ["bench", "run_bench"]

_TABLE = "querybus_bench"
_ROWS = 10_000
_QUERY = f"SELECT id, name, price, created FROM {_TABLE} WHERE id = $1"


def bench(
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 32,
    requests: Annotated[int, typer.Option(help="Requests per side.")] = 5000,
    pool_size: Annotated[
        int, typer.Option(help="Connections, for the adapter and the direct side alike.")
    ] = 10,
    warmup: Annotated[int, typer.Option(help="Unmeasured requests per side first.")] = 500,
    external: Annotated[
        bool,
        typer.Option(
            help="Use adapters already serving the configured topics instead of starting one."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Latency and throughput through querybus vs. directly through asyncpg."""
    try:
        report = asyncio.run(
            run_bench(
                concurrency=concurrency,
                requests=requests,
                pool_size=pool_size,
                warmup=warmup,
                external=external,
                log=None if as_json else console(stderr=True),
            )
        )
    except QueryBusError as exc:
        console(stderr=True).print(
            f"[red]bench failed:[/red] {type(exc).__name__}: {escape(str(exc))}"
        )
        raise typer.Exit(1) from None
    if as_json:
        print(msgspec.json.encode(report).decode())
    else:
        _print(report)


async def _prepare_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} (id int PRIMARY KEY, name text NOT NULL, "
            "price numeric(10,2) NOT NULL, created timestamptz NOT NULL DEFAULT now())"
        )
        if await conn.fetchval(f"SELECT count(*) FROM {_TABLE}") < _ROWS:
            await conn.execute(
                f"INSERT INTO {_TABLE} (id, name, price) SELECT g, 'item ' || g, g * 1.25 "
                f"FROM generate_series(1, {_ROWS}) g ON CONFLICT (id) DO NOTHING"
            )
    finally:
        await conn.close()


async def _measure(
    call: Callable[[int], Awaitable[Any]], *, requests: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    next_id = 0

    async def worker() -> None:
        nonlocal next_id
        while next_id < requests:
            next_id += 1
            key = next_id % _ROWS + 1
            started = time.perf_counter()
            await call(key)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 3),
        "p95_ms": round(q[94] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        "qps": round(len(latencies) / wall, 1),
    }


async def run_bench(
    *,
    concurrency: int,
    requests: int,
    pool_size: int,
    warmup: int,
    external: bool,
    log: Console | None,
) -> dict[str, Any]:
    """Run both sides; return ``{"bus", "direct", "ratio", "setup"}`` figures."""
    pg = PostgresSettings.from_env()
    base = BusSettings.from_env()
    await _prepare_table(pg.dsn)
    adapter: asyncio.subprocess.Process | None = None
    bus = base
    if not external:
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        bus = BusSettings(
            bootstrap_servers=base.bootstrap_servers,
            topics=TopicNames(prefix=prefix),
            request_partitions=base.request_partitions,
            response_partitions=base.response_partitions,
        )
        env = {
            **os.environ,
            "QUERYBUS_TOPIC_PREFIX": prefix,
            "QUERYBUS_GROUP_ID": f"{prefix}adapters",
            "QUERYBUS_POOL_SIZE": str(pool_size),
            "QUERYBUS_HTTP_PORT": "0",
            "QUERYBUS_REPLICA_DSNS": "",  # same database as the direct side
            "QUERYBUS_REGISTRY": "",
        }
        if log:
            log.print(f"starting an adapter (pool {pool_size}) on topics {prefix}*")
        adapter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "querybus", "serve", "--log-level", "WARNING", "--no-register",
            env=env, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    direct_pool: asyncpg.Pool = await asyncpg.create_pool(
        pg.dsn, min_size=pool_size, max_size=pool_size
    )
    try:
        async with QueryClient(bus, timeout=60.0) as client:
            await client.fetchval("SELECT 1", timeout=60.0)  # waits until an adapter has joined

            async def via_bus(key: int) -> Any:
                return await client.fetchrow(_QUERY, key)

            async def direct(key: int) -> Any:
                return await direct_pool.fetchrow(_QUERY, key)

            for name, call in (("bus", via_bus), ("direct", direct)):
                if log:
                    log.print(f"warming up {name}…")
                await _measure(call, requests=warmup, concurrency=concurrency)
            if log:
                log.print(f"measuring {requests} requests per side at concurrency {concurrency}…")
            bus_figures = await _measure(via_bus, requests=requests, concurrency=concurrency)
            direct_figures = await _measure(direct, requests=requests, concurrency=concurrency)
    finally:
        await direct_pool.close()
        if adapter is not None and adapter.returncode is None:
            adapter.terminate()  # SIGTERM: the adapter stops gracefully
            try:
                await asyncio.wait_for(adapter.wait(), 30)
            except TimeoutError:
                adapter.kill()
                await adapter.wait()
    return {
        "bus": bus_figures,
        "direct": direct_figures,
        "ratio": {
            "p50": round(bus_figures["p50_ms"] / direct_figures["p50_ms"], 2),
            "p99": round(bus_figures["p99_ms"] / direct_figures["p99_ms"], 2),
            "qps": round(bus_figures["qps"] / direct_figures["qps"], 3),
        },
        "setup": {
            "query": _QUERY,
            "requests": requests,
            "concurrency": concurrency,
            "pool_size": pool_size,
            "cores": os.cpu_count(),
            "adapter": "external" if external else "subprocess",
        },
    }


def _print(report: dict[str, Any]) -> None:
    setup = report["setup"]
    table = Table(
        title=f"{setup['requests']} point queries, concurrency {setup['concurrency']}, "
        f"pool {setup['pool_size']}, {setup['cores']} cores"
    )
    for col in ("", "p50 ms", "p95 ms", "p99 ms", "queries/s"):
        table.add_column(col, justify="right")
    for side in ("bus", "direct"):
        f = report[side]
        label = "querybus" if side == "bus" else "asyncpg direct"
        table.add_row(
            label,
            f"{f['p50_ms']:.2f}",
            f"{f['p95_ms']:.2f}",
            f"{f['p99_ms']:.2f}",
            f"{f['qps']:.0f}",
        )
    r = report["ratio"]
    table.add_row("bus / direct", f"{r['p50']}x", "", f"{r['p99']}x", f"{r['qps']}x")
    console().print(table)
