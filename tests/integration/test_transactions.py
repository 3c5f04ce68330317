"""Interactive transactions and batches end to end (issue 10, parts 1 and 2).

Real Kafka and PostgreSQL. Each test has its own bus (topic prefix, group)
and its own tables; adapters are started with the transaction limits the test
needs. Times in assertions are hang guards only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tests.helpers import wait_for
from tests.integration.cli_helpers import cli_env
from tests.integration.conftest import Bus, kafka_transport
from tests.integration.test_identity import World, world  # noqa: F401  (fixture)
from tests.stack import Stack, UniqueNames

from querybus import SyncQueryClient
from querybus.adapter.service import AdapterService
from querybus.client import Transaction, TransactionState
from querybus.config import AdapterSettings
from querybus.database.executor import PostgresExecutor
from querybus.database.transactions import TRANSACTION_MARK
from querybus.errors import (
    InterfaceError,
    PermissionDeniedError,
    ProtocolError,
    QueryBusError,
    RequestRejectedError,
    TransactionBusyError,
    TransactionLostError,
)
from querybus.protocol import BatchItem, Headers, TxOp, TxOptions, encode
from querybus.sqlstates import InFailedSQLTransactionError, UniqueViolationError
from querybus.transport import Record


async def tx_adapter(
    bus: Bus,
    *,
    pool_size: int = 4,
    idle: float = 30.0,
    lifetime: float = 300.0,
    max_open: int | None = None,
    grace: float = 10.0,
    **settings: Any,
) -> AdapterService:
    """A started adapter of ``bus``'s group with these transaction limits
    (and any other :class:`AdapterSettings` given by name)."""
    transport = kafka_transport(bus.stack, bus.settings)
    svc = AdapterService(
        transport,
        PostgresExecutor(bus.stack.pg_dsn, pool_size=pool_size),
        bus=bus.settings,
        settings=AdapterSettings(
            group_id=bus.group_id,
            pool_size=pool_size,
            http_port=0,
            shutdown_grace=grace,
            tx_idle_timeout=idle,
            tx_max_lifetime=lifetime,
            tx_max_open=max_open,
            **settings,
        ),
    )
    bus._cleanups.append(transport.close)
    bus._cleanups.append(svc.stop)
    await svc.start(http=False)
    return svc


async def sessions_in(pg: asyncpg.Connection, tx_id: str) -> int:
    """Sessions that still carry transaction ``tx_id``'s marker."""
    return int(
        await pg.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            TRANSACTION_MARK + tx_id,
        )
    )


# -- the basics ------------------------------------------------------------------------


async def test_commit_makes_the_work_visible_and_rollback_leaves_nothing(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY, note text")

    sent = client.metrics.requests
    async with client.transaction() as tx:
        assert tx.state is TransactionState.OPEN
        assert tx.id == ""  # BEGIN travels with the first statement
        assert await tx.execute(f"INSERT INTO {table} VALUES ($1, $2)", 1, "one") == "INSERT 0 1"
        assert tx.id
        await tx.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(2, "two"), (3, "three")])
        # Seen inside, not outside, until COMMIT.
        assert await tx.fetchval(f"SELECT count(*) FROM {table}") == 3
        assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert await sessions_in(pg, tx.id) == 1
    assert tx.state is TransactionState.COMMITTED
    # BEGIN + INSERT, executemany, SELECT, COMMIT: four round trips.
    assert client.metrics.requests - sent == 4
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 3
    assert await client.transaction_status(tx.id) == "committed"
    assert await sessions_in(pg, tx.id) == 0

    tx2 = await client.begin(isolation="repeatable_read")
    await tx2.execute(f"DELETE FROM {table}")
    await tx2.execute(f"INSERT INTO {table} VALUES (9, 'nine')")
    row = await tx2.fetchrow(f"SELECT id, note FROM {table}")
    assert row is not None
    assert tuple(row) == (9, "nine")
    await tx2.rollback()
    assert tx2.state is TransactionState.ROLLED_BACK
    assert sorted(r[0] for r in await pg.fetch(f"SELECT id FROM {table}")) == [1, 2, 3]
    assert await client.transaction_status(tx2.id) == "rolled_back"

    # An exception in the block rolls back, and the exception is the caller's.
    tx3 = client.transaction()

    async def fail_inside() -> None:
        async with tx3:
            await tx3.execute(f"DELETE FROM {table}")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert tx3.state is TransactionState.ROLLED_BACK
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 3
    with pytest.raises(QueryBusError):
        await tx3.execute("SELECT 1")


async def test_a_failed_statement_aborts_the_transaction_until_rollback(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY")

    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")
    with pytest.raises(UniqueViolationError):
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
    # PostgreSQL's own answer, not hidden: 25P02 until the rollback.
    for _ in range(2):
        with pytest.raises(InFailedSQLTransactionError) as caught:
            await tx.fetchval("SELECT 1")
        assert caught.value.sqlstate == "25P02"
    await tx.rollback()
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0

    # COMMIT of an aborted transaction rolls it back and says so.
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (2)")
    with pytest.raises(UniqueViolationError):
        await tx.execute(f"INSERT INTO {table} VALUES (2)")
    with pytest.raises(InFailedSQLTransactionError):
        await tx.commit()
    assert tx.state is TransactionState.ROLLED_BACK
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
    assert await client.transaction_status(tx.id) == "rolled_back"


async def test_the_first_statement_travels_with_begin_and_fails_like_any_other(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    """BEGIN and the first statement are one request. When that statement
    fails, the transaction is open and aborted (25P02 until the rollback),
    exactly as when BEGIN went alone; when the adapter refuses it before
    running it, nothing is begun and the next statement begins."""
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY")
    await pg.execute(f"INSERT INTO {table} VALUES (1)")

    tx = client.transaction().defer()
    with pytest.raises(UniqueViolationError):
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
    assert tx.id
    assert tx.state is TransactionState.OPEN
    # Open and aborted on its adapter (the marker went with the abort, as
    # every setting made in the transaction does).
    with pytest.raises(InFailedSQLTransactionError):
        await tx.fetchval("SELECT 1")
    await tx.rollback()
    assert tx.state is TransactionState.ROLLED_BACK
    assert await client.transaction_status(tx.id) == "rolled_back"

    async with client.transaction() as tx2:
        with pytest.raises(RequestRejectedError):
            await tx2.execute("SELECT 1; SELECT 2")  # two statements: refused unrun
        assert tx2.id == ""
        assert await tx2.execute(f"INSERT INTO {table} VALUES (2)") == "INSERT 0 1"
        assert tx2.id
        assert await sessions_in(pg, tx2.id) == 1
    assert sorted(r[0] for r in await pg.fetch(f"SELECT id FROM {table}")) == [1, 2]


async def test_savepoints_roll_back_the_inner_work_and_keep_the_outer(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY")

    async with client.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1)")

        async def inner() -> None:
            async with tx.transaction():
                await tx.execute(f"INSERT INTO {table} VALUES (2)")
                await tx.execute(f"INSERT INTO {table} VALUES (1)")  # fails: back to the savepoint

        with pytest.raises(UniqueViolationError):
            await inner()
        async with tx.transaction():  # released: kept
            await tx.execute(f"INSERT INTO {table} VALUES (3)")
            with contextlib.suppress(ValueError):
                async with tx.transaction():
                    await tx.execute(f"INSERT INTO {table} VALUES (4)")
                    raise ValueError("undo 4 only")
        assert sorted(r[0] for r in await tx.fetch(f"SELECT id FROM {table}")) == [1, 3]
    assert sorted(r[0] for r in await pg.fetch(f"SELECT id FROM {table}")) == [1, 3]


async def test_batch_is_all_or_nothing_with_one_result_per_statement(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY, note text")

    results = await client.batch(
        [
            (f"INSERT INTO {table} VALUES ($1, $2)", (1, "a")),
            (f"INSERT INTO {table} VALUES ($1, $2) RETURNING id", (2, "b")),
            (f"SELECT id, note FROM {table} ORDER BY id", ()),
        ]
    )
    assert [r.command for r in results] == ["INSERT 0 1", "INSERT 0 1", "SELECT 2"]
    assert results[1].rows[0]["id"] == 2
    assert [tuple(r) for r in results[2].rows] == [(1, "a"), (2, "b")]

    with pytest.raises(UniqueViolationError):
        await client.batch(
            [
                (f"INSERT INTO {table} VALUES ($1, $2)", (3, "c")),
                (f"UPDATE {table} SET note = 'changed'", ()),
                (f"INSERT INTO {table} VALUES ($1, $2)", (1, "dup")),
            ]
        )
    rows = [tuple(r) for r in await pg.fetch(f"SELECT id, note FROM {table} ORDER BY id")]
    assert rows == [(1, "a"), (2, "b")]

    # Each statement is checked like a single request: nothing runs when one is refused.
    with pytest.raises(QueryBusError):
        await client.batch([(f"DELETE FROM {table}", ()), ("SET ROLE postgres", ())])
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 2


async def test_sync_client_transactions(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    table = await make_table("id int PRIMARY KEY")

    def work() -> list[int]:
        with SyncQueryClient(bus.settings, timeout=20.0) as db:
            with db.transaction() as tx:
                tx.execute(f"INSERT INTO {table} VALUES (1)")
                with contextlib.suppress(UniqueViolationError), tx.transaction():
                    tx.execute(f"INSERT INTO {table} VALUES (1)")
                tx.execute(f"INSERT INTO {table} VALUES (2)")
            tx2 = db.begin()
            tx2.execute(f"DELETE FROM {table}")
            tx2.rollback()
            db.batch([(f"INSERT INTO {table} VALUES ($1)", (3,))])
            total = db.run_in_transaction(
                lambda t: t.fetchval(f"SELECT sum(id) FROM {table}"), isolation="serializable"
            )
            return [int(total)]

    assert await asyncio.to_thread(work) == [6]
    assert sorted(r[0] for r in await pg.fetch(f"SELECT id FROM {table}")) == [1, 2, 3]


# -- limits --------------------------------------------------------------------------


async def test_idle_transactions_are_rolled_back_and_their_caller_told(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    adapter = await tx_adapter(bus, idle=0.5)
    client = await bus.client(timeout=20.0)
    table = await make_table("id int PRIMARY KEY")

    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")
    # The reaper rolls it back; the notice marks it lost on the caller's side.
    await wait_for(lambda: tx.state is TransactionState.LOST, 20, message="lost notice")
    assert adapter.executor.transactions is not None
    with pytest.raises(TransactionLostError, match="idle"):
        await tx.execute("SELECT 1")
    assert await sessions_in(pg, tx.id) == 0
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
    # A request that still reaches the adapter learns why.
    await tx.rollback()  # nothing to do; no error
    stale = client._new_request("SELECT 1", [], timeout=10.0, tx=tx.id)
    assert tx.info is not None
    with pytest.raises(TransactionLostError, match="idle"):
        await client._roundtrip(stale, timeout=10.0, topic=tx.info.inbox, partition=0)


async def test_max_open_transactions_refuses_more_with_a_retriable_error(bus: Bus) -> None:
    await tx_adapter(bus, pool_size=4, max_open=2)
    client = await bus.client(timeout=20.0)
    first, second = await client.begin(), await client.begin()
    with pytest.raises(TransactionBusyError) as caught:
        await client.begin()
    assert caught.value.retriable
    # Plain requests still have connections.
    assert await client.fetchval("SELECT 41 + 1") == 42
    await first.commit()
    third = await client.begin()
    await third.rollback()
    await second.rollback()


# -- COMMIT's outcome ---------------------------------------------------------------------


async def test_a_lost_commit_reply_is_settled_by_the_recorded_outcome(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    await tx_adapter(bus)
    client = await bus.client(timeout=20.0)
    client.tx_probe_interval = 0.2
    table = await make_table("id int PRIMARY KEY")

    # Raw protocol: COMMIT sent, its reply never read.
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")
    assert tx.info is not None
    commit = client._new_request(timeout=10.0, tx=tx.id, txop=TxOp.COMMIT)
    assert client._producer is not None
    await client._producer.send(tx.info.inbox, encode(commit), partition=0, headers=[])
    state = await wait_for(
        lambda: client.transaction_status(tx.id), 20, accept=lambda s: s != "open"
    )
    assert state == "committed"
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 1

    # The same for a transaction whose COMMIT fails: recorded as not committed.
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (2)")
    with pytest.raises(UniqueViolationError):
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
    commit = client._new_request(timeout=10.0, tx=tx.id, txop=TxOp.COMMIT)
    await client._producer.send(tx.info.inbox, encode(commit), partition=0, headers=[])
    state = await wait_for(
        lambda: client.transaction_status(tx.id), 20, accept=lambda s: s != "open"
    )
    assert state == "rolled_back"

    # Through the client: the COMMIT reply is dropped; commit() still returns
    # (it pings, learns the transaction is gone, asks STATUS: committed).
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (3)")
    assert client._bus is not None
    original = client._bus._on_reply
    dropped: list[str] = []

    def drop_commit_reply(record: Record) -> None:
        cid = (record.header(Headers.CORRELATION_ID) or b"").decode()
        if cid == tx._current and not dropped:
            dropped.append(cid)
            return
        original(record)

    client._bus._on_reply = drop_commit_reply  # type: ignore[method-assign]
    try:
        await tx.commit()
    finally:
        client._bus._on_reply = original  # type: ignore[method-assign]
    assert dropped, "the COMMIT reply was not dropped"
    assert tx.state is TransactionState.COMMITTED
    assert await pg.fetchval(f"SELECT count(*) FROM {table} WHERE id = 3") == 1


# -- identity -----------------------------------------------------------------------------


async def test_a_transaction_is_bound_to_the_identity_that_began_it(world: World) -> None:  # noqa: F811
    await world.start(pool_size=2)
    a = await world.client(world.token(sub="agent-a", tenant="a"))
    b = await world.client(world.token(sub="agent-b", tenant="b"))
    async with a.transaction() as tx:
        await tx.execute(f"INSERT INTO {world.items} (body) VALUES ('in tx')")
        # The statement ran as the token's role, with its claims, for the whole transaction.
        row = await tx.fetchrow(
            "SELECT current_user::text AS who, "
            "current_setting('request.jwt.claims', true)::json->>'tenant' AS tenant"
        )
        assert row is not None
        assert (row["who"], row["tenant"]) == (world.agent, "a")
        assert tx.info is not None
        for op in (None, TxOp.COMMIT, TxOp.PING):
            forged = b._new_request(
                "SELECT 1" if op is None else "", [], timeout=10.0, tx=tx.id, txop=op
            )
            with pytest.raises(PermissionDeniedError):
                await b._roundtrip(forged, timeout=10.0, topic=tx.info.inbox, partition=0)
        # A role escape inside the transaction rolls it all back.
        with pytest.raises(PermissionDeniedError):
            await tx.fetchval(f"SELECT {world.prefix}_become($1)", world.reader)
        with pytest.raises(TransactionLostError):
            await tx.fetchval("SELECT 1")
    assert tx.state is TransactionState.LOST
    assert await world.rows(f"SELECT body FROM {world.items}") == []

    async with a.transaction() as tx:
        await tx.execute(f"INSERT INTO {world.items} (body) VALUES ('kept')")
    assert await world.rows(f"SELECT tenant, body FROM {world.items}") == [("a", "kept")]


# -- adapters that stop or die ---------------------------------------------------------------


async def test_bank_transfers_keep_the_total_while_adapters_come_and_go(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    accounts, start_balance, workers, transfers = 8, 1000, 4, 15
    table = await make_table("id int PRIMARY KEY, balance bigint NOT NULL")
    log = await make_table("id bigserial PRIMARY KEY, src int, dst int, amount int")
    await pg.executemany(
        f"INSERT INTO {table} VALUES ($1, $2)", [(i, start_balance) for i in range(accounts)]
    )
    first = await tx_adapter(bus, pool_size=8, grace=2.0)
    await tx_adapter(bus, pool_size=8, grace=2.0)
    clients = [await bus.client(timeout=30.0) for _ in range(workers)]
    for c in clients:
        c.tx_probe_interval = 0.5
    done = [0] * workers
    attempts = [0] * workers

    async def transfer(n: int, src: int, dst: int, amount: int) -> None:
        async def move(tx: Transaction) -> None:
            attempts[n] += 1
            balance = await tx.fetchval(f"SELECT balance FROM {table} WHERE id = $1", src)
            await tx.execute(
                f"UPDATE {table} SET balance = $1 WHERE id = $2", balance - amount, src
            )
            await tx.execute(
                f"UPDATE {table} SET balance = balance + $1 WHERE id = $2", amount, dst
            )
            await tx.execute(
                f"INSERT INTO {log} (src, dst, amount) VALUES ($1, $2, $3)", src, dst, amount
            )

        await clients[n].run_in_transaction(move, retries=30, isolation="serializable")

    async def worker(n: int) -> None:
        rng = random.Random(n)
        for _ in range(transfers):
            src, dst = rng.sample(range(accounts), 2)
            await transfer(n, src, dst, rng.randint(1, 50))
            done[n] += 1

    tasks = [asyncio.create_task(worker(n)) for n in range(workers)]
    try:
        await wait_for(lambda: sum(done) >= workers * transfers // 3, 120, message="progress")
        third = await tx_adapter(bus, pool_size=8, grace=2.0)
        # One transaction surely open on the adapter about to stop (BEGIN lands
        # on either adapter: try until one is held by `first`).
        held = None
        for _ in range(30):
            tx = await clients[0].begin()
            await tx.execute(f"UPDATE {table} SET balance = balance WHERE id = 0")
            if tx.info is not None and tx.info.adapter == first.instance_id:
                held = tx
                break
            await tx.rollback()
        assert held is not None, "no BEGIN landed on the first adapter in 30 tries"
        await first.stop()  # the SIGTERM path: its open transactions roll back, callers told
        # Its caller was told: the next statement fails at once, nothing committed.
        with pytest.raises(TransactionLostError):
            await held.fetchval("SELECT 1")
        await wait_for(lambda: sum(done) >= 2 * workers * transfers // 3, 120, message="progress")
        assert third.started.is_set()
        await asyncio.wait_for(asyncio.gather(*tasks), 240)
    finally:
        for task in tasks:
            task.cancel()
    assert sum(done) == workers * transfers
    # The total never changes, and every committed transfer is in the log, once.
    assert await pg.fetchval(f"SELECT sum(balance) FROM {table}") == accounts * start_balance
    assert await pg.fetchval(f"SELECT count(*) FROM {log}") == workers * transfers
    # No update lost: each balance is the start plus what the log says moved.
    expected = {i: start_balance for i in range(accounts)}
    for src, dst, amount in await pg.fetch(f"SELECT src, dst, amount FROM {log}"):
        expected[src] -= amount
        expected[dst] += amount
    assert dict(await pg.fetch(f"SELECT id, balance FROM {table}")) == expected


async def test_kill_9_of_the_holding_adapter_loses_the_transaction_promptly(
    stack: Stack,
    bus: Bus,
    pg: asyncpg.Connection,
    make_table: Callable[..., Any],
    unique: UniqueNames,
    tmp_path: Path,
) -> None:
    table = await make_table("id int PRIMARY KEY")
    # The client first: the topics exist before the adapter joins its group.
    client = await bus.client(timeout=60.0)
    client.tx_probe_interval = 0.5
    env = cli_env(
        stack,
        bus.settings.topics.prefix,
        registry=False,
        QUERYBUS_GROUP_ID=bus.group_id,
        QUERYBUS_HTTP_PORT="0",
        QUERYBUS_POOL_SIZE="2",
        QUERYBUS_REPLICA_DSNS="",
        QUERYBUS_INSTANCE_ID=unique("doomed"),
        QUERYBUS_REQUEST_PARTITIONS=str(bus.settings.request_partitions),
        QUERYBUS_RESPONSE_PARTITIONS=str(bus.settings.response_partitions),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "serve", "--no-register", "--log-level", "WARNING",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert await client.fetchval("SELECT 1") == 1  # it serves (the group has joined)
        tx = await client.begin()
        assert tx.info is not None
        assert tx.info.adapter == env["QUERYBUS_INSTANCE_ID"]
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
        backend = await pg.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            TRANSACTION_MARK + tx.id,
        )
        assert backend is not None

        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        started = time.monotonic()
        with pytest.raises(TransactionLostError):
            # Hang guard only: the ping, not the 60 s timeout, must end it.
            await asyncio.wait_for(tx.execute(f"INSERT INTO {table} VALUES (2)"), 30)
        assert time.monotonic() - started < 30
        with pytest.raises(TransactionLostError):
            await tx.execute("SELECT 1")  # at once: known lost

        # PostgreSQL ends the dead adapter's sessions: none left in a transaction.
        await wait_for(
            lambda: pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 "
                "OR (application_name = $2 AND state <> 'idle')",
                backend,
                TRANSACTION_MARK + tx.id,
            ),
            60,
            accept=lambda n: n == 0,
            message="the dead adapter's session to end",
        )
        # Any adapter of the group answers STATUS (this one joins once the dead
        # member's session expired): the recorded outcome, final.
        await tx_adapter(bus)
        assert await client.transaction_status(tx.id, timeout=90.0) == "rolled_back"
        assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_caller_that_missed_the_stop_notice_still_learns_promptly(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    """An adapter that stops cleanly tells the callers of its open
    transactions; one that has not read that notice yet and sends its next
    statement must still get TransactionLostError within seconds — not hang
    on an inbox topic that was deleted under it (a send to a deleted topic
    waits for the whole timeout while the Kafka client loops on metadata)."""
    table = await make_table("id int PRIMARY KEY")
    adapter = await tx_adapter(bus, grace=1.0)
    client = await bus.client(timeout=60.0)
    client.tx_probe_interval = 0.5
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")

    original = client._bus._on_reply

    def miss_notices(record: Record) -> None:
        if record.header(Headers.TRANSACTION) is None:
            original(record)

    client._bus._on_reply = miss_notices  # type: ignore[method-assign]
    try:
        await adapter.stop()
        # A hang guard, far below the client's 60 s timeout: the ping to the
        # silent inbox must settle it.
        with pytest.raises(TransactionLostError):
            await asyncio.wait_for(tx.fetchval("SELECT 1"), 20.0)
    finally:
        client._bus._on_reply = original  # type: ignore[method-assign]
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_hostile_transaction_fields_get_typed_errors_and_change_nothing(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    """The fields a transaction adds to the protocol are input like any other:
    a savepoint name, an isolation level or a transaction id that smuggles SQL
    or a path, an operation without its transaction, a batch holding a refused
    statement — each gets a typed refusal, and the table and the open
    transaction are untouched."""
    table = await make_table("id int PRIMARY KEY")
    adapter = await tx_adapter(bus)
    transactions = adapter.executor.transactions
    assert transactions is not None
    client = await bus.client(timeout=20.0)
    tx = await client.begin()
    await tx.execute(f"INSERT INTO {table} VALUES (1)")
    assert tx.info is not None
    inbox = {"topic": tx.info.inbox, "partition": 0}
    drop = f"x; DROP TABLE {table}"
    do_block = f"DO $$ BEGIN DROP TABLE {table}; END $$"

    def req(sql: str = "", params: list[Any] | None = None, **fields: Any) -> Any:
        return client._new_request(sql, params or [], timeout=10.0, **fields)

    evil_level = TxOptions(isolation=f"serializable; DROP TABLE {table}")
    batch = [BatchItem(f"INSERT INTO {table} VALUES (2)", []), BatchItem("SET ROLE postgres", [])]
    hostile: list[tuple[str, Any, dict[str, Any]]] = [
        ("savepoint name", req(tx=tx.id, txop=TxOp.SAVEPOINT, savepoint=drop), inbox),
        ("rollback_to name", req(tx=tx.id, txop=TxOp.ROLLBACK_TO, savepoint="A\x00"), inbox),
        ("isolation level", req(txop=TxOp.BEGIN, txopts=evil_level), {}),
        ("transaction id", req("SELECT 1", tx="../" + "f" * 300), inbox),
        ("commit without a transaction", req(txop=TxOp.COMMIT), {}),
        ("status of a path", req(tx="'; DROP TABLE x; --", txop=TxOp.STATUS), {}),
        ("batch with a refused statement", req(batch=batch), {}),
        # BEGIN with its first statement: refused before anything begins.
        ("begin with a DO block", req(do_block, txop=TxOp.BEGIN), {}),
        ("begin with two statements", req(f"SELECT 1; DROP TABLE {table}", txop=TxOp.BEGIN), {}),
        ("begin with a bad value", req("SELECT $1::int", [{"$nope": 1}], txop=TxOp.BEGIN), {}),
        ("begin naming a transaction", req(f"DELETE FROM {table}", txop=TxOp.BEGIN, tx=tx.id), {}),
    ]
    answered = []
    for what, request, where in hostile:
        try:
            result, _ = await client._roundtrip(request, timeout=10.0, **where)
        except (RequestRejectedError, TransactionLostError, InterfaceError, ProtocolError):
            continue
        answered.append((what, result.state))
    assert not answered, answered
    assert transactions.open_count == 1  # only tx: no refused BEGIN began one
    # The open transaction still works and commits; nothing else happened.
    await tx.execute(f"INSERT INTO {table} VALUES (3)")
    await tx.commit()
    assert [r[0] for r in await pg.fetch(f"SELECT id FROM {table} ORDER BY id")] == [1, 3]
