"""One contract, two modes: every test runs through the bus (a real adapter on
real Kafka) and in direct mode (the adapter's request handling in this
process, on an asyncpg pool of the same database), with the same assertions.

Direct mode is the rollback plan of a migration and its A/B baseline: a call
must return the same values, of the same types, and raise the same typed
errors either way. The last test points the bus at a closed port with
``fallback="direct"``: requests still succeed, and the client counts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from tests.helpers import wait_for
from tests.integration.conftest import Bus
from tests.integration.test_end_to_end import VALUES, same
from tests.stack import Stack

import querybus.dbapi as dbapi
from querybus.client import QueryClient, TransactionState
from querybus.client.sync import SyncQueryClient
from querybus.config import BusSettings, ClientSettings
from querybus.errors import (
    DataError,
    PayloadTooLargeError,
    ProtocolError,
    RequestRejectedError,
    RequestTimeoutError,
    TransactionBusyError,
)
from querybus.sqlstates import (
    InFailedSQLTransactionError,
    UndefinedTableError,
    UniqueViolationError,
)

MakeTable = Callable[[str], Awaitable[str]]

MODES = ["bus", "direct"]


def options(mode: str, stack: Stack) -> dict[str, Any]:
    """The client's keyword arguments for ``mode``."""
    return {} if mode == "bus" else {"mode": "direct", "dsn": stack.pg_dsn}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db(mode: str, bus: Bus, stack: Stack) -> QueryClient:
    """A started client in ``mode`` (through a running adapter for ``bus``)."""
    if mode == "bus":
        await bus.adapter()
    client = await bus.client(timeout=30.0, **options(mode, stack))
    assert client.mode == mode
    return client


@pytest.fixture
async def blocking(mode: str, bus: Bus, stack: Stack) -> dict[str, Any]:
    """What a blocking client needs for ``mode`` (an adapter runs for ``bus``)."""
    if mode == "bus":
        await bus.adapter()
    return {"bus": bus.settings, "timeout": 30.0, **options(mode, stack)}


# -- values -------------------------------------------------------------------------------


async def test_values_round_trip(db: QueryClient) -> None:
    for pgtype, value in VALUES:
        got = await db.fetchval(f"SELECT $1::{pgtype} AS v", value)
        assert same(value, got), f"{pgtype}: sent {value!r}, got {got!r}"
    nan = await db.fetchval("SELECT $1::float8", math.nan)
    assert isinstance(nan, float)
    assert math.isnan(nan)
    assert await db.fetchval("SELECT NULL::int") is None
    # Values the database makes (not echoed parameters), of every kind at once.
    result = await db.request(
        "SELECT 1.50::numeric AS n, '8c5d7a1e-1b3f-4a44-9c59-0c1f5e7e2a10'::uuid AS u,"
        " '2024-02-29'::date AS d, '2024-02-29 10:00:00+00'::timestamptz AS ts,"
        " '{\"k\": [1, 2.5, null]}'::jsonb AS j, ARRAY[1.5, 2]::numeric[] AS a,"
        " '\\x00ff'::bytea AS b, '1 day 2 hours'::interval AS i, 'x'::text AS t"
    )
    row = result.rows[0]
    assert [(c.name, c.type) for c in result.columns] == [
        ("n", "numeric"),
        ("u", "uuid"),
        ("d", "date"),
        ("ts", "timestamptz"),
        ("j", "jsonb"),
        ("a", "numeric[]"),
        ("b", "bytea"),
        ("i", "interval"),
        ("t", "text"),
    ]
    expected = {
        "n": Decimal("1.50"),
        "u": uuid.UUID("8c5d7a1e-1b3f-4a44-9c59-0c1f5e7e2a10"),
        "d": dt.date(2024, 2, 29),
        "ts": dt.datetime(2024, 2, 29, 10, tzinfo=dt.UTC),
        "j": {"k": [1, 2.5, None]},
        "a": [Decimal("1.5"), Decimal("2")],
        "b": b"\x00\xff",
        "i": dt.timedelta(days=1, hours=2),
        "t": "x",
    }
    for name, value in expected.items():
        assert same(value, row[name]), f"{name}: {row[name]!r}"
    assert str(row["n"]) == "1.50"  # the scale survives too
    assert result.command == "SELECT 1"
    assert result.rowcount == 1


# -- errors by SQLSTATE, refusals ------------------------------------------------------------


async def test_errors_by_sqlstate(db: QueryClient, make_table: MakeTable) -> None:
    table = await make_table("id int PRIMARY KEY")
    await db.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(UniqueViolationError) as unique:
        await db.execute(f"INSERT INTO {table} VALUES ($1)", 1)
    assert unique.value.sqlstate == "23505"
    assert unique.value.detail  # "Key (id)=(1) already exists." (values masked on the bus)
    with pytest.raises(UndefinedTableError) as missing:
        await db.fetch("SELECT * FROM qb_no_such_table_modes")
    assert missing.value.sqlstate == "42P01"
    with pytest.raises(DataError) as division:
        await db.fetchval("SELECT 1 / $1::int", 0)
    assert division.value.sqlstate == "22012"
    assert not division.value.retriable


async def test_refusals(db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection) -> None:
    table = await make_table("id int")
    with pytest.raises(RequestRejectedError):
        await db.execute("SET ROLE postgres")
    with pytest.raises(RequestRejectedError, match="one SQL statement"):
        await db.execute(f"INSERT INTO {table} VALUES (1); INSERT INTO {table} VALUES (2)")
    with pytest.raises(RequestRejectedError, match="DELETE"):
        await db.query(f"DELETE FROM {table}", operation_type="SELECT")
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0


# -- executemany, the original API -----------------------------------------------------------


async def test_executemany_is_atomic(
    db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int PRIMARY KEY, note text")
    await db.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(1, "a"), (2, "b")])
    with pytest.raises(UniqueViolationError):
        await db.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(3, "c"), (1, "dup")])
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 2
    result = await db.query(f"SELECT note FROM {table} ORDER BY id", operation_type="SELECT")
    assert [r["note"] for r in result.rows] == ["a", "b"]
    assert result.correlation_id


async def test_idempotency_key_runs_once(
    db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id serial PRIMARY KEY, note text")
    key = f"modes-{uuid.uuid4().hex}"
    sql = f"INSERT INTO {table} (note) VALUES ($1) RETURNING id"
    first = await db.fetchval(sql, "once", idempotency_key=key)
    again = await db.fetchval(sql, "once", idempotency_key=key)
    assert first == again
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 1


# -- transactions ---------------------------------------------------------------------------


async def test_transactions_commit_rollback_savepoint(
    db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int PRIMARY KEY")
    async with db.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
        assert await tx.fetchval(f"SELECT count(*) FROM {table}") == 1
        try:
            async with tx.transaction():  # a savepoint
                await tx.execute(f"INSERT INTO {table} VALUES (2)")
                await tx.execute(f"INSERT INTO {table} VALUES (1)")  # duplicate
        except UniqueViolationError:
            pass
        await tx.execute(f"INSERT INTO {table} VALUES (3)")
    assert tx.state is TransactionState.COMMITTED
    rows = await pg.fetch(f"SELECT id FROM {table} ORDER BY id")
    assert [r["id"] for r in rows] == [1, 3]

    tx = db.transaction()

    async def fail_inside() -> None:
        async with tx:
            await tx.execute(f"INSERT INTO {table} VALUES (4)")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await fail_inside()
    assert tx.state is TransactionState.ROLLED_BACK

    tx = await db.begin(isolation="repeatable_read")
    await tx.execute(f"INSERT INTO {table} VALUES (5)")
    await tx.rollback()
    assert await pg.fetchval(f"SELECT count(*) FROM {table} WHERE id > 3") == 0
    assert await db.transaction_status(tx.id) == "rolled_back"


async def test_a_failed_statement_aborts_the_transaction(
    db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int PRIMARY KEY")
    tx = await db.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(UniqueViolationError):
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(InFailedSQLTransactionError) as aborted:
        await tx.fetchval("SELECT 1")
    assert aborted.value.sqlstate == "25P02"
    await tx.rollback()
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_run_in_transaction_and_batch(
    db: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int PRIMARY KEY, balance int")
    await pg.execute(f"INSERT INTO {table} VALUES (1, 100), (2, 0)")

    async def transfer(tx: Any) -> int:
        await tx.execute(f"UPDATE {table} SET balance = balance - 30 WHERE id = 1")
        await tx.execute(f"UPDATE {table} SET balance = balance + 30 WHERE id = 2")
        return int(await tx.fetchval(f"SELECT sum(balance) FROM {table}"))

    assert await db.run_in_transaction(transfer, isolation="serializable") == 100
    inserted, total = await db.batch(
        [
            (f"INSERT INTO {table} VALUES ($1, $2) RETURNING id", (3, 5)),
            (f"SELECT sum(balance)::numeric AS s FROM {table}", ()),
        ]
    )
    assert inserted.rows[0]["id"] == 3
    assert inserted.command == "INSERT 0 1"
    assert same(Decimal(105), total.rows[0]["s"])
    with pytest.raises(UniqueViolationError):
        await db.batch(
            [
                (f"INSERT INTO {table} VALUES ($1, $2)", (4, 0)),
                (f"INSERT INTO {table} VALUES ($1, $2)", (1, 0)),
            ]
        )
    rows = await pg.fetch(f"SELECT id, balance FROM {table} ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 70), (2, 30), (3, 5)]


# -- the blocking client and the DB-API module ------------------------------------------------


async def test_sync_client(blocking: dict[str, Any], make_table: MakeTable) -> None:
    table = await make_table("id int PRIMARY KEY, price numeric")

    def work() -> None:
        settings = blocking.pop("bus")
        with SyncQueryClient(settings, **blocking) as db:
            insert = f"INSERT INTO {table} VALUES ($1, $2)"
            assert db.execute(insert, 1, Decimal("1.5")) == "INSERT 0 1"
            db.executemany(insert, [(2, 2), (3, 3)])
            assert db.fetchval(f"SELECT price FROM {table} WHERE id = $1", 1) == Decimal("1.5")
            row = db.fetchrow(f"SELECT * FROM {table} WHERE id = $1", 2)
            assert row is not None
            assert row["price"] == Decimal(2)
            with db.transaction() as tx:
                tx.execute(f"DELETE FROM {table} WHERE id = $1", 3)
                assert tx.fetchval(f"SELECT count(*) FROM {table}") == 2
            assert [tuple(r) for r in db.fetch(f"SELECT id FROM {table} ORDER BY id")] == [
                (1,),
                (2,),
            ]
            with pytest.raises(UniqueViolationError):
                db.execute(insert, 1, 0)

    await asyncio.to_thread(work)


async def test_dbapi(blocking: dict[str, Any], make_table: MakeTable) -> None:
    table = await make_table("id int PRIMARY KEY, name text")

    def work() -> None:
        settings = blocking.pop("bus")
        conn = dbapi.connect(settings, **blocking)
        try:
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "ada"))
            conn.commit()
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (2, "bob"))
            with pytest.raises(dbapi.IntegrityError) as unique:
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "dup"))
            assert unique.value.pgcode == "23505"
            conn.rollback()  # bob goes too
            cur.execute(f"SELECT id, name FROM {table} WHERE id IN %s ORDER BY id", ((1, 2),))
            assert cur.fetchall() == [(1, "ada")]
            with pytest.raises(dbapi.ProgrammingError):
                cur.execute("SELECT 1; SELECT 2")
            conn.rollback()
        finally:
            conn.close()

    await asyncio.to_thread(work)


# -- settings --------------------------------------------------------------------------------


async def test_querybus_mode_from_the_environment(
    bus: Bus, stack: Stack, make_table: MakeTable
) -> None:
    table = await make_table("id int")
    env = {
        "QUERYBUS_MODE": "direct",
        "POSTGRES_HOST": stack.pg.host,
        "POSTGRES_PORT": str(stack.pg.port),
        "POSTGRES_DATABASE": stack.pg.database,
        "POSTGRES_USER": stack.pg.user,
        "POSTGRES_PASSWORD": stack.pg.password,
    }
    settings = ClientSettings.from_env(env)
    assert settings.mode == "direct"
    client = QueryClient(settings)
    await client.start()
    try:
        assert await client.execute(f"INSERT INTO {table} VALUES (1)") == "INSERT 0 1"
        assert client.metrics.requests == 1
    finally:
        await client.stop()

    def blocking() -> list[tuple[Any, ...]]:
        conn = dbapi.connect(settings)
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT id FROM {table}")
            return cur.fetchall()
        finally:
            conn.close()

    assert await asyncio.to_thread(blocking) == [(1,)]


# -- the fallback ----------------------------------------------------------------------------


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_bus_falls_back_to_direct(
    stack: Stack, make_table: MakeTable, pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    table = await make_table("id int PRIMARY KEY")
    unreachable = BusSettings(bootstrap_servers=f"127.0.0.1:{closed_port()}")
    client = QueryClient(unreachable, timeout=30.0, fallback="direct", dsn=stack.pg_dsn)
    client.fallback_probe_interval = 3600.0  # no probe during the test
    with caplog.at_level(logging.WARNING, logger="querybus.client"):
        await client.start()
        try:
            assert client.falling_back
            assert await client.execute(f"INSERT INTO {table} VALUES ($1)", 1) == "INSERT 0 1"
            assert await client.fetchval(f"SELECT count(*) FROM {table}") == 1
            async with client.transaction() as tx:
                await tx.execute(f"INSERT INTO {table} VALUES (2)")
            [result] = await client.batch([(f"SELECT id FROM {table} ORDER BY id", ())])
            assert [r["id"] for r in result.rows] == [1, 2]
            with pytest.raises(UniqueViolationError):
                await client.execute(f"INSERT INTO {table} VALUES (1)")
        finally:
            await client.stop()
    assert client.metrics.fallbacks == 5  # 2 requests, 1 transaction, 1 batch, 1 error
    assert client.metrics.fallback_outages == 1
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage"
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 2


async def test_direct_mode_lets_every_pooled_connection_hold_a_transaction(
    bus: Bus, stack: Stack
) -> None:
    """In direct mode the caller owns the whole pool: as many transactions as
    it has connections may be open at once (an adapter keeps half of its pool
    for plain requests; a caller that did the same would get busy errors
    where its psycopg2 code simply had its connections)."""
    client = await bus.client(timeout=30.0, **options("direct", stack))
    transactions = [await client.begin() for _ in range(10)]  # the default pool
    try:
        assert [await tx.fetchval("SELECT 1") for tx in transactions] == [1] * 10
    finally:
        for tx in transactions:
            await tx.rollback()


class _Forwarder:
    """A TCP forwarder from a local port to Kafka, that can be opened late:
    until it listens, the bus is unreachable at that address."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = closed_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()


async def test_a_bus_down_at_start_is_used_again_once_it_answers(
    bus: Bus, stack: Stack, make_table: MakeTable, caplog: pytest.LogCaptureFixture
) -> None:
    """The real switch back: the client starts while its bootstrap address
    does not answer (requests run directly), then the address answers (a real
    broker behind it): the probe starts the bus, and requests go through a
    real adapter again. Transactions begun directly stay direct."""
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY")
    forwarder = _Forwarder(stack.kafka_bootstrap)
    late = dataclasses.replace(bus.settings, bootstrap_servers=f"127.0.0.1:{forwarder.port}")
    client = QueryClient(late, timeout=30.0, fallback="direct", dsn=stack.pg_dsn)
    client.fallback_probe_interval = 0.2
    client.fallback_probe_timeout = 10.0
    try:
        with caplog.at_level(logging.WARNING, logger="querybus.client"):
            await client.start()
            assert client.falling_back
            direct = await client.request(f"INSERT INTO {table} VALUES (1)")
            assert direct.served_by.startswith("direct-")
            tx = client.transaction().defer()
            await tx.execute(f"INSERT INTO {table} VALUES (2)")

            await forwarder.open()
            await wait_for(lambda: not client.falling_back, 60, message="the switch back")
            via_bus = await client.request(f"INSERT INTO {table} VALUES (3)")
            assert not via_bus.served_by.startswith("direct-")
            # Begun directly, it stays there to its end.
            await tx.execute(f"INSERT INTO {table} VALUES (4)")
            await tx.commit()
            assert await client.fetchval(f"SELECT count(*) FROM {table}") == 4
    finally:
        await client.stop()
        await forwarder.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum(m.startswith("the bus answers again") for m in messages) == 1
    assert client.metrics.fallback_outages == 1


async def test_direct_mode_has_its_pool_size_and_the_adapters_rules(
    stack: Stack, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pool_size`` (``QUERYBUS_DIRECT_POOL_SIZE``) sizes the pool, and the
    rules are those of an adapter of the same environment: DDL is refused
    unless ``QUERYBUS_ALLOW_DDL`` allows it."""
    name = f"qb_direct_{uuid.uuid4().hex[:8]}"
    dsn = stack.pg_dsn
    monkeypatch.delenv("QUERYBUS_ALLOW_DDL", raising=False)
    strict = QueryClient(ClientSettings(mode="direct", dsn=dsn, pool_size=3), timeout=30.0)
    async with strict:
        with pytest.raises(RequestRejectedError, match="DDL"):
            await strict.execute(f"CREATE TABLE {name} (id int)")
    monkeypatch.setenv("QUERYBUS_ALLOW_DDL", "1")
    monkeypatch.setenv("QUERYBUS_DIRECT_POOL_SIZE", "2")
    settings = ClientSettings.from_env({**os.environ, "QUERYBUS_MODE": "direct"})
    lenient = QueryClient(dataclasses.replace(settings, dsn=dsn), timeout=30.0)
    async with lenient:
        try:
            assert await lenient.execute(f"CREATE TABLE {name} (id int)") == "CREATE TABLE"
            # Two connections: two transactions at once, and a third is busy.
            held = [lenient.transaction().defer() for _ in range(3)]
            for tx in held[:2]:
                await tx.execute(f"INSERT INTO {name} VALUES (1)")
            with pytest.raises(TransactionBusyError):
                await held[2].execute(f"INSERT INTO {name} VALUES (1)")
            for tx in held[:2]:
                await tx.rollback()
        finally:
            await pg.execute(f"DROP TABLE IF EXISTS {name}")


async def test_rows_are_described_by_the_statement_that_ran_after_a_schema_change(
    mode: str, bus: Bus, stack: Stack, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    """One pooled connection ran ``SELECT *``; then a column is added. The
    next run is prepared again by asyncpg, and the result's columns must be
    the new statement's: the rows have two values, so two columns."""
    if mode == "bus":
        await bus.adapter(pool_size=1)  # one connection: the statement is cached on it
        client = await bus.client(timeout=30.0)
    else:
        client = await bus.client(timeout=30.0, pool_size=1, **options(mode, stack))
    table = await make_table("id int PRIMARY KEY")
    await pg.execute(f"INSERT INTO {table} VALUES (1)")
    before = await client.request(f"SELECT * FROM {table}")
    assert [c.name for c in before.columns] == ["id"]
    await pg.execute(f"ALTER TABLE {table} ADD COLUMN note text DEFAULT 'x'")
    after = await client.request(f"SELECT * FROM {table}")
    assert [(c.name, c.type) for c in after.columns] == [("id", "int4"), ("note", "text")]
    [row] = after.rows
    assert (row["id"], row["note"]) == (1, "x")


async def test_the_size_limit_and_odd_text_are_refused_alike_on_every_path(
    mode: str, bus: Bus, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct mode runs a plain request without encoding it when its
    parameters cross the wire unchanged and its size is surely below the
    limit; any other request is encoded and measured as on the bus. Either
    way the limit refuses the same requests, text that UTF-8 cannot hold is
    a typed error, and the values come back alike."""
    if mode == "bus":
        await bus.adapter()
    lean: list[str] = []
    if mode == "direct":
        from querybus.direct import DirectBackend

        run_plain = DirectBackend.run_plain

        async def counted(self: DirectBackend, request: Any) -> Any:
            lean.append(request.sql)
            return await run_plain(self, request)

        monkeypatch.setattr(DirectBackend, "run_plain", counted)
    settings = dataclasses.replace(bus.settings, max_message_bytes=8192)
    async with QueryClient(settings, timeout=30.0, **options(mode, stack)) as client:
        sql = "SELECT length($1::text), $2::int8, $3::float8, $4::bool"
        # Small and plain: the lean path.
        assert tuple(await client.fetchrow(sql, "abc", 2**62, 0.5, True)) == (3, 2**62, 0.5, True)
        # 5 kB of ASCII fits, though its bound (every character escaped) does not.
        assert await client.fetchval(sql, "a" * 5000, None, None, None) == 5000
        # Non-ASCII text and wide integers take the trip.
        assert await client.fetchval("SELECT length($1::text)", "é" * 2000) == 2000
        assert await client.fetchval("SELECT $1::numeric", 2**70) == 2**70
        with pytest.raises(PayloadTooLargeError):
            await client.fetchval(sql, "a" * 9000, None, None, None)
        with pytest.raises(PayloadTooLargeError):
            await client.fetchval("SELECT length($1::text)", "é" * 5000)
        with pytest.raises(ProtocolError, match="surrogate"):
            await client.fetchval("SELECT length($1::text)", "a\ud800")
        with pytest.raises(ProtocolError, match="surrogate"):
            await client.fetchval("SELECT '\ud800'")
    if mode == "direct":
        assert lean == [sql], lean


async def test_a_statement_past_its_timeout_is_a_timeout_and_stops_on_the_server(
    db: QueryClient, pg: asyncpg.Connection
) -> None:
    """The caller's timeout ends the wait with RequestTimeoutError, and the
    statement does not run on: in direct mode the caller's task is cancelled
    and asyncpg cancels the statement; on the bus the adapter set the
    session's statement timeout from the deadline."""
    marker = f"qb_timeout_{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeoutError) as caught:
        await db.fetchval(f"SELECT pg_sleep(30), '{marker}'", timeout=1.0)
    assert loop.time() - started < 5
    assert caught.value.retriable

    async def gone() -> bool:
        running = await pg.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{marker}%",
        )
        return bool(running == 0)

    await wait_for(gone, 10, message="the statement stopped on the server")
    assert await db.fetchval("SELECT 1") == 1


async def test_direct_modes_lean_path_keeps_the_deadline_cap_of_the_adapter(stack: Stack) -> None:
    """A plain request whose caller waits longer than the adapter's longest
    deadline (``max_deadline``) is still bounded by that cap while it waits
    for a pooled connection, as on an adapter: the lean path drops its own
    timers only when the caller's timeout is the tighter bound."""
    from querybus.config import AdapterSettings
    from querybus.direct import DirectBackend
    from querybus.protocol import QueryFailure, QueryRequest

    backend = DirectBackend(
        stack.pg_dsn,
        bus=BusSettings(),
        client_id="cap",
        on_lost=lambda tx, reason: None,
        pool_size=1,
        settings=AdapterSettings(pool_size=1, tx_max_open=1, max_deadline=1.0),
    )
    await backend.start()
    pool: Any = backend._executor._pool
    held = await pool.acquire()  # the only connection: the request must wait
    try:
        now = time.time()
        request = QueryRequest(
            id="cap-1",
            client="cap",
            sql="SELECT 1",
            params=[],
            reply_to=backend.reply_to,
            deadline=now + 60,
            sent_at=now,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await asyncio.wait_for(backend.run_plain(request), 20)
        assert isinstance(reply, QueryFailure), reply
        # What an adapter answers when the deadline passes in the pool wait.
        assert reply.error.sqlstate == "57014"
        assert "deadline" in reply.error.message
        assert loop.time() - started < 10
    finally:
        await pool.release(held, timeout=10)
        await backend.stop()
