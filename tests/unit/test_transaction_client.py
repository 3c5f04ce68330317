"""The client side of interactive transactions, on the in-memory bus.

A fake adapter (a reader of the request topic that answers BEGIN with a
``TxInfo``) stands for the real one, so the client's own logic is tested
alone: lost detection by ping, the adapter's unsolicited lost notice, the
retries of ``run_in_transaction``. The embedded mode (SQLite) refuses
transactions with a clear, typed error. Bounds are hang guards only.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from querybus.adapter.policy import Policy
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.client import QueryClient, Transaction, TransactionState
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import (
    FeatureNotSupportedError,
    RequestTimeoutError,
    TransactionBusyError,
    TransactionLostError,
)
from querybus.protocol import (
    Headers,
    QueryFailure,
    QueryRequest,
    QueryResult,
    TxInfo,
    TxOp,
    decode_request,
    encode,
)
from querybus.protocol.errors import error_info
from querybus.protocol.headers import reply_headers
from querybus.transport import TopicSpec, Transport, connect


@pytest.fixture
def bus() -> BusSettings:
    return BusSettings(
        bootstrap_servers=f"memory://tx-{uuid.uuid4().hex[:8]}",
        request_partitions=2,
        response_partitions=1,
    )


@pytest.fixture
async def transport(bus: BusSettings) -> AsyncIterator[Transport]:
    t = connect(bus.bootstrap_servers)
    try:
        yield t
    finally:
        await t.close()


Answer = Callable[[QueryRequest], Awaitable[QueryResult | QueryFailure | None]]


@contextlib.asynccontextmanager
async def fake_adapter(
    bus: BusSettings, transport: Transport, answer: Answer, *, inbox: str = "inbox"
) -> AsyncIterator[list[QueryRequest]]:
    """Answers every request of the request topic and of ``inbox`` with
    ``answer(request)`` (None: no reply); yields the requests seen."""
    topics = bus.topics
    await transport.create_topics(
        [
            TopicSpec(topics.request, partitions=bus.request_partitions),
            TopicSpec(topics.response, partitions=bus.response_partitions),
            TopicSpec(topics.error),
            TopicSpec(inbox),
        ]
    )
    seen: list[QueryRequest] = []
    producer = transport.producer()
    await producer.start()
    readers = [transport.partition_reader(topics.request), transport.partition_reader(inbox)]
    for reader in readers:
        await reader.start()

    async def serve() -> None:
        while True:
            for reader in readers:
                for record in await reader.getmany(timeout=0.01):
                    assert record.value is not None
                    request = decode_request(record.value)
                    seen.append(request)
                    reply = await answer(request)
                    if reply is not None:
                        await producer.send(
                            request.reply_to.topic,
                            encode(reply),
                            partition=request.reply_to.partition,
                            headers=reply_headers(request.id, request.client),
                        )

    task = asyncio.create_task(serve())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for reader in readers:
            await reader.stop()
        await producer.stop()


def began(request: QueryRequest, inbox: str = "inbox") -> QueryResult:
    """The reply to BEGIN (with the first statement's, ``SELECT 0``, when it came along)."""
    return QueryResult(
        id=request.id,
        command="SELECT 0" if request.sql else "BEGIN",
        tx=TxInfo(id=uuid.uuid4().hex, inbox=inbox, adapter="fake"),
        state="open",
    )


async def test_an_adapter_that_stops_answering_loses_the_transaction_promptly(
    bus: BusSettings, transport: Transport
) -> None:
    """BEGIN is answered, then nothing (the adapter died): the statement's
    wait ends at the first unanswered ping, not at its 60 s timeout."""

    async def answer(request: QueryRequest) -> QueryResult | None:
        return began(request) if request.txop is TxOp.BEGIN else None

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=60.0) as client,
    ):
        client.tx_probe_interval, client.tx_ping_timeout = 0.05, 0.2
        tx = await client.begin()
        with pytest.raises(TransactionLostError, match="did not answer a ping"):
            await asyncio.wait_for(tx.execute("SELECT 1"), 30)  # hang guard
        assert tx.state is TransactionState.LOST
        assert [r.txop for r in seen[:3]] == [TxOp.BEGIN, None, TxOp.PING]
        assert all(r.tx == tx.id for r in seen[1:])
        # Known lost: the next call raises at once, without a request.
        count = len(seen)
        with pytest.raises(TransactionLostError):
            await tx.fetchval("SELECT 1")
        assert len(seen) == count
        await tx.rollback()  # nothing to do; no error


async def test_a_lost_notice_fails_the_waiting_call_and_marks_the_transaction(
    bus: BusSettings, transport: Transport
) -> None:
    producer = transport.producer()
    await producer.start()

    async def answer(request: QueryRequest) -> QueryResult | None:
        if request.txop is TxOp.BEGIN:
            return began(request)
        if request.txop is TxOp.PING:
            return QueryResult(id=request.id, command="PING", state="open")
        assert request.tx is not None
        # The statement is never answered; the adapter says it rolled back instead.
        failure = QueryFailure(
            id=f"lost-{request.tx}",
            error=error_info(TransactionLostError("rolled back: the adapter stopped")),
        )
        await producer.send(
            request.reply_to.topic,
            encode(failure),
            partition=request.reply_to.partition,
            headers=[
                *reply_headers(failure.id, request.client),
                (Headers.TRANSACTION, request.tx.encode()),
            ],
        )
        return None

    try:
        async with (
            fake_adapter(bus, transport, answer),
            QueryClient(bus, transport=transport, timeout=60.0) as client,
        ):
            tx = await client.begin()
            with pytest.raises(TransactionLostError, match="adapter stopped"):
                await asyncio.wait_for(tx.execute("SELECT 1"), 30)
            assert tx.state is TransactionState.LOST
            with pytest.raises(TransactionLostError, match="adapter stopped"):
                await tx.execute("SELECT 1")
    finally:
        await producer.stop()


async def test_run_in_transaction_runs_the_function_again_on_retriable_errors(
    bus: BusSettings, transport: Transport
) -> None:
    begins = 0

    async def answer(request: QueryRequest) -> QueryResult | QueryFailure | None:
        nonlocal begins
        if request.txop is TxOp.BEGIN:
            begins += 1
            if begins == 1:  # busy first, then fine
                return QueryFailure(id=request.id, error=error_info(TransactionBusyError("busy")))
            return began(request)
        if request.txop in (TxOp.COMMIT, TxOp.ROLLBACK):
            return QueryResult(id=request.id, command=request.txop.value.upper())
        return QueryResult(id=request.id, command="SELECT 0")

    attempts = 0
    ids: list[str] = []

    async def work(tx: Transaction) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise TransactionLostError("first attempt lost")
        # BEGIN travels with this statement: busy on the second attempt.
        await tx.execute("SELECT 1")
        ids.append(tx.id)
        return "done"

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        assert await client.run_in_transaction(work, retries=3) == "done"
        assert attempts == 3
        assert len(ids) == 1
        assert ids[0]
        assert begins == 2
        assert all(r.sql == "SELECT 1" for r in seen if r.txop is TxOp.BEGIN)
        # The first two attempts began nothing: nothing to roll back.
        assert [r.txop for r in seen].count(TxOp.COMMIT) == 1
        assert [r.txop for r in seen].count(TxOp.ROLLBACK) == 0
        with pytest.raises(TransactionLostError):
            await client.run_in_transaction(work_always_lost, retries=1)


async def work_always_lost(tx: Transaction) -> None:
    raise TransactionLostError("always")


async def test_begin_travels_with_the_first_statement(
    bus: BusSettings, transport: Transport
) -> None:
    """``async with`` sends nothing until the first statement, which carries
    BEGIN (one round trip); the rest go to the inbox; an empty one sends
    nothing at all."""

    async def answer(request: QueryRequest) -> QueryResult | None:
        if request.txop is TxOp.BEGIN:
            return began(request)
        return QueryResult(id=request.id, command=(request.txop or "SELECT 1").upper())

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        async with client.transaction(isolation="serializable") as tx:
            assert tx.state is TransactionState.OPEN
            assert tx.id == ""
            assert seen == []
            await tx.execute("SELECT 1")
            assert tx.id
            await tx.execute("SELECT 2")
        assert [(r.txop, r.sql, r.tx) for r in seen] == [
            (TxOp.BEGIN, "SELECT 1", None),
            (None, "SELECT 2", tx.id),
            (TxOp.COMMIT, "", tx.id),
        ]
        assert seen[0].txopts is not None
        assert seen[0].txopts.isolation == "serializable"
        assert tx.state is TransactionState.COMMITTED

        async with client.transaction() as empty:
            pass
        with pytest.raises(RuntimeError):
            async with client.transaction() as rolled_back:
                raise RuntimeError("nothing ran")
        assert len(seen) == 3  # neither sent anything
        assert empty.state is TransactionState.COMMITTED
        assert rolled_back.state is TransactionState.ROLLED_BACK

        # A savepoint first: BEGIN alone, then the savepoint.
        async with client.transaction() as tx2, tx2.transaction():
            pass
        assert [r.txop for r in seen[3:]] == [
            TxOp.BEGIN, TxOp.SAVEPOINT, TxOp.RELEASE, TxOp.COMMIT,
        ]  # fmt: skip
        assert seen[3].sql == ""


async def test_a_failed_first_statement_leaves_the_transaction_open_to_roll_back(
    bus: BusSettings, transport: Transport
) -> None:
    """The statement failed after BEGIN: the failure names the transaction
    (open, aborted), so its ROLLBACK goes to the adapter that holds it."""

    async def answer(request: QueryRequest) -> QueryResult | QueryFailure | None:
        if request.txop is TxOp.BEGIN:
            failure = QueryFailure(
                id=request.id, error=error_info(FeatureNotSupportedError("no", sqlstate="0A000"))
            )
            failure.tx = TxInfo(id="a" * 32, inbox="inbox", adapter="fake")
            return failure
        return QueryResult(id=request.id, command=(request.txop or "").upper())

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        with pytest.raises(FeatureNotSupportedError):
            async with client.transaction() as tx:
                await tx.execute("SELECT 1")
        assert tx.id == "a" * 32
        assert [(r.txop, r.tx) for r in seen] == [(TxOp.BEGIN, None), (TxOp.ROLLBACK, tx.id)]
        assert tx.state is TransactionState.ROLLED_BACK


async def test_an_unanswered_first_statement_loses_the_transaction(
    bus: BusSettings, transport: Transport
) -> None:
    """No reply to BEGIN and its statement: whether it began is unknown and
    it can never be found again, so nothing more may run in it."""

    async def answer(request: QueryRequest) -> None:
        return None

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        tx = client.transaction().defer()
        with pytest.raises(RequestTimeoutError):
            await tx.execute("SELECT 1", timeout=0.3)
        assert tx.state is TransactionState.LOST
        with pytest.raises(TransactionLostError):
            await tx.execute("SELECT 2")
        assert len(seen) == 1


async def test_an_adapter_from_before_statements_with_begin_still_runs_the_statement(
    bus: BusSettings, transport: Transport
) -> None:
    """An older adapter answers BEGIN alone and ignores the statement that
    came with it: the client notices (the reply's command is BEGIN) and
    sends the statement to the inbox."""

    async def answer(request: QueryRequest) -> QueryResult | None:
        if request.txop is TxOp.BEGIN:
            reply = began(request)
            reply.command = "BEGIN"
            return reply
        return QueryResult(id=request.id, command=(request.txop or "SELECT 1").upper())

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        async with client.transaction() as tx:
            result = await tx.execute("SELECT 1")
        assert result == "SELECT 1"
        assert [(r.txop, r.sql) for r in seen] == [
            (TxOp.BEGIN, "SELECT 1"),
            (None, "SELECT 1"),
            (TxOp.COMMIT, ""),
        ]


async def test_the_embedded_mode_refuses_transactions_with_a_typed_error(
    bus: BusSettings, transport: Transport
) -> None:
    svc = AdapterService(
        transport,
        SqliteExecutor(":memory:"),
        bus=bus,
        settings=AdapterSettings(group_id="embedded", pool_size=1),
        policy=Policy(allow_ddl=True),
    )
    await svc.start(http=False)
    try:
        async with QueryClient(bus, transport=transport, timeout=10.0) as client:
            with pytest.raises(FeatureNotSupportedError, match="transactions"):
                await client.begin()
            with pytest.raises(FeatureNotSupportedError):
                await client.batch([("SELECT 1", ())])
            assert await client.fetchval("SELECT 1") == 1  # plain requests as ever
    finally:
        await svc.stop()
