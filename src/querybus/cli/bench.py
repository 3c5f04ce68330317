"""``querybus bench``: the same work through querybus and directly through
asyncpg, on the same database, in one run.

The adapter runs as a separate process (as in production: the caller does not
share its CPU with the adapter), on its own topic prefix and group, with a
pool as large as the direct side's. With ``--identity`` a second adapter
checks a signed token on every request and runs it as a database role
(``SET LOCAL ROLE`` and the claims, in a transaction): the cost of caller
identities.

For each concurrency (``--concurrency 1,16,64``) every side is warmed up, then
the sides are measured in interleaved rounds (A/B/C, A/B/C, …) and each figure
is the median of its rounds, so a machine that slows down for a while weighs
on every side alike. Around every measured phase the CPU time of each process
doing the work is read (:mod:`querybus.cli.proc_cpu`): the caller, the
adapter, the Kafka broker and PostgreSQL, per request. Figures are printed,
never asserted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from querybus.cancellation import wait_for
from querybus.cli import proc_cpu
from querybus.cli.common import console
from querybus.client import QueryClient
from querybus.config import BusSettings, ClientSettings, PostgresSettings, TopicNames
from querybus.errors import ConfigurationError, QueryBusError
from querybus.identity import issue_token
from querybus.transport import connect

__all__ = ["bench", "parse_concurrency", "run_bench"]

_TABLE = "querybus_bench"
_ROWS = 10_000
_QUERY = f"SELECT id, name, price, created FROM {_TABLE} WHERE id = $1"
#: The role requests run as with --identity (NOLOGIN, SELECT on the table only).
_ROLE = "querybus_bench_reader"
#: The local stack's broker (scripts/services.sh), for when its open files
#: cannot be read to find the process listening on its port.
_STACK_KAFKA_PID = Path(".stack/kafka/kafka.pid")
_STACK_KAFKA_PROPERTIES = Path(".stack/kafka/server.properties")


def parse_concurrency(text: str) -> list[int]:
    """``"1,16,64"`` → ``[1, 16, 64]`` (in the order given, repeats dropped).

    Raises:
        typer.BadParameter: an item is not a whole number of at least 1, or
            there is none.
    """
    levels: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isascii() or not item.isdigit() or int(item) < 1:
            raise typer.BadParameter(
                f"{text!r}: use whole numbers of at least 1, e.g. 1,16,64",
                param_hint="--concurrency",
            )
        if int(item) not in levels:
            levels.append(int(item))
    return levels


def bench(
    concurrency: Annotated[
        str,
        typer.Option(
            help="Requests in flight at once; a comma list (1,16,64) measures each "
            "and prints one table."
        ),
    ] = "32",
    requests: Annotated[int, typer.Option(help="Requests per side in each round.", min=2)] = 5000,
    pool_size: Annotated[
        int, typer.Option(help="Connections, for the adapter and the direct side alike.")
    ] = 10,
    warmup: Annotated[
        int, typer.Option(help="Unmeasured requests per side at each concurrency first.", min=0)
    ] = 500,
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
            help="Use adapters already serving the configured topics instead of starting one "
            "(their CPU is then not measured)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
) -> None:
    """Latency, throughput and CPU per request through querybus vs. directly through asyncpg."""
    levels = parse_concurrency(concurrency)
    try:
        report = asyncio.run(
            run_bench(
                concurrency=levels,
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
    base: BusSettings,
    pool_size: int,
    extra_env: dict[str, str],
    log: Console | None,
    what: str,
    topic_prefix: str,
) -> tuple[BusSettings, asyncio.subprocess.Process]:
    prefix = f"{topic_prefix}{uuid.uuid4().hex[:8]}."
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


async def _delete_topics(base: BusSettings, prefixes: list[str], log: Console | None) -> None:
    """Delete the topics the bench's own adapters made (every run makes new
    ones; a long-lived broker would keep them all). A failure is reported,
    never raised: the figures are already measured."""
    transport = connect(
        base.bootstrap_servers,
        client_id="querybus-bench",
        security=base.security,
        request_timeout=15.0,
    )
    try:
        for prefix in prefixes:
            await transport.delete_topics(await transport.list_topics(prefix))
    except QueryBusError as exc:
        if log:
            log.print(
                f"[yellow]could not delete the topics {escape(', '.join(prefixes))}*:[/yellow] "
                f"{escape(str(exc))}"
            )
    finally:
        await transport.close()


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


# -- CPU per process ----------------------------------------------------------

#: How long the processes' CPU is read with no request running, once.
_IDLE_SECONDS = 1.0
#: The processes whose CPU per request is reported, besides the caller.
_SERVICES = ("adapter", "broker", "postgres")
#: The processes that do each side's work. The others keep running during a
#: side's phase (an idle adapter and the broker answer polls), but that CPU
#: is not the side's and is not reported.
_INVOLVED: dict[str, tuple[str, ...]] = {
    "bus": ("caller", "adapter", "broker", "postgres"),
    "identity": ("caller", "adapter", "broker", "postgres"),
    "direct_mode": ("caller", "postgres"),
    "direct": ("caller", "postgres"),
}


def _loopback_port(address: str) -> int | None:
    """The port of ``host:port`` when the host is this machine's loopback,
    else None: a service elsewhere has no process here to read."""
    host, _, port = address.strip().rpartition("://")[2].rpartition(":")
    host = host.strip("[]")
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None
    if not local or not port.isdigit():
        return None
    return int(port)


def _broker_processes(bootstrap_servers: str) -> proc_cpu.ProcessSet | None:
    """The Kafka broker of the first bootstrap server, when it runs here."""
    port = _loopback_port(bootstrap_servers.split(",")[0])
    if port is None or not proc_cpu.supported():
        return None
    roots = proc_cpu.roots_of(proc_cpu.listening_pids(port))
    if not roots:
        # Another user's broker: its open files cannot be read. The local
        # stack's pid file names it, if that stack's broker is on this port.
        pid = proc_cpu.pid_from_file(_STACK_KAFKA_PID, "kafka.Kafka")
        try:
            ours = f":{port}" in _STACK_KAFKA_PROPERTIES.read_text(encoding="utf-8")
        except OSError:
            ours = False
        roots = (pid,) if pid is not None and ours else ()
    return proc_cpu.ProcessSet(roots) if roots else None


async def _postgres_processes(
    pg: PostgresSettings, pool: asyncpg.Pool
) -> proc_cpu.ProcessSet | None:
    """The postmaster of the primary and every process below it (backends,
    WAL writer and sender, checkpointer, autovacuum), when it runs here."""
    port = _loopback_port(f"{pg.host}:{pg.port}")
    if port is None or not proc_cpu.supported():
        return None
    roots = proc_cpu.roots_of(proc_cpu.listening_pids(port))
    if not roots:
        # The postmaster runs as another user: its open files cannot be read,
        # but a backend's parent is the postmaster.
        backend = await pool.fetchval("SELECT pg_backend_pid()")
        parent = proc_cpu.parent_pid(backend)
        if proc_cpu.command_name(backend) == "postgres" and parent is not None:
            roots = (parent,)
    return proc_cpu.ProcessSet(roots, descendants=True) if roots else None


def _per_request(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else round(seconds * 1e6 / requests, 1)


def _read(processes: proc_cpu.ProcessSet | None) -> proc_cpu.CpuReading | None:
    return None if processes is None else proc_cpu.read_cpu(processes)


async def _phase(
    call: Call,
    *,
    requests: int,
    concurrency: int,
    processes: dict[str, proc_cpu.ProcessSet | None],
) -> dict[str, Any]:
    """One measured phase of one side: its latency figures and ``cpu_us``, the
    CPU per request of the caller and of each of ``processes`` (None: not
    involved in this side, or not measurable)."""
    # The other processes are read outside the caller's window, so that
    # scanning /proc is not billed to the caller.
    before = {name: _read(p) for name, p in processes.items()}
    # The caller's own CPU (all its threads), exact rather than in clock ticks.
    caller_started = time.process_time()
    figures: dict[str, Any] = dict(await _measure(call, requests=requests, concurrency=concurrency))
    caller_seconds = time.process_time() - caller_started
    after = {name: _read(p) for name, p in processes.items()}
    cpu: dict[str, float | None] = {"caller": _per_request(caller_seconds, requests)}
    for name in _SERVICES:
        seconds = proc_cpu.cpu_seconds(before.get(name), after.get(name))
        cpu[name] = _per_request(seconds, requests)
    measured = [v for v in cpu.values() if v is not None]
    cpu["total"] = round(sum(measured), 1)
    figures["cpu_us"] = cpu
    return figures


async def _idle_cpu(
    processes: dict[str, proc_cpu.ProcessSet | None], seconds: float
) -> dict[str, float | None]:
    """Milliseconds of CPU per second each process spends while no request
    runs (everything started): the background in every CPU figure, whoever
    causes it (idle polls, other users of a shared broker or database)."""
    before = {name: _read(p) for name, p in processes.items()}
    caller_started = time.process_time()
    wall_started = time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall_started
    idle: dict[str, float | None] = {
        "caller": round((time.process_time() - caller_started) * 1000 / wall, 1)
    }
    for name, p in processes.items():
        spent = proc_cpu.cpu_seconds(before[name], _read(p))
        idle[name] = None if spent is None else round(spent * 1000 / wall, 1)
    return idle


# -- figures of the rounds ------------------------------------------------------

_LATENCY = ("p50_ms", "p95_ms", "p99_ms", "qps")


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure's median over the rounds (a CPU figure over the rounds
    that measured it)."""
    figures: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in rounds), 3) for k in _LATENCY
    }
    cpu: dict[str, float | None] = {}
    for name in rounds[0]["cpu_us"]:
        values = [r["cpu_us"][name] for r in rounds if r["cpu_us"][name] is not None]
        cpu[name] = round(statistics.median(values), 1) if values else None
    figures["cpu_us"] = cpu
    return figures


def _quotient(a: float | None, b: float | None, digits: int) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, digits)


def _ratio(side: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """``side`` against ``base``: latency and CPU as multiples, and the p50
    difference in milliseconds."""
    return {
        "p50": _quotient(side["p50_ms"], base["p50_ms"], 2),
        "p99": _quotient(side["p99_ms"], base["p99_ms"], 2),
        "qps": _quotient(side["qps"], base["qps"], 3),
        "p50_diff_ms": round(side["p50_ms"] - base["p50_ms"], 3),
        "caller_cpu": _quotient(side["cpu_us"]["caller"], base["cpu_us"]["caller"], 2),
        "total_cpu": _quotient(side["cpu_us"]["total"], base["cpu_us"]["total"], 2),
    }


@dataclass(frozen=True, slots=True)
class _Target:
    """One of issue 11's targets for querybus against asyncpg direct."""

    #: the key of the bus / direct ratio it is about
    key: str
    limit: float
    #: True: the figure must be at least ``limit``; False: at most
    at_least: bool
    text: str


#: Issue 11's targets, by concurrency: shown next to the figures, never asserted.
_TARGETS: dict[int, tuple[_Target, ...]] = {
    1: (_Target("p50_diff_ms", 1.5, False, "p50 ≤ direct + 1.5 ms"),),
    16: (
        _Target("qps", 0.5, True, "throughput ≥ 0.5x direct"),
        _Target("p50", 3.0, False, "p50 ≤ 3x direct"),
    ),
    64: (
        _Target("qps", 0.65, True, "throughput ≥ 0.65x direct"),
        _Target("p50", 2.0, False, "p50 ≤ 2x direct"),
    ),
}
#: At every concurrency: the caller's own CPU per request.
_CALLER_CPU_TARGET = _Target("caller_cpu", 1.5, False, "caller CPU ≤ 1.5x direct")


def _targets(concurrency: int, ratio: dict[str, float | None]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for target in (*_TARGETS.get(concurrency, ()), _CALLER_CPU_TARGET):
        value = ratio[target.key]
        met = None
        if value is not None:
            met = value >= target.limit if target.at_least else value <= target.limit
        checks.append({"target": target.text, "key": target.key, "value": value, "met": met})
    return checks


async def _run_level(
    calls: dict[str, Call],
    processes: dict[str, dict[str, proc_cpu.ProcessSet | None]],
    *,
    concurrency: int,
    requests: int,
    warmup: int,
    rounds: int,
    log: Console | None,
) -> dict[str, Any]:
    """Warm every side up at ``concurrency``, then measure them in
    ``rounds`` interleaved rounds; return the entry of ``runs``."""
    for name, call in calls.items():
        if warmup:
            if log:
                log.print(f"concurrency {concurrency}: warming up {name}…")
            await _measure(call, requests=warmup, concurrency=concurrency)
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
    for n in range(rounds):
        if log:
            log.print(
                f"concurrency {concurrency}, round {n + 1}/{rounds}: {requests} requests per side…"
            )
        for name, call in calls.items():
            measured[name].append(
                await _phase(
                    call, requests=requests, concurrency=concurrency, processes=processes[name]
                )
            )
    sides = {name: _median(r) for name, r in measured.items()}
    run: dict[str, Any] = {
        "concurrency": concurrency,
        "sides": sides,
        "ratio": _ratio(sides["bus"], sides["direct"]),
    }
    if "direct_mode" in sides:
        run["ratio_direct_mode"] = _ratio(sides["direct_mode"], sides["direct"])
    if "identity" in sides:
        run["ratio_identity"] = _ratio(sides["identity"], sides["bus"])
    run["targets"] = _targets(concurrency, run["ratio"])
    run["rounds"] = measured
    return run


async def run_bench(
    *,
    concurrency: int | Sequence[int],
    requests: int,
    pool_size: int,
    warmup: int,
    external: bool,
    log: Console | None,
    rounds: int = 1,
    identity: bool = False,
    workload: str = "point",
    direct_mode: bool = False,
    topic_prefix: str = "bench-",
) -> dict[str, Any]:
    """For each concurrency, run every side in ``rounds`` interleaved rounds
    after a warm-up.

    Returns ``{"bus", "direct", "ratio", "setup", "rounds", "runs"}`` (and
    ``"identity"``, ``"ratio_identity"`` with ``identity``, ``"direct_mode"``,
    ``"ratio_direct_mode"`` with ``direct_mode``): ``runs`` has one entry per
    concurrency (medians of every side with CPU per process, ratios, targets
    and each round's figures); the keys beside it are those of the first
    concurrency, as before there was a list. The adapters' topics are named
    ``<topic_prefix><8 hex digits>.…``.

    Raises:
        ConfigurationError: an unknown workload, no concurrency or one below
            1, fewer than 2 requests, or ``identity`` without
            ``POSTGRES_ADMIN_USER``.
        QueryBusError: a request failed (through querybus) or timed out.
    """
    if workload not in _WORKLOADS:
        raise ConfigurationError(
            f"unknown workload {workload!r}: one of {', '.join(sorted(_WORKLOADS))}"
        )
    levels = [concurrency] if isinstance(concurrency, int) else list(concurrency)
    if not levels or min(levels) < 1:
        raise ConfigurationError(f"concurrency {levels}: give at least one, each at least 1")
    if requests < 2:
        raise ConfigurationError("requests: at least 2 per side (for percentiles)")
    pg = PostgresSettings.from_env()
    base = BusSettings.from_env()
    await _prepare_table(pg.dsn)
    secret = secrets.token_hex(32)
    if identity:
        await _prepare_role(_admin_dsn(pg), pg.user)
    adapters: dict[str, asyncio.subprocess.Process] = {}
    buses = {"bus": base}
    direct_pool: asyncpg.Pool | None = None
    clients: list[QueryClient] = []
    runs: list[dict[str, Any]] = []
    try:
        if not external:
            buses["bus"], adapters["bus"] = await _start_adapter(
                base, pool_size, {}, log, "", topic_prefix
            )
        if identity:
            identity_env = {"QUERYBUS_JWT_SECRET": secret, "QUERYBUS_ROLES": _ROLE}
            buses["identity"], adapters["identity"] = await _start_adapter(
                base, pool_size, identity_env, log, " that checks identities", topic_prefix
            )
        direct_pool = await asyncpg.create_pool(pg.dsn, min_size=pool_size, max_size=pool_size)
        calls: dict[str, Call] = {}
        for name, bus in buses.items():
            token = (
                issue_token(secret, role=_ROLE, subject="bench", ttl=24 * 3600)
                if name == "identity"
                else None
            )
            client = QueryClient(bus, timeout=60.0, token=token)
            await client.start()
            clients.append(client)
            # Answered only once the adapter has joined its group and both
            # sides have the topics' metadata: no measured round pays for
            # topic creation or the group join.
            await client.fetchval("SELECT 1", timeout=60.0)
            calls[name] = _WORKLOADS[workload][0](client)
        if direct_mode:
            client = QueryClient(ClientSettings(bus=base, mode="direct", dsn=pg.dsn), timeout=60.0)
            await client.start()
            clients.append(client)
            await client.fetchval("SELECT 1", timeout=60.0)  # its pool is up
            calls["direct_mode"] = _WORKLOADS[workload][0](client)
        calls["direct"] = _WORKLOADS[workload][1](direct_pool)

        broker = _broker_processes(base.bootstrap_servers)
        postgres = await _postgres_processes(pg, direct_pool)
        adapter_processes = {
            name: proc_cpu.ProcessSet((process.pid,), descendants=True)
            if proc_cpu.supported()
            else None
            for name, process in adapters.items()
        }
        processes: dict[str, dict[str, proc_cpu.ProcessSet | None]] = {}
        for name in calls:
            candidates = {
                "adapter": adapter_processes.get(name),
                "broker": broker,
                "postgres": postgres,
            }
            processes[name] = {k: v for k, v in candidates.items() if k in _INVOLVED[name]}
        if log:
            log.print(f"reading the idle CPU for {_IDLE_SECONDS:g} s…")
        idle = await _idle_cpu(
            {
                **{
                    "adapter" if name == "bus" else f"adapter_{name}": p
                    for name, p in adapter_processes.items()
                },
                "broker": broker,
                "postgres": postgres,
            },
            _IDLE_SECONDS,
        )
        for level in levels:
            runs.append(
                await _run_level(
                    calls,
                    processes,
                    concurrency=level,
                    requests=requests,
                    warmup=warmup,
                    rounds=rounds,
                    log=log,
                )
            )
    finally:
        for client in clients:
            await client.stop()
        if direct_pool is not None:
            await direct_pool.close()
        for process in adapters.values():
            await _stop_adapter(process)
        if adapters:
            await _delete_topics(base, [buses[name].topics.prefix for name in adapters], log)
    first = runs[0]
    report: dict[str, Any] = {
        "bus": first["sides"]["bus"],
        "direct": first["sides"]["direct"],
        "ratio": first["ratio"],
        "setup": {
            "workload": workload,
            "query": _QUERY if workload == "point" else list(_TX),
            "requests": requests,
            "warmup": warmup,
            "concurrency": levels,
            "pool_size": pool_size,
            "rounds": rounds,
            "cores": os.cpu_count(),
            "adapter": "external" if external else "subprocess",
            "identity": identity,
            "direct_mode": direct_mode,
            "cpu": {
                "unit": "µs of CPU per request",
                "source": "/proc" if proc_cpu.supported() else None,
                "idle_ms_per_s": idle,
                "pids": {
                    "caller": [os.getpid()],
                    **{
                        f"adapter_{name}" if name != "bus" else "adapter": [process.pid]
                        for name, process in adapters.items()
                    },
                    "broker": list(broker.roots) if broker else None,
                    "postgres": list(postgres.roots) if postgres else None,
                },
            },
        },
        "rounds": first["rounds"],
        "runs": runs,
    }
    if direct_mode:
        report["direct_mode"] = first["sides"]["direct_mode"]
        report["ratio_direct_mode"] = first["ratio_direct_mode"]
    if identity:
        report["identity"] = first["sides"]["identity"]
        report["ratio_identity"] = first["ratio_identity"]
    return report


# -- the table -----------------------------------------------------------------

_LABELS = {
    "bus": "querybus",
    "identity": "querybus + identity",
    "direct_mode": "QueryClient, direct mode",
    "direct": "asyncpg direct",
}
_RATIO_LABELS = {
    "ratio": "bus / direct",
    "ratio_direct_mode": "direct mode / asyncpg",
    "ratio_identity": "identity / bus",
}


def _command(setup: dict[str, Any]) -> str:
    """The command line that makes this run."""
    words = [
        "querybus bench",
        f"--workload {setup['workload']}",
        f"--concurrency {','.join(str(c) for c in setup['concurrency'])}",
        f"--requests {setup['requests']}",
        f"--warmup {setup['warmup']}",
        f"--rounds {setup['rounds']}",
        f"--pool-size {setup['pool_size']}",
    ]
    words += [
        flag
        for flag, on in (
            ("--identity", setup["identity"]),
            ("--direct-mode", setup["direct_mode"]),
            ("--external", setup["adapter"] == "external"),
        )
        if on
    ]
    return " ".join(words)


def _cpu_cell(side: str, process: str, cpu: dict[str, float | None]) -> str:
    if process != "total" and process not in _INVOLVED[side]:
        return ""  # not this side's work
    value = cpu[process]
    if value is None:
        return "—"
    if process == "total" and any(cpu[p] is None for p in _INVOLVED[side]):
        return f"≥{value:.0f}"  # a process doing this side's work was not measured
    return f"{value:.0f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"x{value}"


def _print(report: dict[str, Any]) -> None:
    setup = report["setup"]
    out = console()
    out.print(escape(_command(setup)))
    out.print(
        f"{setup['cores']} cores; each figure is the median of {setup['rounds']} interleaved "
        f"rounds of {setup['requests']} requests per side, after {setup['warmup']} unmeasured; "
        "CPU columns: µs of CPU per request of each process doing the side's work "
        "(— not measured, ≥ a total without it)"
    )
    table = Table()
    table.add_column("conc.", justify="right")
    table.add_column("side")
    for col in ("p50 ms", "p95 ms", "p99 ms", "q/s"):
        table.add_column(col, justify="right")
    for col in ("caller", "adapter", "broker", "postgres", "total"):
        table.add_column(f"{col} µs", justify="right")
    for n, run in enumerate(report["runs"]):
        if n:
            table.add_section()
        for side, label in _LABELS.items():
            if side not in run["sides"]:
                continue
            f = run["sides"][side]
            cpu = f["cpu_us"]
            table.add_row(
                str(run["concurrency"]),
                label,
                f"{f['p50_ms']:.2f}",
                f"{f['p95_ms']:.2f}",
                f"{f['p99_ms']:.2f}",
                f"{f['qps']:.0f}",
                *(
                    _cpu_cell(side, process, cpu)
                    for process in ("caller", "adapter", "broker", "postgres", "total")
                ),
            )
        for key, label in _RATIO_LABELS.items():
            if key not in run:
                continue
            r = run[key]
            table.add_row(
                str(run["concurrency"]),
                label,
                f"{_times(r['p50'])} ({r['p50_diff_ms']:+.2f} ms)",
                "",
                _times(r["p99"]),
                _times(r["qps"]),
                _times(r["caller_cpu"]),
                "",
                "",
                "",
                _times(r["total_cpu"]),
            )
    idle = setup.get("cpu", {}).get("idle_ms_per_s")
    if idle:
        shown = ", ".join(
            f"{name} {'—' if value is None else f'{value:.0f}'}" for name, value in idle.items()
        )
        out.print(
            f"Idle before measuring, in ms of CPU per second (part of every CPU figure below, "
            f"whoever causes it): {shown}"
        )
    out.print(table)
    out.print("Targets of issue 11, querybus against asyncpg direct (shown, not asserted):")
    for run in report["runs"]:
        checks = "; ".join(_target_text(check) for check in run["targets"])
        out.print(f"  concurrency {run['concurrency']}: {escape(checks)}")


def _target_text(check: dict[str, Any]) -> str:
    value = check["value"]
    if value is None:
        shown = "—"
    elif check["key"] == "p50_diff_ms":
        shown = f"{value:+.2f} ms"
    else:
        shown = f"x{value}"
    verdict = {True: " met", False: " missed", None: ""}[check["met"]]
    return f"{check['target']}: {shown}{verdict}"
