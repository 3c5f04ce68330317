"""``querybus bench``: the same point query through querybus and directly through
asyncpg, on the same database, in one run.

The adapter runs as a separate process (as in production: the caller does not
share its CPU with the adapter), on its own topic prefix and group, with a
pool as large as the direct side's. With ``--identity`` a second adapter
checks a signed token on every request and runs it as a database role
(``SET LOCAL ROLE`` and the claims, in a transaction): the cost of caller
identities. Sides are measured in interleaved rounds (A/B/C, A/B/C, …) and
each figure is the median of its rounds, so a machine that slows down for a
while weighs on every side alike. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
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

from querybus.cancellation import wait_for
from querybus.cli.common import console
from querybus.client import QueryClient
from querybus.config import BusSettings, ClientSettings, PostgresSettings, TopicNames
from querybus.errors import ConfigurationError, QueryBusError
from querybus.identity import issue_token

__all__ = ["bench", "run_bench"]

_TABLE = "querybus_bench"
_ROWS = 10_000
_QUERY = f"SELECT id, name, price, created FROM {_TABLE} WHERE id = $1"
#: The role requests run as with --identity (NOLOGIN, SELECT on the table only).
_ROLE = "querybus_bench_reader"


def bench(
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 32,
    requests: Annotated[int, typer.Option(help="Requests per side.")] = 5000,
    pool_size: Annotated[
        int, typer.Option(help="Connections, for the adapter and the direct side alike.")
    ] = 10,
    warmup: Annotated[int, typer.Option(help="Unmeasured requests per side first.")] = 500,
    rounds: Annotated[
        int, typer.Option(help="Interleaved rounds; each figure is the median.", min=1)
    ] = 3,
    identity: Annotated[
        bool,
        typer.Option(
            help="Also measure an adapter that checks a token and switches role per request "
            "(creates the role querybus_bench_reader with POSTGRES_ADMIN_USER)."
        ),
    ] = False,
    direct_mode: Annotated[
        bool,
        typer.Option(
            help="Also measure QueryClient in direct mode (QUERYBUS_MODE=direct: the adapter's "
            "handling in the caller's process, on its own pool): the cost of the switch."
        ),
    ] = False,
    workload: Annotated[
        str,
        typer.Option(
            help="point: one point query; tx3: an interactive transaction of three statements "
            "(SELECT … FOR UPDATE, UPDATE, SELECT); batch3: the same three as one batch."
        ),
    ] = "point",
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
                rounds=rounds,
                identity=identity,
                workload=workload,
                direct_mode=direct_mode,
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


async def _prepare_role(admin_dsn: str, login: str) -> None:
    """The role the identity side runs as: granted to the adapters' login,
    allowed to read the benchmark's table and nothing else."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", _ROLE)
        if not exists:
            await conn.execute(f"CREATE ROLE {_ROLE} NOLOGIN")
        await conn.execute(f"GRANT SELECT ON {_TABLE} TO {_ROLE}")
        await conn.execute(f'GRANT {_ROLE} TO "{login}"')
    finally:
        await conn.close()


def _admin_dsn(pg: PostgresSettings) -> str:
    user = os.environ.get("POSTGRES_ADMIN_USER")
    if not user:
        raise ConfigurationError(
            f"--identity creates the role {_ROLE}: set POSTGRES_ADMIN_USER and "
            "POSTGRES_ADMIN_PASSWORD (the local stack's .stack/env does)"
        )
    admin = PostgresSettings(
        host=pg.host,
        port=pg.port,
        database=pg.database,
        user=user,
        password=os.environ.get("POSTGRES_ADMIN_PASSWORD", ""),
    )
    return admin.dsn


async def _start_adapter(
    base: BusSettings, pool_size: int, extra_env: dict[str, str], log: Console | None, what: str
) -> tuple[BusSettings, asyncio.subprocess.Process]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    bus = BusSettings(
        bootstrap_servers=base.bootstrap_servers,
        topics=TopicNames(prefix=prefix),
        request_partitions=base.request_partitions,
        response_partitions=base.response_partitions,
        security=base.security,
    )
    env = {
        **os.environ,
        "QUERYBUS_TOPIC_PREFIX": prefix,
        "QUERYBUS_GROUP_ID": f"{prefix}adapters",
        "QUERYBUS_POOL_SIZE": str(pool_size),
        "QUERYBUS_HTTP_PORT": "0",
        "QUERYBUS_REPLICA_DSNS": "",  # same database as the direct side
        "QUERYBUS_REGISTRY": "",
        "QUERYBUS_JWT_SECRET": "",
        "QUERYBUS_JWKS_FILE": "",
        "QUERYBUS_ROLES": "",
        "QUERYBUS_ANON_ROLE": "",
        "QUERYBUS_POLICY_FILE": "",
        # Every connection may hold a transaction (tx3): the limit is the pool.
        "QUERYBUS_TX_MAX_OPEN": str(pool_size),
        **extra_env,
    }
    if log:
        log.print(f"starting an adapter{what} (pool {pool_size}) on topics {prefix}*")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "serve", "--log-level", "WARNING", "--no-register",
        env=env, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return bus, process


async def _stop_adapter(adapter: asyncio.subprocess.Process) -> None:
    if adapter.returncode is None:
        adapter.terminate()  # SIGTERM: the adapter stops gracefully
        try:
            await wait_for(adapter.wait(), 30)
        except TimeoutError:
            adapter.kill()
            await adapter.wait()


Call = Callable[[int], Awaitable[Any]]

# The three statements of the tx3 and batch3 workloads: a read-then-write
# transaction on one row (the UPDATE changes nothing, so rows stay as set up).
_TX = (
    f"SELECT price FROM {_TABLE} WHERE id = $1 FOR UPDATE",
    f"UPDATE {_TABLE} SET price = price WHERE id = $1",
    f"SELECT name FROM {_TABLE} WHERE id = $1",
)


def _point_query(client: QueryClient) -> Call:
    async def call(key: int) -> Any:
        return await client.fetchrow(_QUERY, key)

    return call


def _point_query_direct(pool: asyncpg.Pool) -> Call:
    async def call(key: int) -> Any:
        return await pool.fetchrow(_QUERY, key)

    return call


def _transaction(client: QueryClient) -> Call:
    async def call(key: int) -> Any:
        async with client.transaction() as tx:
            await tx.fetchval(_TX[0], key)
            await tx.execute(_TX[1], key)
            return await tx.fetchval(_TX[2], key)

    return call


def _transaction_direct(pool: asyncpg.Pool) -> Call:
    async def call(key: int) -> Any:
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchval(_TX[0], key)
            await conn.execute(_TX[1], key)
            return await conn.fetchval(_TX[2], key)

    return call


def _batch(client: QueryClient) -> Call:
    async def call(key: int) -> Any:
        return await client.batch([(sql, (key,)) for sql in _TX])

    return call


#: workload → (the call through querybus, the same work on asyncpg directly)
_WORKLOADS: dict[str, tuple[Callable[[QueryClient], Call], Callable[[asyncpg.Pool], Call]]] = {
    "point": (_point_query, _point_query_direct),
    "tx3": (_transaction, _transaction_direct),
    "batch3": (_batch, _transaction_direct),
}


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}


async def run_bench(
    *,
    concurrency: int,
    requests: int,
    pool_size: int,
    warmup: int,
    external: bool,
    log: Console | None,
    rounds: int = 1,
    identity: bool = False,
    workload: str = "point",
    direct_mode: bool = False,
) -> dict[str, Any]:
    """Run every side in ``rounds`` interleaved rounds; return the medians as
    ``{"bus", "direct", "ratio", "setup", "rounds"}`` (and ``"identity"``,
    ``"ratio_identity"`` with ``identity``)."""
    if workload not in _WORKLOADS:
        raise ConfigurationError(
            f"unknown workload {workload!r}: one of {', '.join(sorted(_WORKLOADS))}"
        )
    pg = PostgresSettings.from_env()
    base = BusSettings.from_env()
    await _prepare_table(pg.dsn)
    secret = secrets.token_hex(32)
    if identity:
        await _prepare_role(_admin_dsn(pg), pg.user)
    adapters: list[asyncio.subprocess.Process] = []
    buses = {"bus": base}
    direct_pool: asyncpg.Pool | None = None
    clients: list[QueryClient] = []
    try:
        if not external:
            buses["bus"], process = await _start_adapter(base, pool_size, {}, log, "")
            adapters.append(process)
        if identity:
            identity_env = {"QUERYBUS_JWT_SECRET": secret, "QUERYBUS_ROLES": _ROLE}
            buses["identity"], process = await _start_adapter(
                base, pool_size, identity_env, log, " that checks identities"
            )
            adapters.append(process)
        direct_pool = await asyncpg.create_pool(pg.dsn, min_size=pool_size, max_size=pool_size)
        calls: dict[str, Callable[[int], Awaitable[Any]]] = {}
        for name, bus in buses.items():
            token = (
                issue_token(secret, role=_ROLE, subject="bench", ttl=24 * 3600)
                if name == "identity"
                else None
            )
            client = QueryClient(bus, timeout=60.0, token=token)
            await client.start()
            clients.append(client)
            await client.fetchval("SELECT 1", timeout=60.0)  # waits until its adapter has joined
            calls[name] = _WORKLOADS[workload][0](client)
        if direct_mode:
            client = QueryClient(ClientSettings(bus=base, mode="direct", dsn=pg.dsn), timeout=60.0)
            await client.start()
            clients.append(client)
            calls["direct_mode"] = _WORKLOADS[workload][0](client)
        calls["direct"] = _WORKLOADS[workload][1](direct_pool)

        for name, call in calls.items():
            if log:
                log.print(f"warming up {name}…")
            await _measure(call, requests=warmup, concurrency=concurrency)
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
        for n in range(rounds):
            if log:
                log.print(
                    f"round {n + 1}/{rounds}: {requests} requests per side at "
                    f"concurrency {concurrency}…"
                )
            for name, call in calls.items():
                measured[name].append(
                    await _measure(call, requests=requests, concurrency=concurrency)
                )
    finally:
        for client in clients:
            await client.stop()
        if direct_pool is not None:
            await direct_pool.close()
        for process in adapters:
            await _stop_adapter(process)
    figures = {name: _median(r) for name, r in measured.items()}
    bus_figures, direct_figures = figures["bus"], figures["direct"]
    report: dict[str, Any] = {
        "bus": bus_figures,
        "direct": direct_figures,
        "ratio": {
            "p50": round(bus_figures["p50_ms"] / direct_figures["p50_ms"], 2),
            "p99": round(bus_figures["p99_ms"] / direct_figures["p99_ms"], 2),
            "qps": round(bus_figures["qps"] / direct_figures["qps"], 3),
        },
        "setup": {
            "workload": workload,
            "query": _QUERY if workload == "point" else list(_TX),
            "requests": requests,
            "concurrency": concurrency,
            "pool_size": pool_size,
            "rounds": rounds,
            "cores": os.cpu_count(),
            "adapter": "external" if external else "subprocess",
        },
        "rounds": measured,
    }
    if direct_mode:
        mode = figures["direct_mode"]
        report["direct_mode"] = mode
        report["ratio_direct_mode"] = {
            "p50": round(mode["p50_ms"] / direct_figures["p50_ms"], 2),
            "p99": round(mode["p99_ms"] / direct_figures["p99_ms"], 2),
            "qps": round(mode["qps"] / direct_figures["qps"], 3),
        }
    if identity:
        with_identity = figures["identity"]
        report["identity"] = with_identity
        report["ratio_identity"] = {
            "p50": round(with_identity["p50_ms"] / bus_figures["p50_ms"], 2),
            "p99": round(with_identity["p99_ms"] / bus_figures["p99_ms"], 2),
            "qps": round(with_identity["qps"] / bus_figures["qps"], 3),
        }
    return report


def _print(report: dict[str, Any]) -> None:
    setup = report["setup"]
    table = Table(
        title=f"{setup['requests']} requests of {setup['workload']}, "
        f"concurrency {setup['concurrency']}, pool {setup['pool_size']}, {setup['cores']} cores, "
        f"median of {setup['rounds']} interleaved rounds"
    )
    for col in ("", "p50 ms", "p95 ms", "p99 ms", "queries/s"):
        table.add_column(col, justify="right")
    labels = {
        "bus": "querybus",
        "identity": "querybus + identity",
        "direct_mode": "QueryClient, direct mode",
        "direct": "asyncpg direct",
    }
    for side, label in labels.items():
        if side not in report:
            continue
        f = report[side]
        table.add_row(
            label,
            f"{f['p50_ms']:.2f}",
            f"{f['p95_ms']:.2f}",
            f"{f['p99_ms']:.2f}",
            f"{f['qps']:.0f}",
        )
    r = report["ratio"]
    table.add_row("bus / direct", f"{r['p50']}x", "", f"{r['p99']}x", f"{r['qps']}x")
    if "ratio_direct_mode" in report:
        r = report["ratio_direct_mode"]
        table.add_row("direct mode / asyncpg", f"{r['p50']}x", "", f"{r['p99']}x", f"{r['qps']}x")
    if "ratio_identity" in report:
        r = report["ratio_identity"]
        table.add_row("identity / bus", f"{r['p50']}x", "", f"{r['p99']}x", f"{r['qps']}x")
    console().print(table)
