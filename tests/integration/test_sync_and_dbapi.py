"""The blocking client and the DB-API 2.0 module, against a real adapter.

Blocking calls run in a worker thread (``asyncio.to_thread``) so that the
adapter, which lives on the test's event loop, keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import Awaitable, Callable

import pytest
from tests.integration.conftest import Bus

import querybus.dbapi as dbapi
from querybus.client.sync import SyncQueryClient
from querybus.errors import InterfaceError, UndefinedObjectError


async def test_sync_client_methods(bus: Bus, make_table: Callable[[str], Awaitable[str]]) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY, name text, price numeric")

    def work() -> None:
        with SyncQueryClient(bus.settings, timeout=30) as db:
            insert = f"INSERT INTO {table} VALUES ($1, $2, $3)"
            assert db.execute(insert, 1, "ada", 1.5) == "INSERT 0 1"
            db.executemany(insert, [(2, "bob", 2), (3, "cy", 3)])
            rows = db.fetch(f"SELECT id, name FROM {table} ORDER BY id")
            assert [tuple(r) for r in rows] == [(1, "ada"), (2, "bob"), (3, "cy")]
            row = db.fetchrow(f"SELECT * FROM {table} WHERE id = $1", 1)
            assert row is not None
            assert row["price"] == decimal.Decimal("1.5")
            assert db.fetchval(f"SELECT count(*) FROM {table}") == 3
            result = db.query(
                f"SELECT name FROM {table} WHERE id = $1", [2], operation_type="select"
            )
            assert result.rows[0]["name"] == "bob"
            assert result.correlation_id
            with pytest.raises(UndefinedObjectError):
                db.fetch("SELECT * FROM qb_no_such_table")
        with pytest.raises(InterfaceError):
            db.fetch("SELECT 1")  # closed

    await asyncio.to_thread(work)


async def test_dbapi_psycopg2_style(bus: Bus, make_table: Callable[[str], Awaitable[str]]) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY, name text")
    assert dbapi.apilevel == "2.0"
    assert dbapi.paramstyle == "pyformat"

    def work() -> None:
        conn = dbapi.connect(bus.settings, timeout=30)
        with conn:  # commits at the end, and leaves the connection open (psycopg2 >= 2.9)
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "ada"))
            assert cur.rowcount == 1
            cur.executemany(
                f"INSERT INTO {table} VALUES (%(id)s, %(name)s)",
                [{"id": 2, "name": "bob"}, {"id": 3, "name": "it's 100%"}],
            )
            conn.commit()
            cur.execute(f"SELECT id, name FROM {table} WHERE name <> %s ORDER BY id", ("nobody",))
            assert cur.description is not None
            assert [d[0] for d in cur.description] == ["id", "name"]
            assert cur.description[0][1] == dbapi.NUMBER
            assert cur.description[1][1] == dbapi.STRING
            assert cur.fetchone() == (1, "ada")
            assert cur.fetchmany(1) == [(2, "bob")]
            assert cur.fetchall() == [(3, "it's 100%")]
            assert cur.fetchone() is None
            cur.execute(f"SELECT count(*) FROM {table} WHERE name LIKE '%%b%%'")
            assert list(cur) == [(1,)]
            with pytest.raises(dbapi.IntegrityError) as unique:
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "dup"))
            assert unique.value.pgcode == "23505"
            conn.rollback()  # the failed INSERT aborted the transaction
            with pytest.raises(dbapi.ProgrammingError) as missing:
                cur.execute("SELECT * FROM qb_no_such_table")
            assert missing.value.pgcode == "42P01"
            conn.rollback()
            with pytest.raises(dbapi.ProgrammingError):
                cur.execute("SELECT 1; SELECT 2")  # refused by the adapter: one statement
            conn.rollback()
        assert not conn.closed
        conn.close()
        assert conn.closed
        with pytest.raises(dbapi.InterfaceError):
            conn.cursor()

    await asyncio.to_thread(work)


def test_placeholders_are_converted_as_psycopg2_does() -> None:
    # psycopg2 substitutes text without looking at quotes: inside literals too,
    # `%%` is a literal `%` and `%s` a placeholder (mixing styles is refused).
    sql, values = dbapi.convert_placeholders(
        "SELECT %(a)s, '%%s', %(a)s, %(b)s, $$ %%s $$, \"%%s\" -- %%s\n, 100%%",
        {"a": 1, "b": 2},
    )
    assert sql == "SELECT $1, '%s', $1, $2, $$ %s $$, \"%s\" -- %s\n, 100%"
    assert values == [1, 2]
    with pytest.raises(dbapi.ProgrammingError):
        dbapi.convert_placeholders("SELECT %(a)s, '%s'", {"a": 1})
    assert dbapi.convert_placeholders("VALUES (%s, %s)", (1, "x")) == ("VALUES ($1, $2)", [1, "x"])
    with pytest.raises(dbapi.ProgrammingError):
        dbapi.convert_placeholders("VALUES (%s, %s)", (1,))
    with pytest.raises(dbapi.ProgrammingError):
        dbapi.convert_placeholders("VALUES (%s)", (1, 2))
    with pytest.raises(dbapi.ProgrammingError):
        dbapi.convert_placeholders("VALUES (%(missing)s)", {"a": 1})
