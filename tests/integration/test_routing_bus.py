"""Read/write routing through the bus: QueryClient → Kafka → AdapterService with a
RoutingExecutor → PostgreSQL primary + real streaming replica, and back.

The adapter is built by :func:`querybus.cli.serve.build_service`, the
wiring ``querybus serve`` uses: a RoutingExecutor (``QUERYBUS_REPLICA_DSNS``)
sharing the service's Metrics and publishing every decision to
``database.routing.decisions``. Tests that pause or stop a replica use a
private one, so the shared replica is never disturbed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import msgspec
import pytest
from tests.helpers import collect, wait_for
from tests.integration.conftest import Bus, kafka_transport
from tests.integration.routing_helpers import PrivateReplica, caught_up, private_replica_of
from tests.stack import Stack

from querybus.adapter.service import AdapterService
from querybus.cli.serve import build_service
from querybus.client.result import Result
from querybus.config import AdapterSettings
from querybus.errors import UndefinedObjectError
from querybus.routing.decisions import RoutingDecision
from querybus.transport import Transport

MakeTable = Callable[[str], Awaitable[str]]

#: Fast lag sampling and short bans, for the tests that pause or stop a replica.
FAST = {
    "QUERYBUS_LAG_INTERVAL": "0.05",
    "QUERYBUS_MAX_REPLICA_LAG": "0.5",
    "QUERYBUS_BAN_SECONDS": "0.2",
}


class StartAdapter(Protocol):
    async def __call__(
        self,
        replica_dsn: str,
        *,
        http: bool = False,
        env: dict[str, str] | None = None,
        pool_size: int = 8,
    ) -> AdapterService: ...


@pytest.fixture(scope="module")
def private_replica(stack: Stack) -> Iterator[PrivateReplica]:
    with private_replica_of(stack) as replica:
        yield replica


@pytest.fixture
async def routed(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartAdapter]:
    """``await routed(replica_dsn)`` → a started adapter of this test's bus that
    routes over the stack's primary and ``replica_dsn``, wired like ``querybus serve``."""
    started: list[tuple[AdapterService, Transport]] = []

    async def start(
        replica_dsn: str,
        *,
        http: bool = False,
        env: dict[str, str] | None = None,
        pool_size: int = 8,
    ) -> AdapterService:
        # build_executor reads the routing settings from the environment, as `serve` does.
        monkeypatch.setenv("QUERYBUS_REPLICA_DSNS", replica_dsn)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        transport = kafka_transport(bus.stack, bus.settings)
        svc = build_service(
            transport,
            bus.settings,
            bus.stack.pg,
            AdapterSettings(
                group_id=bus.group_id, pool_size=pool_size, http_port=0, shutdown_grace=10.0
            ),
        )
        started.append((svc, transport))
        await svc.start(http=http)
        assert svc.executor.name == "routing"
        return svc

    try:
        yield start
    finally:
        for svc, transport in reversed(started):
            with contextlib.suppress(Exception):
                await svc.stop()
            await transport.close()


def replica_label(stack: Stack) -> str:
    return f"replica:{stack.replica_host}:{stack.replica_port}"


def where(result: Result) -> tuple[str, str]:
    assert result.route is not None, "the reply has no route"
    return result.route.target, result.route.reason


def kind(result: Result) -> str:
    """``"primary"`` or ``"replica"``."""
    return where(result)[0].split(":")[0]


# -- 1. reads on the replica, writes on the primary --------------------------------------------


async def test_reads_on_replica_writes_on_primary(
    stack: Stack, bus: Bus, routed: StartAdapter, make_table: MakeTable
) -> None:
    await routed(stack.replica_dsn)
    client = await bus.client()
    table = await make_table("id serial PRIMARY KEY, note text")

    read = await client.request("SELECT pg_is_in_recovery()")
    assert read.rows[0][0] is True
    assert where(read) == (replica_label(stack), "read")
    assert read.lsn is None

    write = await client.request(
        f"INSERT INTO {table} (note) VALUES ($1) RETURNING id, pg_is_in_recovery()", ["a"]
    )
    assert where(write) == ("primary", "write")
    assert write.rows[0][1] is False
    assert write.lsn
    assert "/" in write.lsn
    new_id = write.rows[0][0]

    # The client now carries the write's LSN: the next read sees the row, wherever it ran.
    mine = await client.request(f"SELECT note FROM {table} WHERE id = $1", [new_id])
    assert [tuple(r) for r in mine.rows] == [("a",)]
    assert where(mine)[1] in ("read_your_writes", "ryw_primary")

    locked = await client.request(f"SELECT id FROM {table} WHERE id = $1 FOR UPDATE", [new_id])
    assert where(locked) == ("primary", "locking")
    assert [tuple(r) for r in locked.rows] == [(new_id,)]

    seq = await client.request(f"SELECT nextval('{table}_id_seq')")
    assert where(seq) == ("primary", "sequence_function")
    assert seq.rows[0][0] > new_id

    forced = await client.request("SELECT pg_is_in_recovery()", route="primary")
    assert forced.rows[0][0] is False
    assert where(forced) == ("primary", "preference_primary")


# -- 2. read-your-writes under load ------------------------------------------------------------


async def test_read_your_writes_through_the_bus_under_load(
    stack: Stack, bus: Bus, routed: StartAdapter, make_table: MakeTable
) -> None:
    await routed(stack.replica_dsn)
    table = await make_table("id bigserial PRIMARY KEY, worker int, n int")
    await caught_up(stack.pg_dsn, stack.replica_dsn)
    writer = await bus.client(timeout=20.0)  # one client for all workers: it carries min_lsn
    plain = await bus.client(timeout=20.0, read_your_writes=False)
    workers, rounds = 10, 100  # 1,000 insert-then-select pairs
    ryw: collections.Counter[tuple[str, str]] = collections.Counter()
    others: collections.Counter[str] = collections.Counter()
    replies: list[Result] = []
    stop = asyncio.Event()

    async def worker(w: int) -> None:
        for n in range(rounds):
            wrote = await writer.request(
                f"INSERT INTO {table} (worker, n) VALUES ($1, $2) RETURNING id", [w, n]
            )
            assert where(wrote) == ("primary", "write")
            assert wrote.lsn
            got = await writer.request(f"SELECT n FROM {table} WHERE id = $1", [wrote.rows[0][0]])
            assert [tuple(r) for r in got.rows] == [(n,)], (
                f"stale read: row {wrote.rows[0][0]} missing, served by {got.route}"
            )
            ryw[kind(got), where(got)[1]] += 1
            replies.extend((wrote, got))

    async def reader() -> None:
        while not stop.is_set():
            out = await plain.request(f"SELECT count(*) FROM {table}")
            others[kind(out)] += 1
            replies.append(out)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(w) for w in range(workers)))
    finally:
        stop.set()
        await asyncio.gather(*readers)
    elapsed = time.perf_counter() - started

    assert sum(ryw.values()) == workers * rounds
    assert {reason for _, reason in ryw} <= {"read_your_writes", "ryw_primary"}, ryw
    # Reads without an LSN keep using the replica meanwhile.
    assert others["replica"] >= 0.8 * sum(others.values()), others
    # Every reply says where it ran and how long routing took.
    for r in replies:
        assert r.route is not None
        assert r.route.complexity
        assert r.timings.route > 0
    by_replica = sum(n for (k, _), n in ryw.items() if k == "replica")
    print(
        f"\nread-your-writes through the bus: {by_replica} of {workers * rounds} reads served "
        f"by the replica, {workers * rounds - by_replica} by the primary ({dict(ryw)}); "
        f"reads without LSN: {dict(others)}; {elapsed:.1f} s"
    )


async def test_read_your_writes_with_a_busy_replica_pool_falls_back_to_primary(
    stack: Stack, bus: Bus, routed: StartAdapter, make_table: MakeTable
) -> None:
    # Two connections per server and a burst of reads that all wait for the
    # replica to replay the client's last write: most find no free replica
    # connection within the wait budget. They must go to the primary
    # (ryw_primary), not fail with "deadline passed" (57014) as they once did.
    await routed(stack.replica_dsn, pool_size=2)
    table = await make_table("id int PRIMARY KEY, n int")
    await caught_up(stack.pg_dsn, stack.replica_dsn)
    client = await bus.client(timeout=20.0)
    served: collections.Counter[tuple[str, str]] = collections.Counter()
    for n in range(5):
        await client.request(f"INSERT INTO {table} VALUES ($1, $1)", [n])
        burst = await asyncio.gather(
            *(client.request(f"SELECT n FROM {table} WHERE id = $1", [n]) for _ in range(8))
        )
        for got in burst:
            assert [tuple(r) for r in got.rows] == [(n,)]
            served[kind(got), where(got)[1]] += 1
    assert {reason for _, reason in served} <= {"read_your_writes", "ryw_primary"}, served
    assert served["primary", "ryw_primary"] > 0, served


# -- 3. replica lag ----------------------------------------------------------------------------


async def test_replica_lag_moves_reads_to_primary_and_back(
    stack: Stack,
    bus: Bus,
    routed: StartAdapter,
    make_table: MakeTable,
    private_replica: PrivateReplica,
) -> None:
    table = await make_table("id serial PRIMARY KEY, note text")
    await caught_up(stack.pg_dsn, private_replica.dsn)
    await routed(private_replica.dsn, env=FAST)
    reads = await bus.client(read_your_writes=False)
    writes = await bus.client()
    label = f"replica:127.0.0.1:{private_replica.port}"

    async def probe() -> Result:
        return await reads.request(f"SELECT count(*) FROM {table}")

    assert where(await probe()) == (label, "read")
    control = await asyncpg.connect(private_replica.admin_dsn)
    try:
        await control.execute("SELECT pg_wal_replay_pause()")
        written = 0

        async def moved_to_primary() -> bool:
            nonlocal written
            w = await writes.request(f"INSERT INTO {table} (note) VALUES ('x')")
            assert where(w) == ("primary", "write")
            written += 1
            out = await probe()
            # Wherever it ran, a read on the paused replica would be behind.
            if where(out) == ("primary", "replica_lag"):
                assert out.rows[0][0] == written
                return True
            return False

        await wait_for(moved_to_primary, 20.0, interval=0.05, message="reads moving to the primary")
        assert await control.fetchval("SELECT pg_is_wal_replay_paused()")
    finally:
        await control.execute("SELECT pg_wal_replay_resume()")
        await control.close()

    async def back_on_replica() -> bool:
        return where(await probe())[0] == label

    await wait_for(back_on_replica, 20.0, interval=0.05, message="reads returning to the replica")


# -- 4. replica stopped mid-load ---------------------------------------------------------------


async def test_replica_stopped_mid_load(
    stack: Stack,
    bus: Bus,
    routed: StartAdapter,
    make_table: MakeTable,
    pg: asyncpg.Connection,
    private_replica: PrivateReplica,
) -> None:
    table = await make_table("id int PRIMARY KEY")
    await pg.execute(f"INSERT INTO {table} SELECT generate_series(1, 10)")
    await caught_up(stack.pg_dsn, private_replica.dsn)
    await routed(private_replica.dsn, env=FAST)
    client = await bus.client(timeout=15.0, read_your_writes=False)
    served: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            try:
                out = await client.request(f"SELECT count(*) FROM {table}")
            except Exception as exc:  # counted: the test asserts there are none
                failures.append(exc)
                continue
            assert out.rows[0][0] == 10
            served[kind(out)] += 1
            reasons[where(out)[1]] += 1

    def at_least(target: str, n: int) -> Callable[[], bool]:
        return lambda: served[target] >= n

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    try:
        await wait_for(at_least("replica", 30), 20.0, message="load on the replica")
        await asyncio.to_thread(private_replica.stop)
        before = served["primary"]
        await wait_for(at_least("primary", before + 30), 20.0, message="reads on the primary")
        await asyncio.to_thread(private_replica.start)
        after = served["replica"]
        await wait_for(at_least("replica", after + 30), 30.0, message="the replica used again")
    finally:
        stop.set()
        await asyncio.gather(*readers)
    assert failures == []
    assert reasons["no_healthy_replica"] > 0, reasons
    print(f"\nreplica stopped mid-load: {dict(served)}, reasons {dict(reasons)}")


# -- 5. observability --------------------------------------------------------------------------

_ROUTE_LINE = re.compile(r"^querybus_route_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def route_counts(text: str) -> dict[tuple[str, str], float]:
    """``{(target, reason): count}`` from the ``querybus_route_total`` lines."""
    counts = {}
    for m in _ROUTE_LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        counts[labels["target"], labels["reason"]] = float(m["value"])
    return counts


async def test_metrics_decisions_topic_and_reply_fields(
    stack: Stack, bus: Bus, routed: StartAdapter, make_table: MakeTable
) -> None:
    svc = await routed(stack.replica_dsn, http=True)
    client = await bus.client()
    table = await make_table("id int PRIMARY KEY, note text")
    await caught_up(stack.pg_dsn, stack.replica_dsn)

    results = [
        await client.request(f"SELECT count(*) FROM {table} WHERE id > $1", [i]) for i in range(3)
    ]
    results.append(await client.request(f"INSERT INTO {table} VALUES (1, 'x')"))
    results.append(
        await client.request(
            f"SELECT t.id, count(*) OVER () FROM {table} t JOIN {table} u USING (id) ORDER BY 1"
        )
    )
    with pytest.raises(UndefinedObjectError) as failed:
        await client.request("SELECT * FROM no_such_table_routing_bus")
    failed_id: str = failed.value.correlation_id  # type: ignore[attr-defined]

    assert [kind(r) for r in results[:3]] == ["replica"] * 3
    for r in results:
        assert r.route is not None
        assert r.route.target
        assert r.route.reason
        assert r.route.complexity
        assert r.timings.route > 0

    # /metrics counts decisions by target and reason.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}", timeout=10) as http:
        text = (await http.get("/metrics")).text
    counts = route_counts(text)
    assert counts.get((replica_label(stack), "read"), 0) >= 3, counts
    assert counts.get(("primary", "write")) == 1, counts
    assert sum(counts.values()) == len(results) + 1, counts
    assert "querybus_route_seconds_count" in text

    # Every decision is published to the test's decisions topic.
    topic = bus.settings.topics.routing_decisions
    assert topic == bus.settings.topics.prefix + "database.routing.decisions"
    transport = await bus.transport()
    reader = transport.partition_reader(topic, [0], start_at="beginning")
    await reader.start()
    try:
        records = await collect(reader, len(results) + 1)
    finally:
        await reader.stop()
    raw = [json.loads(rec.value or b"") for rec in records]
    for doc in raw:  # plain JSON, readable without querybus
        assert {"request_id", "fingerprint", "target", "reason", "classified"} <= set(doc), doc
    # Fields at their default (ok=True, attempts=1, no lag on the primary) are
    # omitted from the JSON: decode with the record type to see them.
    decoded = [msgspec.json.decode(rec.value or b"", type=RoutingDecision) for rec in records]
    decisions = {d.request_id: d for d in decoded}
    assert len(decisions) == len(results) + 1
    for r in results:
        d = decisions[r.correlation_id]
        assert r.route is not None
        assert (d.target, d.reason) == (r.route.target, r.route.reason)
        assert d.fingerprint
        assert d.ok
        assert d.error is None
        assert f"{d.complexity_class}:{d.complexity_score}" == r.route.complexity
        assert d.classified in ("primary", "replica")
        assert d.attempts >= 1
        assert d.timestamp > 0
    read, write = decisions[results[0].correlation_id], decisions[results[3].correlation_id]
    assert read.lag_seconds is not None
    assert read.lag_bytes is not None
    assert (write.target, write.reason) == ("primary", "write")
    assert write.classified == "primary"
    assert write.lag_seconds is None
    # The same statement with other constants has the same fingerprint.
    assert read.fingerprint == decisions[results[1].correlation_id].fingerprint
    assert decisions[results[4].correlation_id].complexity_class != "simple"
    bad = decisions[failed_id]
    assert (bad.ok, bad.error) == (False, "42P01")


# -- 6. the CLI --------------------------------------------------------------------------------


def test_route_explain_json_cli() -> None:
    exe = Path(sys.executable).with_name("querybus")
    proc = subprocess.run(
        [str(exe), "route", "explain", "SELECT * FROM t FOR UPDATE", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    got: dict[str, Any] = json.loads(lines[0])
    assert got["target"] == "primary"
    assert got["reason"] == "locking"
    assert set(got["complexity"]) >= {"score", "class"}
