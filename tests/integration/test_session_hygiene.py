"""Nothing one request does to its database session reaches the next request.

The pool does not reset connections on release (a round trip per request);
the executor resets after statements that might leave state behind. With a
pool of ONE connection, every request below reuses the previous one's session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from tests.helpers import make_request
from tests.stack import Stack

from querybus.database.executor import PostgresExecutor
from querybus.errors import UndefinedObjectError
from querybus.execution import Deadline, Job
from querybus.sql import analyze


@pytest.fixture
async def executor(stack: Stack) -> AsyncIterator[PostgresExecutor]:
    ex = PostgresExecutor(stack.pg_dsn, pool_size=1, max_statement_timeout=30.0)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.stop()


async def run(
    ex: PostgresExecutor, sql: str, *params: Any, timeout: float = 29.9
) -> list[list[Any]]:
    request = make_request(sql, timeout=timeout)
    return (await ex.run(Job.of(request, list(params), deadline=Deadline.after(timeout)))).rows


async def test_session_setting_does_not_leak(executor: PostgresExecutor) -> None:
    before = (await run(executor, "SELECT current_setting('application_name')"))[0][0]
    await run(executor, "SELECT set_config('application_name', 'leaked', false)")
    assert (await run(executor, "SELECT current_setting('application_name')"))[0][0] == before


async def test_temporary_table_does_not_leak(executor: PostgresExecutor) -> None:
    await run(executor, "CREATE TEMP TABLE qb_hygiene_tmp (a int)")
    with pytest.raises(UndefinedObjectError):
        await run(executor, "SELECT * FROM qb_hygiene_tmp")


async def test_session_advisory_lock_is_released(executor: PostgresExecutor, stack: Stack) -> None:
    await run(executor, "SELECT pg_advisory_lock(424242)")
    other = await asyncpg.connect(stack.pg_dsn)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(424242)") is True
        await other.execute("SELECT pg_advisory_unlock(424242)")
    finally:
        await other.close()


async def test_short_deadline_statement_timeout_does_not_leak(executor: PostgresExecutor) -> None:
    # A short deadline makes the executor SET statement_timeout for that request only.
    # It is the time left when the statement starts: at most the 2 s asked for.
    shown = (await run(executor, "SHOW statement_timeout", timeout=2.0))[0][0]
    assert shown == "2s" or (shown.endswith("ms") and 1000 < int(shown[:-2]) < 2000), shown
    assert (await run(executor, "SHOW statement_timeout"))[0][0] == "30s"


async def test_failed_unsafe_statement_still_resets(executor: PostgresExecutor) -> None:
    with pytest.raises(UndefinedObjectError):
        await run(executor, "SELECT set_config('application_name', 'x', false), * FROM qb_no_such")
    await run(executor, "SELECT set_config('search_path', 'nowhere', false)")
    assert (await run(executor, "SHOW search_path"))[0][0] != "nowhere"


@pytest.mark.parametrize(
    ("sql", "safe"),
    [
        ("SELECT * FROM t WHERE id = $1", True),
        ("INSERT INTO t VALUES (now(), lower($1))", True),
        ("UPDATE t SET n = nextval('s')", True),
        ("SELECT count(*), max(x) FROM t", True),
        ("SELECT set_config('a.b', 'c', false)", False),
        ("SELECT pg_advisory_lock(1)", False),
        ("SELECT my_function(1)", False),
        ("SELECT * INTO TEMP x FROM t", False),
        ("CREATE TEMP TABLE x (a int)", False),
        ("DO $$ BEGIN PERFORM 1; END $$", False),
        ("SHOW search_path", False),
    ],
)
def test_session_safety_classification(sql: str, safe: bool) -> None:
    assert analyze(sql).session_safe is safe
