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
    return QueryResult(
        id=request.id,
        command="BEGIN",
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

    calls: list[str] = []

    async def work(tx: Transaction) -> str:
        calls.append(tx.id)
        if len(calls) == 1:
            raise TransactionLostError("first attempt lost")
        await tx.execute("SELECT 1")
        return "done"

    async with (
        fake_adapter(bus, transport, answer) as seen,
        QueryClient(bus, transport=transport, timeout=10.0) as client,
    ):
        assert await client.run_in_transaction(work, retries=3) == "done"
        assert len(calls) == 2
        assert calls[0] != calls[1]
        assert begins == 3
        assert [r.txop for r in seen].count(TxOp.COMMIT) == 1
        assert [r.txop for r in seen].count(TxOp.ROLLBACK) == 1
        with pytest.raises(TransactionLostError):
            await client.run_in_transaction(work_always_lost, retries=1)


async def work_always_lost(tx: Transaction) -> None:
    raise TransactionLostError("always")


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
