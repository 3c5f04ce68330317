"""querybus's own connection pool (querybus.database.pool), on the real server.

It replaced asyncpg's pool on the hot path, so it must keep what that pool
guaranteed: a bounded number of connections lent first come, first served; a
cancelled wait takes nothing (not even a connection handed over at that very
moment); a broken connection is replaced; a connection returned while its
statement is being cancelled, or inside a transaction, is never lent dirty;
closing waits for lent connections, terminating ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tests.helpers import wait_for
from tests.integration.routing_helpers import free_port
from tests.stack import Stack, UniqueNames

from querybus.database.pool import ConnectionPool
from querybus.database.postgres import create_pool
from querybus.errors import OperationalError


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[ConnectionPool]:
    p = await create_pool(stack.pg_dsn, size=2, max_statement_timeout=30.0)
    try:
        yield p
    finally:
        p.terminate()


async def _pid(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_lends_at_most_size_first_come_first_served(pool: ConnectionPool) -> None:
    a, b = await pool.acquire(), await pool.acquire()
    assert a is not b
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)  # both wait now
    assert not first.done()
    assert not second.done()
    await pool.release(a, timeout=5)
    assert await asyncio.wait_for(first, 5) is a  # the first waiter, not the second
    assert not second.done()
    await pool.release(b, timeout=5)
    assert await asyncio.wait_for(second, 5) is b
    await pool.release(a, timeout=5)
    await pool.release(a, timeout=5)  # a second release does nothing
    assert sorted(map(id, pool.connections())) == sorted([id(a), id(b)])


async def test_a_cancelled_wait_takes_nothing_even_when_handed_a_connection(
    pool: ConnectionPool,
) -> None:
    a, b = await pool.acquire(), await pool.acquire()
    # Timed out while waiting: nothing is taken.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await pool.acquire()
    # Handed a connection and cancelled before it ran: it passes the
    # connection on to the next caller.
    unlucky = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    await pool.release(a, timeout=5)  # sets unlucky's result…
    unlucky.cancel()  # …which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    async with asyncio.timeout(5):
        assert await pool.acquire() is a
    await pool.release(a, timeout=5)
    await pool.release(b, timeout=5)
    assert len(pool.connections()) == 2


async def test_a_broken_connection_is_replaced(
    pool: ConnectionPool, pg: asyncpg.Connection
) -> None:
    a, b = await pool.acquire(), await pool.acquire()
    old = await _pid(a)
    await pg.execute("SELECT pg_terminate_backend($1)", old)
    broken = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
    with pytest.raises(broken):
        await a.fetchval("SELECT 1")
    await pool.release(a, timeout=5)
    assert pool.stats() == (2, 1, 0, 0)  # size, in use, idle, waiting
    assert pool.stats().missing == 1
    await pool.release(b, timeout=5)
    pids = set()
    for _ in range(2):
        conn = await pool.acquire()
        pids.add(await _pid(conn))
    assert old not in pids, pids
    assert len(pids) == 2, pids
    assert len(pool.connections()) == 2


async def test_a_connection_returned_mid_cancellation_is_lent_clean(
    pool: ConnectionPool, pg: asyncpg.Connection
) -> None:
    conn = await pool.acquire()
    pid = await _pid(conn)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await conn.fetchval("SELECT pg_sleep(30)")
    # Returned at once, while asyncpg's cancel request may still be on its way.
    await pool.release(conn, timeout=5)
    state = await pg.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid, timeout=10)
    assert state == "idle", state  # the statement no longer runs
    again = await pool.acquire()
    assert await again.fetchval("SELECT 41 + 1", timeout=10) == 42
    await pool.release(again, timeout=5)


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(
    pool: ConnectionPool, pg: asyncpg.Connection, unique: UniqueNames
) -> None:
    table = unique("pool_tx").replace("-", "_")
    await pg.execute(f"CREATE TABLE {table} (n int)")
    await pg.execute(f"GRANT ALL ON {table} TO PUBLIC")
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        await pool.release(conn, timeout=5)
        assert not conn.is_in_transaction()
        assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert len(pool.connections()) == 2
    finally:
        await pg.execute(f"DROP TABLE {table}")


async def test_close_waits_for_lent_connections_and_refuses_new_callers(
    pool: ConnectionPool,
) -> None:
    a, b = await pool.acquire(), await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)
    with pytest.raises(asyncpg.InterfaceError):
        await waiting  # the waiter is told at once…
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()  # …and so is a new caller
    await pool.release(b, timeout=5)
    assert not closing.done()  # a is still lent, and still works
    assert await a.fetchval("SELECT 1") == 1
    await pool.release(a, timeout=5)
    await asyncio.wait_for(closing, 10)
    assert a.is_closed()
    assert b.is_closed()


async def test_terminate_ends_lent_connections_too(pool: ConnectionPool) -> None:
    a = await pool.acquire()
    pool.terminate()
    assert a.is_closed()
    await pool.release(a, timeout=5)  # returning it afterwards is harmless


async def test_an_unreachable_server_fails_each_caller_and_is_retried(stack: Stack) -> None:
    dsn = dataclasses.replace(stack.pg, port=free_port()).dsn
    with pytest.raises(OperationalError):
        await create_pool(dsn, size=1, max_statement_timeout=5.0)
    # A slot whose connection broke is opened by the caller that needs it;
    # when that fails, the next caller tries again.
    opened = 0

    async def flaky() -> asyncpg.Connection:
        nonlocal opened
        opened += 1
        if opened == 2:
            raise ConnectionRefusedError("down for a moment")
        return await asyncpg.connect(stack.pg_dsn)

    p = ConnectionPool(flaky, 1)
    await p.open()
    try:
        conn = await p.acquire()
        conn.terminate()
        await p.release(conn, timeout=5)
        with pytest.raises(ConnectionRefusedError):
            await p.acquire()
        again = await wait_for(p.acquire, 5, message="a new connection")
        assert await again.fetchval("SELECT 1") == 1
        assert opened == 3
    finally:
        p.terminate()


async def test_an_open_that_fails_midway_leaves_no_connection_open(stack: Stack) -> None:
    made: list[asyncpg.Connection] = []
    calls = 0

    async def second_fails() -> asyncpg.Connection:
        nonlocal calls
        calls += 1
        if calls == 2:  # fails once the first one is open
            await wait_for(lambda: made, 10, message="the first connection to open")
            raise ConnectionRefusedError("refused")
        conn = await asyncpg.connect(stack.pg_dsn)
        made.append(conn)
        return conn

    with pytest.raises(ConnectionRefusedError):
        await ConnectionPool(second_fails, 2).open()
    await wait_for(lambda: made[0].is_closed(), 5, message="the opened one to be closed")


async def test_under_churn_no_connection_is_lent_twice_and_none_is_lost(
    pool: ConnectionPool,
) -> None:
    """Many callers with short waits, cancellations while waiting and while
    holding, and connections broken while lent: at every moment a connection
    has at most one holder, and afterwards the pool holds exactly its size,
    all idle, with nobody left waiting."""
    rng = random.Random(11)
    holders: dict[int, int] = {}  # id(conn) → the caller holding it
    broken = 0

    async def caller(n: int) -> None:
        nonlocal broken
        try:
            async with asyncio.timeout(rng.choice([0.001, 0.01, 0.1, 5.0])):
                conn = await pool.acquire()
        except TimeoutError:
            return
        try:
            assert id(conn) not in holders, "a connection lent to two callers at once"
            holders[id(conn)] = n
            roll = rng.random()
            if roll < 0.05:
                conn.terminate()
                broken += 1
            elif roll < 0.15:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.005):
                        await conn.fetchval("SELECT pg_sleep(0.05)")
            else:
                assert await conn.fetchval("SELECT $1::int", n) == n
        finally:
            del holders[id(conn)]
            await pool.release(conn, timeout=5)

    tasks = [asyncio.create_task(caller(n)) for n in range(300)]
    await asyncio.sleep(0.01)
    for task in rng.sample(tasks, 30):
        task.cancel()  # some while waiting, some while holding
    await asyncio.gather(*tasks, return_exceptions=True)
    assert broken, "the churn broke no connection: it tests less than it says"
    conns = []
    async with asyncio.timeout(10):  # every slot usable again (a lost one never comes)
        for _ in range(pool.size):
            conns.append(await pool.acquire())
    try:
        assert len({id(c) for c in conns}) == pool.size
        for c in conns:
            assert await c.fetchval("SELECT 1", timeout=10) == 1
        assert not pool._waiters
    finally:
        for c in conns:
            await pool.release(c, timeout=5)
    assert len(pool.connections()) == pool.size


async def test_a_connection_past_its_age_is_replaced_when_returned(stack: Stack) -> None:
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(stack.pg_dsn)
        opened.append(conn)
        return conn

    p = ConnectionPool(connect, 1, max_age=0.05)
    await p.open()
    try:
        first = await p.acquire()
        pid = await _pid(first)
        await p.release(first, timeout=5)

        async def pid_now() -> int:
            conn = await p.acquire()
            try:
                return await _pid(conn)
            finally:
                await p.release(conn, timeout=5)

        # Once it is old enough, the next return replaces it.
        await wait_for(pid_now, 5, message="a fresh connection", accept=lambda n: n != pid)
        await wait_for(first.is_closed, 5, message="the old one closed")
        assert len(opened) >= 2
        assert p.stats().size == 1
        assert p.stats().in_use == 0
    finally:
        await p.close()
    assert all(c.is_closed() for c in opened)


async def test_connections_are_kept_when_no_age_is_set(stack: Stack) -> None:
    p = ConnectionPool(lambda: asyncpg.connect(stack.pg_dsn), 1, max_age=None)
    await p.open()
    try:
        pids = set()
        for _ in range(20):
            conn = await p.acquire()
            pids.add(await _pid(conn))
            await p.release(conn, timeout=5)
        assert len(pids) == 1
    finally:
        await p.close()
