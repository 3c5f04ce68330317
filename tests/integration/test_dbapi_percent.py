"""``%`` through querybus.dbapi stores what psycopg2 stores, on a real adapter.

With parameters psycopg2 reads ``%%`` as one ``%`` everywhere in the text
(also inside string literals); without parameters it sends the text as written.
Anything else means the data silently differs after a migration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from tests.integration.conftest import Bus

import querybus.dbapi as dbapi


async def test_percent_signs_are_stored_as_psycopg2_stores_them(
    bus: Bus, make_table: Callable[[str], Awaitable[str]], pg: asyncpg.Connection
) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY, note text")

    def work() -> list[tuple[int, str]]:
        # closing(): `with conn:` commits but keeps the connection open, as in psycopg2.
        with contextlib.closing(dbapi.connect(bus.settings, timeout=30)) as conn, conn:
            cur = conn.cursor()
            # With a sequence, with a mapping, with an empty sequence: %% is %.
            cur.execute(f"INSERT INTO {table} VALUES (%s, '100%%')", (1,))
            cur.execute(
                f"INSERT INTO {table} VALUES (%(id)s, '%%' || %(note)s)", {"id": 2, "note": "x"}
            )
            cur.execute(f"INSERT INTO {table} VALUES (3, '50%% off')", ())
            # %%s is a literal %s, not a placeholder.
            cur.execute(f"INSERT INTO {table} VALUES (%s, '%%s')", (4,))
            # Without parameters nothing is interpreted: the text is stored as written.
            cur.execute(f"INSERT INTO {table} VALUES (5, '100%%')")
            cur.executemany(
                f"INSERT INTO {table} VALUES (%(id)s, %(note)s || '%%')",
                [{"id": 6, "note": "a"}, {"id": 7, "note": "b"}],
            )
            # In a LIKE pattern with a parameter, %% is the wildcard %.
            cur.execute(f"SELECT id FROM {table} WHERE note LIKE %s || '%%' ORDER BY id", ("100",))
            assert cur.fetchall() == [(1,), (5,)]
            cur.execute(f"SELECT id, note FROM {table} ORDER BY id")
            return cur.fetchall()

    rows = await asyncio.to_thread(work)
    expected = [
        (1, "100%"),
        (2, "%x"),
        (3, "50% off"),
        (4, "%s"),
        (5, "100%%"),
        (6, "a%"),
        (7, "b%"),
    ]
    assert rows == expected
    # What the database holds, read behind the bus's back.
    stored = await pg.fetch(f"SELECT id, note FROM {table} ORDER BY id")
    assert [tuple(r) for r in stored] == expected


async def test_a_percent_psycopg2_refuses_is_refused_before_sending(
    bus: Bus, make_table: Callable[[str], Awaitable[str]], pg: asyncpg.Connection
) -> None:
    await bus.adapter()
    table = await make_table("id int PRIMARY KEY, note text")

    def work() -> None:
        # closing(): `with conn:` commits but keeps the connection open, as in psycopg2.
        with contextlib.closing(dbapi.connect(bus.settings, timeout=30)) as conn, conn:
            cur = conn.cursor()
            # A lone % with parameters (psycopg2: ValueError / IndexError).
            with pytest.raises(dbapi.ProgrammingError, match="unsupported format character"):
                cur.execute(f"INSERT INTO {table} VALUES (%s, '100%')", (1,))
            with pytest.raises(dbapi.ProgrammingError, match="incomplete format"):
                cur.execute(f"INSERT INTO {table} VALUES (%s, 'a') -- 100%", (2,))
            # Mixed placeholder styles (psycopg2: ProgrammingError); after a
            # named placeholder a lone % counts as a positional one.
            with pytest.raises(dbapi.ProgrammingError, match="can't be mixed"):
                cur.execute(f"INSERT INTO {table} VALUES (%s, %(note)s)", (3,))
            with pytest.raises(dbapi.ProgrammingError, match="can't be mixed"):
                cur.execute(f"INSERT INTO {table} VALUES (%(id)s, '100%')", {"id": 3})
            # The cursor still works afterwards.
            cur.execute(f"INSERT INTO {table} VALUES (%s, '5%%')", (4,))

    await asyncio.to_thread(work)
    stored = await pg.fetch(f"SELECT id, note FROM {table} ORDER BY id")
    assert [tuple(r) for r in stored] == [(4, "5%")]
