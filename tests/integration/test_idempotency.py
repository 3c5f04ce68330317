"""The durable idempotency store (``querybus.database.idempotency``) on real
PostgreSQL, through the executors and through real adapters on Kafka.

Every test uses its own idempotency table (dropped afterwards) and fresh keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from tests.helpers import wait_for
from tests.integration.conftest import Bus, kafka_transport
from tests.stack import Stack, UniqueNames

from querybus.adapter.service import AdapterService
from querybus.config import AdapterSettings
from querybus.database.executor import PostgresExecutor
from querybus.database.idempotency import IdempotencySettings
from querybus.errors import (
    IntegrityConstraintViolationError,
    QueryCanceledError,
    RequestRejectedError,
)
from querybus.execution import Deadline, Job
from querybus.protocol import QueryRequest, ReplyAddress, encode_row
from querybus.routing.executor import RoutingExecutor, RoutingSettings

MakeTable = Callable[[str], Awaitable[str]]
MakeExecutor = Callable[..., Awaitable[PostgresExecutor]]


def req(
    sql: str, key: str | None, *, many: bool = False, timeout: float = 20.0, **kw: Any
) -> QueryRequest:
    return QueryRequest(
        id=uuid.uuid4().hex,
        client="idem-test",
        sql=sql,
        many=many,
        idem=key,
        reply_to=ReplyAddress("unused", 0),
        deadline=time.time() + timeout,
        **kw,
    )


async def count(pg: asyncpg.Connection, table: str, where: str = "true", *args: Any) -> int:
    return int(await pg.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))


@pytest.fixture
async def idem_table(pg: asyncpg.Connection, unique: UniqueNames) -> AsyncIterator[str]:
    """A fresh idempotency table name (the executor creates it; dropped afterwards)."""
    name = unique.ident("idem")
    try:
        yield name
    finally:
        await pg.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
async def make_executor(stack: Stack, idem_table: str) -> AsyncIterator[MakeExecutor]:
    """``await make_executor(pool_size=2, ttl=…)`` → a started PostgresExecutor
    using this test's idempotency table (stopped afterwards)."""
    started: list[PostgresExecutor] = []

    async def make(*, pool_size: int = 2, **settings: Any) -> PostgresExecutor:
        ex = PostgresExecutor(
            stack.pg_dsn,
            pool_size=pool_size,
            idempotency=IdempotencySettings(table=idem_table, **settings),
        )
        await ex.start()
        started.append(ex)
        return ex

    try:
        yield make
    finally:
        for ex in started:
            await ex.stop()


# -- through the bus: a duplicate on another adapter --------------------------------------------


@contextlib.asynccontextmanager
async def adapter(bus: Bus, idem_table: str) -> AsyncIterator[AdapterService]:
    """A started adapter of ``bus``'s group with its own in-memory cache,
    whose executor keeps keys in ``idem_table``."""
    transport = kafka_transport(bus.stack, bus.settings)
    svc = AdapterService(
        transport,
        PostgresExecutor(
            bus.stack.pg_dsn, pool_size=2, idempotency=IdempotencySettings(table=idem_table)
        ),
        bus=bus.settings,
        settings=AdapterSettings(group_id=bus.group_id, pool_size=2, shutdown_grace=5.0),
    )
    try:
        await svc.start(http=False)
        yield svc
    finally:
        await svc.stop()
        await transport.close()


async def test_duplicate_served_by_a_fresh_adapter_returns_the_first_reply(
    bus: Bus, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    # No unique constraint: only the key can stop a second row; a second run
    # would also return another id and time.
    table = await make_table("id serial, note text, at timestamptz DEFAULT clock_timestamp()")
    sql = f"INSERT INTO {table} (note) VALUES ($1) RETURNING id, note, at"
    key = uuid.uuid4().hex
    client = await bus.client()

    async with adapter(bus, idem_table) as first:
        r1 = await client.request(sql, ["once"], idempotency_key=key)
    # The first adapter (and its in-memory cache) is gone; a fresh one serves.
    async with adapter(bus, idem_table) as second:
        r2 = await client.request(sql, ["once"], idempotency_key=key)

    assert r1.served_by == first.instance_id
    assert r2.served_by == second.instance_id != first.instance_id
    assert await count(pg, table) == 1
    assert r1.command == r2.command == "INSERT 0 1"
    assert r1.rowcount == r2.rowcount == 1
    assert [c.name for c in r2.columns] == [c.name for c in r1.columns] == ["id", "note", "at"]
    assert [tuple(r) for r in r2.rows] == [tuple(r) for r in r1.rows]
    assert r2.correlation_id != r1.correlation_id
    assert await count(pg, idem_table, "key = $1 AND outcome IS NOT NULL", key) == 1


async def test_failing_write_with_a_key_is_not_remembered_and_its_retry_runs(
    bus: Bus, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    table = await make_table("id int CHECK (id > 0)")
    sql = f"INSERT INTO {table} (id) VALUES ($1) RETURNING id"
    key = uuid.uuid4().hex
    client = await bus.client()
    async with adapter(bus, idem_table):
        with pytest.raises(IntegrityConstraintViolationError) as info:
            await client.request(sql, [-1], idempotency_key=key)
        assert info.value.sqlstate == "23514"
        assert await count(pg, idem_table) == 0
        # The corrected retry, with the same key, runs.
        fixed = await client.request(sql, [7], idempotency_key=key)
    assert fixed.command == "INSERT 0 1"
    assert [tuple(r) for r in fixed.rows] == [(7,)]
    assert await count(pg, table) == 1
    assert await count(pg, idem_table, "key = $1", key) == 1


# -- the executor --------------------------------------------------------------------------------


async def test_concurrent_duplicates_run_once_and_get_the_same_outcome(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    ex = await make_executor(pool_size=2)
    table = await make_table("id int, at timestamptz DEFAULT clock_timestamp()")
    # The sleep keeps the first transaction open while the second arrives: the
    # second waits on the first's key row, then reads its outcome.
    sql = f"INSERT INTO {table} (id) SELECT $1::int FROM pg_sleep(0.3) RETURNING id, at"
    key = uuid.uuid4().hex
    a, b = await asyncio.gather(
        ex.run(Job.of(req(sql, key), [1], deadline=Deadline.after(10.0))),
        ex.run(Job.of(req(sql, key), [1], deadline=Deadline.after(10.0))),
    )
    assert await count(pg, table) == 1
    assert a.command == b.command == "INSERT 0 1"
    assert a.rowcount == b.rowcount == 1
    assert a.columns == b.columns
    assert a.rows == b.rows
    assert a.rows[0][0] == 1


async def test_failed_or_timed_out_statement_leaves_no_key_and_a_clean_connection(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    ex = await make_executor(pool_size=1)  # every call reuses the one session
    table = await make_table("id int CHECK (id > 0)")
    key = uuid.uuid4().hex
    with pytest.raises(IntegrityConstraintViolationError):
        await ex.run(
            Job.of(
                req(f"INSERT INTO {table} VALUES ($1)", key), [-1], deadline=Deadline.after(10.0)
            )
        )
    # Past the deadline: canceled, rolled back, the shortened timeout undone.
    slow = f"INSERT INTO {table} SELECT $1::int FROM pg_sleep(3)"
    with pytest.raises(QueryCanceledError):
        await ex.run(Job.of(req(slow, key, timeout=0.3), [5], deadline=Deadline.after(0.3)))
    assert await count(pg, idem_table) == 0
    assert await count(pg, table) == 0

    ok = await ex.run(
        Job.of(req(f"INSERT INTO {table} VALUES ($1)", key), [3], deadline=Deadline.after(10.0))
    )
    assert ok.command == "INSERT 0 1"
    again = await ex.run(
        Job.of(req(f"INSERT INTO {table} VALUES ($1)", key), [3], deadline=Deadline.after(10.0))
    )
    assert again.command == "INSERT 0 1"
    assert await count(pg, table) == 1
    state = await ex.run(
        Job.of(
            req(
                "SELECT current_setting('statement_timeout'), pg_backend_pid()", None, timeout=29.9
            ),
            [],
            deadline=Deadline.after(29.9),
        )
    )
    assert state.rows[0][0] == "30s"
    # Not left inside a transaction.
    activity = "SELECT state FROM pg_stat_activity WHERE pid = $1"
    assert await pg.fetchval(activity, state.rows[0][1]) == "idle"


async def test_executemany_with_a_key_runs_once(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    ex = await make_executor()
    table = await make_table("id int PRIMARY KEY")
    sql = f"INSERT INTO {table} (id) VALUES ($1)"
    key = uuid.uuid4().hex
    batch = [[i] for i in range(20)]
    first = await ex.run(Job.of(req(sql, key, many=True), batch, deadline=Deadline.after(10.0)))
    # Without the key, the duplicate batch would violate the primary key.
    second = await ex.run(Job.of(req(sql, key, many=True), batch, deadline=Deadline.after(10.0)))
    assert first.command == second.command == "EXECUTEMANY 20"
    assert first.rowcount == second.rowcount == 20
    assert await count(pg, table) == 20

    # A failing batch keeps nothing, not even its key.
    other = uuid.uuid4().hex
    with pytest.raises(IntegrityConstraintViolationError):
        await ex.run(
            Job.of(req(sql, other, many=True), [[100], [0]], deadline=Deadline.after(10.0))
        )
    assert await count(pg, table) == 20
    await ex.run(Job.of(req(sql, other, many=True), [[100], [101]], deadline=Deadline.after(10.0)))
    assert await count(pg, table) == 22


async def test_reads_with_a_key_leave_no_record(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    ex = await make_executor()
    table = await make_table("id serial")
    key = uuid.uuid4().hex
    first = await ex.run(
        Job.of(req("SELECT clock_timestamp()", key), [], deadline=Deadline.after(10.0))
    )
    second = await ex.run(
        Job.of(req("SELECT clock_timestamp()", key), [], deadline=Deadline.after(10.0))
    )
    assert second.rows != first.rows  # ran twice: not served from a record
    assert await count(pg, idem_table) == 0
    # A read that may write (a sequence) is recorded.
    await ex.run(
        Job.of(
            req("SELECT nextval(pg_get_serial_sequence($1, 'id'))", key),
            [table],
            deadline=Deadline.after(10.0),
        )
    )
    assert await count(pg, idem_table, "key = $1", key) == 1


async def test_statement_refused_in_a_transaction_still_runs(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    ex = await make_executor()
    table = await make_table("id int")
    outcome = await ex.run(
        Job.of(req(f"VACUUM {table}", uuid.uuid4().hex), [], deadline=Deadline.after(10.0))
    )
    assert outcome.command == "VACUUM"
    assert await count(pg, idem_table) == 0


async def test_expired_keys_are_deleted_periodically(
    make_executor: MakeExecutor, pg: asyncpg.Connection, idem_table: str
) -> None:
    ex = await make_executor(ttl=3600.0, cleanup_interval=0.05)
    await pg.execute(
        f"INSERT INTO {idem_table} (key, request, outcome, created_at) VALUES "
        "('old', 'r', '\\x7b7d', now() - interval '2 hours'), ('fresh', 'r', '\\x7b7d', now())"
    )

    async def old_gone() -> bool:
        return await count(pg, idem_table, "key = 'old'") == 0

    await wait_for(old_gone, timeout=5.0, message="the expired key deleted")
    assert await count(pg, idem_table, "key = 'fresh'") == 1
    # purge() itself reports what it deleted.
    assert ex.idempotency is not None
    await pg.execute(f"UPDATE {idem_table} SET created_at = now() - interval '1 day'")
    assert await ex.idempotency.purge(pg) == 1
    assert await count(pg, idem_table) == 0


# -- the routing executor ------------------------------------------------------------------------


async def test_routing_executor_keeps_keys_on_the_primary(
    stack: Stack, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    ex = RoutingExecutor(
        stack.pg_dsn,
        [stack.replica_dsn],
        settings=RoutingSettings(lag_interval=0.05, pool_size=2),
        idempotency=IdempotencySettings(table=idem_table),
    )
    await ex.start()
    try:
        table = await make_table("id serial, note text")
        sql = f"INSERT INTO {table} (note) VALUES ($1) RETURNING id"
        key = uuid.uuid4().hex
        first = await ex.run(Job.of(req(sql, key), ["x"], deadline=Deadline.after(10.0)))
        second = await ex.run(Job.of(req(sql, key), ["x"], deadline=Deadline.after(10.0)))
        assert first.rows == second.rows
        assert first.route is not None
        assert first.route.target == "primary"
        assert first.lsn is not None
        assert second.lsn is not None
        assert await count(pg, table) == 1
        assert await count(pg, idem_table, "key = $1", key) == 1
        # A keyed read (a replica's or the primary's) leaves no record.
        read_key = uuid.uuid4().hex
        read = req(f"SELECT count(*) FROM {table}", read_key, min_lsn=first.lsn)
        assert (await ex.run(Job.of(read, [], deadline=Deadline.after(10.0)))).rows == [[1]]
        assert await count(pg, idem_table, "key = $1", read_key) == 0
    finally:
        await ex.stop()


async def test_a_key_reused_for_another_request_is_refused(
    make_executor: MakeExecutor, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    ex = await make_executor(pool_size=1)
    table = await make_table("id int")
    sql = f"INSERT INTO {table} (id) VALUES ($1)"
    key = uuid.uuid4().hex
    first = await ex.run(
        Job.of(req(sql, key, params=encode_row([1])), [1], deadline=Deadline.after(10.0))
    )
    assert first.command == "INSERT 0 1"
    # The same key with other parameters is another request: refused, not run,
    # and certainly not answered with the first request's result.
    with pytest.raises(RequestRejectedError, match="already used for a different request"):
        await ex.run(
            Job.of(req(sql, key, params=encode_row([2])), [2], deadline=Deadline.after(10.0))
        )
    # The same request again is a duplicate: the stored result, nothing run.
    again = await ex.run(
        Job.of(req(sql, key, params=encode_row([1])), [1], deadline=Deadline.after(10.0))
    )
    assert again.command == "INSERT 0 1"
    assert [r["id"] for r in await pg.fetch(f"SELECT id FROM {table}")] == [1]


async def test_key_reuse_through_the_bus_is_refused_even_by_the_same_adapter(
    bus: Bus, make_table: MakeTable, pg: asyncpg.Connection, idem_table: str
) -> None:
    table = await make_table("id int")
    sql = f"INSERT INTO {table} (id) VALUES ($1)"
    key = uuid.uuid4().hex
    client = await bus.client()
    async with adapter(bus, idem_table):
        assert (await client.request(sql, [1], idempotency_key=key)).command == "INSERT 0 1"
        # Same adapter, so its in-memory cache holds the key: it must not answer
        # a different request with the first one's reply either.
        with pytest.raises(RequestRejectedError, match="different request"):
            await client.request(sql, [2], idempotency_key=key)
        assert (await client.request(sql, [1], idempotency_key=key)).command == "INSERT 0 1"
    assert [r["id"] for r in await pg.fetch(f"SELECT id FROM {table}")] == [1]
