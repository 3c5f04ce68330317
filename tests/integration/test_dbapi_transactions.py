"""querybus.dbapi keeps psycopg2's meaning on a real adapter: transactions,
cursor state and adaptation, compared with psycopg2 itself on the same database.

The same psycopg2-style code runs twice: with psycopg2 connected straight to
PostgreSQL, and with ``querybus.dbapi`` through the bus; both must leave the
same data and observe the same things. Blocking DB-API calls run in a worker
thread (``asyncio.to_thread``) so the adapter, on the test's event loop,
keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import asyncpg
import psycopg2
import pytest
from tests.helpers import wait_for
from tests.integration.conftest import Bus
from tests.integration.test_transactions import tx_adapter
from tests.stack import Stack

import querybus.dbapi as dbapi

MakeTable = Callable[[str], Awaitable[str]]


def transfer(
    driver: ModuleType, conn: Any, accounts: str, ledger: str, transfers: str, tid: int
) -> str:
    """A psycopg2-style money transfer, as the issue tried it: UPDATE, INSERT,
    then an INSERT that may violate a key, and ``rollback()`` in the ``except``."""
    cur = conn.cursor()
    try:
        cur.execute(f"UPDATE {accounts} SET balance = balance - %s WHERE id = %s", (30, 1))
        cur.execute(f"UPDATE {accounts} SET balance = balance + %s WHERE id = %s", (30, 2))
        cur.execute(f"INSERT INTO {ledger} (account, amount) VALUES (%s, %s)", (1, -30))
        cur.execute(f"INSERT INTO {transfers} VALUES (%s, %s, %s, %s)", (tid, 1, 2, 30))
        conn.commit()
        return "committed"
    except driver.IntegrityError as exc:
        conn.rollback()
        return f"rolled back: {exc.pgcode}"
    finally:
        cur.close()


async def _bank(pg: asyncpg.Connection, make_table: MakeTable) -> tuple[str, str, str]:
    accounts = await make_table("id int PRIMARY KEY, balance int NOT NULL")
    ledger = await make_table("n serial PRIMARY KEY, account int, amount int")
    transfers = await make_table("id int PRIMARY KEY, src int, dst int, amount int")
    await pg.execute(f"INSERT INTO {accounts} VALUES (1, 100), (2, 0)")
    return accounts, ledger, transfers


async def _state(pg: asyncpg.Connection, *tables: str) -> list[list[tuple[Any, ...]]]:
    return [[tuple(r) for r in await pg.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in tables]


async def test_a_failed_transfer_leaves_the_database_as_psycopg2_leaves_it(
    bus: Bus, stack: Stack, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    await bus.adapter()
    direct = await _bank(pg, make_table)
    through_bus = await _bank(pg, make_table)
    before = await _state(pg, *through_bus)

    def run(driver: ModuleType, conn: Any, tables: tuple[str, str, str]) -> list[str]:
        try:
            # The second transfer reuses id 7: its last INSERT violates the key.
            return [transfer(driver, conn, *tables, tid) for tid in (7, 7, 8)]
        finally:
            conn.close()

    expected = await asyncio.to_thread(run, psycopg2, psycopg2.connect(stack.pg_dsn), direct)
    got = await asyncio.to_thread(run, dbapi, dbapi.connect(bus.settings, timeout=30), through_bus)
    assert expected == ["committed", "rolled back: 23505", "committed"]
    assert got == expected
    assert await _state(pg, *through_bus) == await _state(pg, *direct)
    # Exactly two transfers' worth of changes: the failed one left nothing.
    accounts, ledger, transfers = await _state(pg, *through_bus)
    assert accounts == [(1, 40), (2, 60)]
    assert [row[1:] for row in ledger] == [(1, -30), (1, -30)]
    assert [row[0] for row in transfers] == [7, 8]
    assert before != [accounts, ledger, transfers]


async def test_with_conn_commits_or_rolls_back_and_the_connection_stays_open(
    bus: Bus, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY, note text")
    seen_inside: list[int] = []

    def insert_twice(conn: dbapi.Connection) -> None:
        with conn:
            conn.cursor().execute(f"INSERT INTO {table} VALUES (%s, %s)", (2, "undone"))
            conn.cursor().execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "dup"))

    def work() -> None:
        with contextlib.closing(dbapi.connect(bus.settings, timeout=30)) as conn:
            with conn, conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "kept"))
                # Not committed yet: invisible to another session.
                seen_inside.append(
                    asyncio.run_coroutine_threadsafe(
                        pg.fetchval(f"SELECT count(*) FROM {table}"), loop
                    ).result()
                )
            assert not conn.closed
            with pytest.raises(dbapi.IntegrityError):
                insert_twice(conn)
            assert not conn.closed
            assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
            # close() rolls back what was not committed.
            conn.cursor().execute(f"INSERT INTO {table} VALUES (%s, %s)", (3, "never"))

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(work)
    assert seen_inside == [0]
    assert await _state(pg, table) == [[(1, "kept")]]


def _pep249(driver: ModuleType, exc: BaseException) -> str:
    """The most precise PEP 249 class of ``exc`` (psycopg2's own subclasses,
    such as ``DivisionByZero``, have no counterpart here)."""
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
        "DatabaseError",
        "InterfaceError",
    ):
        if isinstance(exc, getattr(driver, name)):
            return name
    return type(exc).__name__


async def test_after_a_failed_statement_the_transaction_is_aborted_until_rollback(
    bus: Bus, stack: Stack, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    await bus.adapter()
    direct = await make_table("id int PRIMARY KEY")
    through_bus = await make_table("id int PRIMARY KEY")

    def work(driver: ModuleType, conn: Any, table: str) -> list[Any]:
        seen: list[Any] = []
        cur = conn.cursor()
        try:
            cur.execute(f"INSERT INTO {table} VALUES (%s)", (1,))
            for sql in ("SELECT 1/0", "SELECT 1"):
                try:
                    cur.execute(sql)
                except driver.Error as exc:
                    seen.append((_pep249(driver, exc), exc.pgcode))
            seen.append(conn.get_transaction_status())
            conn.commit()  # of an aborted transaction: rolled back, no error
            seen.append(conn.get_transaction_status())
            cur.execute(f"SELECT count(*) FROM {table}")
            seen.append(cur.fetchall())
            conn.rollback()
            return seen
        finally:
            conn.close()

    expected = await asyncio.to_thread(work, psycopg2, psycopg2.connect(stack.pg_dsn), direct)
    got = await asyncio.to_thread(work, dbapi, dbapi.connect(bus.settings, timeout=30), through_bus)
    assert expected == [
        ("DataError", "22012"),
        ("InternalError", "25P02"),
        dbapi.TRANSACTION_STATUS_INERROR,
        dbapi.TRANSACTION_STATUS_IDLE,
        [(0,)],
    ]
    assert got == expected
    assert await _state(pg, through_bus) == [[]]


async def test_autocommit_and_set_session(
    bus: Bus, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY")

    def work() -> list[Any]:
        seen: list[Any] = []
        with contextlib.closing(dbapi.connect(bus.settings, timeout=30)) as conn:
            cur = conn.cursor()
            conn.autocommit = True
            cur.execute(f"INSERT INTO {table} VALUES (%s)", (1,))
            conn.rollback()  # nothing to roll back: the INSERT committed on its own
            seen.append(conn.get_transaction_status())
            conn.set_session(
                isolation_level="SERIALIZABLE", readonly=True, deferrable=True, autocommit=False
            )
            cur.execute(
                "SELECT current_setting('transaction_isolation'), "
                "current_setting('transaction_read_only'), "
                "current_setting('transaction_deferrable')"
            )
            seen.append(cur.fetchone())
            with pytest.raises(dbapi.ProgrammingError):
                conn.autocommit = True  # inside a transaction
            with pytest.raises(dbapi.InternalError) as refused:
                cur.execute(f"INSERT INTO {table} VALUES (%s)", (2,))
            seen.append(refused.value.pgcode)
            conn.rollback()
            conn.set_session(readonly=False, deferrable=False)
            conn.isolation_level = dbapi.ISOLATION_LEVEL_REPEATABLE_READ
            cur.execute("SELECT current_setting('transaction_isolation')")
            seen.append(cur.fetchone())
            conn.commit()
        return seen

    assert await asyncio.to_thread(work) == [
        dbapi.TRANSACTION_STATUS_IDLE,
        ("serializable", "on", "on"),
        "25006",  # read-only transaction
        ("repeatable read",),
    ]
    assert await _state(pg, table) == [[(1,)]]


def _observe(driver: ModuleType, conn: Any, table: str) -> list[Any]:
    """Run one script of psycopg2-style statements; note what a caller sees."""
    seen: list[Any] = []

    def plain(value: Any) -> Any:
        # psycopg2 returns bytea as memoryview, querybus as bytes (documented).
        return bytes(value) if isinstance(value, memoryview) else value

    def step(sql: str, params: Any = None, many: bool = False) -> None:
        cur = conn.cursor()
        try:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
        except driver.Error as exc:
            # The class only: a query that does not parse is refused by the
            # adapter before PostgreSQL sees it, without a pgcode (docs/migration.md).
            seen.append(("error", _pep249(driver, exc)))
            conn.rollback()
            return
        description = None
        if cur.description is not None:
            description = [
                (d.name, getattr(d.type_code, "oid", d.type_code)) for d in cur.description
            ]
        rows = None
        if cur.description is not None:
            rows = [tuple(plain(v) for v in row) for row in cur.fetchall()]
        else:
            with pytest.raises(driver.ProgrammingError, match="no results to fetch"):
                cur.fetchall()
        if many:
            # psycopg2 keeps the last run's command tag; the adapter reports
            # none per run, so querybus leaves it None (docs/migration.md).
            seen.append((cur.rowcount, cur.lastrowid, description, rows))
        else:
            seen.append((cur.rowcount, cur.statusmessage, cur.lastrowid, description, rows))
            seen.append(cur.query)
        cur.close()

    step(
        f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (1, "it's 100%", decimal.Decimal("1.50"), dt.date(2024, 2, 29), [1, 2], b"\x00ab", None),
    )
    step(
        f"INSERT INTO {table} (id, name, tags) VALUES (%(id)s, %(name)s, %(tags)s)",
        {"id": 2, "name": "bob", "tags": []},
    )
    step(
        f"INSERT INTO {table} (id, name) VALUES (%s, %s)",
        [(3, "cy"), (4, "dee"), (5, None)],
        many=True,
    )
    step(f"SELECT id, name FROM {table} WHERE id IN %s ORDER BY id", ((1, 3, 5, 99),))
    step(
        f"SELECT id FROM {table} WHERE (id, name) IN %s ORDER BY id",
        (((1, "it's 100%"), (4, "dee")),),
    )
    step(f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id", ([2, 4],))
    step(f"SELECT * FROM {table} WHERE name LIKE %s ORDER BY id", ("%100%%",))
    step(f"SELECT count(*) FROM {table} WHERE name LIKE '%%e%%' AND id > %s", (0,))
    step(f"UPDATE {table} SET price = %s WHERE id IN %s", (decimal.Decimal("2"), (2, 3)))
    step(f"SELECT id FROM {table} WHERE id IN %s", ((),))  # syntax error, as in psycopg2
    step(f"DELETE FROM {table} WHERE id = %s RETURNING id, price", (3,))
    step(f"CREATE INDEX ON {table} (name)")
    step(f"SELECT name FROM {table} WHERE name = '100%%'")  # no parameters: as written
    conn.commit()
    return seen


async def test_cursor_state_and_adaptation_match_psycopg2(
    bus: Bus, stack: Stack, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    await bus.adapter()
    columns = (
        "id int PRIMARY KEY, name varchar(20), price numeric, born date, "
        "tags int[], data bytea, note text"
    )
    direct = await make_table(columns)
    through_bus = await make_table(columns)
    await pg.execute(f"GRANT ALL ON {direct}, {through_bus} TO {stack.pg.user}")

    def run(driver: ModuleType, conn: Any, table: str) -> list[Any]:
        try:
            return _observe(driver, conn, table)
        finally:
            conn.close()

    expected = await asyncio.to_thread(run, psycopg2, psycopg2.connect(stack.pg_dsn), direct)
    got = await asyncio.to_thread(run, dbapi, dbapi.connect(bus.settings, timeout=30), through_bus)
    # The table names differ; everything else is the same.
    assert [repr(x).replace(through_bus, "T") for x in got] == [
        repr(x).replace(direct, "T") for x in expected
    ]
    assert await _state(pg, through_bus) == await _state(pg, direct)


async def test_a_transaction_lost_on_the_adapter_is_an_operational_error_and_nothing_commits(
    bus: Bus, pg: asyncpg.Connection, make_table: MakeTable
) -> None:
    """The adapter rolls the connection's transaction back behind its back
    (here: its idle timeout; a stopped or killed adapter is the same to the
    caller). Like psycopg2 after a lost server connection: OperationalError,
    nothing of the transaction committed; after ``rollback()`` the connection
    works again."""
    adapter = await tx_adapter(bus, idle=0.5)
    table = await make_table("id int PRIMARY KEY")
    transactions = adapter.executor.transactions
    assert transactions is not None
    conn = dbapi.connect(bus.settings, timeout=30)
    try:
        cur = conn.cursor()
        await asyncio.to_thread(cur.execute, f"INSERT INTO {table} VALUES (%s)", (1,))
        assert transactions.open_count == 1
        await wait_for(lambda: transactions.open_count == 0, 30, message="the idle rollback")
        # Told by the notice ("was lost") or by the adapter ("was rolled back").
        with pytest.raises(dbapi.OperationalError, match=r"was lost|was rolled back"):
            await asyncio.to_thread(cur.execute, f"INSERT INTO {table} VALUES (%s)", (2,))
        with pytest.raises(dbapi.OperationalError, match="nothing of it committed"):
            await asyncio.to_thread(conn.commit)
        assert conn.get_transaction_status() == dbapi.TRANSACTION_STATUS_IDLE
        assert await _state(pg, table) == [[]]

        await asyncio.to_thread(cur.execute, f"INSERT INTO {table} VALUES (%s)", (3,))
        await asyncio.to_thread(conn.commit)
        assert await _state(pg, table) == [[(3,)]]
    finally:
        await asyncio.to_thread(conn.close)
