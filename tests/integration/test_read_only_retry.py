"""A read that a replica refuses as a write (SQLSTATE 25006) is answered by the
primary and remembered as primary-only, on every path a read can take to a
replica: a plain read, and a read-your-writes read that waits for the replica
to replay the caller's last write first (issue 8).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tests.stack import Stack

from querybus.execution import Job
from querybus.protocol import QueryRequest, ReplyAddress
from querybus.routing.executor import RoutingExecutor, RoutingSettings


@pytest.fixture
async def schema(stack: Stack) -> AsyncIterator[str]:
    name = f"t_ro_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        await conn.execute(
            f"CREATE SCHEMA {name}; CREATE TABLE {name}.audit (at timestamptz DEFAULT now());"
            f"CREATE TABLE {name}.ryw (id int);"
        )
        await conn.execute(
            f"CREATE FUNCTION {name}.writer() RETURNS int VOLATILE LANGUAGE sql "
            f"AS 'INSERT INTO {name}.audit DEFAULT VALUES RETURNING 1'"
        )
        # STABLE (so the catalog says a replica may run them), yet they call a writer.
        for n in range(6):
            await conn.execute(
                f"CREATE FUNCTION {name}.stable_caller_{n}() RETURNS int STABLE LANGUAGE plpgsql "
                f"AS 'BEGIN RETURN {name}.writer() + {n}; END'"
            )
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


def request(sql: str, *, min_lsn: str | None = None) -> QueryRequest:
    return QueryRequest(
        id=uuid.uuid4().hex,
        client="t",
        sql=sql,
        reply_to=ReplyAddress("r", 0),
        deadline=time.time() + 20,
        min_lsn=min_lsn,
    )


async def test_a_write_then_a_read_the_replica_refuses_is_answered_and_learned(
    stack: Stack, schema: str
) -> None:
    # The read-your-writes wait is long, so the read right after the write waits
    # on the replica for the write (the path that used to give the caller 25006).
    settings = RoutingSettings(lag_interval=0.05, max_replica_lag=30.0, ryw_wait=2.0)
    async with RoutingExecutor(stack.pg_dsn, [stack.replica_dsn], settings=settings) as ex:
        for n in range(6):  # a fresh statement each time: learned is per fingerprint
            written = await ex.run(Job.of(request(f"INSERT INTO {schema}.ryw VALUES (1)"), []))
            assert written.lsn is not None
            sql = f"SELECT {schema}.stable_caller_{n}()"
            outcome = await ex.run(Job.of(request(sql, min_lsn=written.lsn), []))
            assert outcome.rows == [[1 + n]]
            assert outcome.route is not None
            assert (outcome.route.target, outcome.route.reason) == ("primary", "read_only_retry")
            assert outcome.lsn is not None  # it wrote: the caller can read its own write
            assert ex.router.is_learned(ex.classify(sql).fingerprint)
            again = await ex.run(Job.of(request(sql), []))
            assert again.route is not None
            assert (again.route.target, again.route.reason) == ("primary", "learned_primary")
