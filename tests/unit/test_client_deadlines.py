"""The client's request deadlines on the bus: one heap and one timer for all
waiting requests instead of a timeout per request (issue 11). A shorter
timeout after longer ones still ends on time; entries of answered requests
do not pile up; a request that could not be delivered fails at once instead
of waiting out its timeout. On the in-memory bus; bounds are hang guards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.helpers import wait_for
from tests.unit.test_transaction_client import (  # noqa: F401  (fixtures)
    bus,
    fake_adapter,
    transport,
)

from querybus.client import QueryClient
from querybus.config import BusSettings
from querybus.errors import BrokerUnavailableError, RequestTimeoutError
from querybus.protocol import QueryRequest, QueryResult
from querybus.transport import Transport


async def test_a_shorter_timeout_after_longer_ones_ends_on_time(
    bus: BusSettings,  # noqa: F811
    transport: Transport,  # noqa: F811
) -> None:
    async with QueryClient(bus, transport=transport, timeout=60.0) as client:
        long_waits = [asyncio.create_task(client.fetchval("SELECT 1")) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(RequestTimeoutError, match=r"no reply within 0\.2 s"):
            await asyncio.wait_for(client.fetchval("SELECT 2", timeout=0.2), 30)  # hang guard
        assert not any(t.done() for t in long_waits)  # theirs is still far away
        for t in long_waits:
            t.cancel()
        await asyncio.gather(*long_waits, return_exceptions=True)
        assert client.metrics.timeouts == 1


async def test_answered_requests_leave_no_deadline_behind(
    bus: BusSettings,  # noqa: F811
    transport: Transport,  # noqa: F811
) -> None:
    async def answer(request: QueryRequest) -> QueryResult:
        return QueryResult(id=request.id, command="SELECT 1", rowcount=0)

    async with (
        fake_adapter(bus, transport, answer),
        QueryClient(bus, transport=transport, timeout=0.5) as client,
    ):
        for _ in range(50):
            assert await client.execute("SELECT 1") == "SELECT 1"
        backend: Any = client._bus
        assert backend._pending == {}
        # Their entries go when the timer reaches them; nothing is left after.
        deadlines = backend._deadlines
        assert deadlines._live == 0
        await wait_for(lambda: not deadlines._heap, 10, message="the deadlines purged")
        assert deadlines._timer is None
        assert client.metrics.timeouts == 0


class _Undeliverable:
    """A producer whose records are buffered but never delivered."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def start_send(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(
            0.01, ack.set_exception, BrokerUnavailableError("delivery failed (test)")
        )
        return ack


async def test_an_undelivered_request_fails_at_once_not_at_its_timeout(
    bus: BusSettings,  # noqa: F811
    transport: Transport,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produce = transport.producer
    monkeypatch.setattr(transport, "producer", lambda: _Undeliverable(produce()))
    async with QueryClient(bus, transport=transport, timeout=60.0) as client:
        with pytest.raises(BrokerUnavailableError, match="delivery failed"):
            await asyncio.wait_for(client.fetchval("SELECT 1"), 30)  # hang guard


class _Stuck(_Undeliverable):
    """A producer whose send never gets its record into the buffer (no
    metadata, a full buffer)."""

    async def start_send(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        await asyncio.Event().wait()


async def test_the_timeout_also_ends_a_send_that_cannot_buffer_its_record(
    bus: BusSettings,  # noqa: F811
    transport: Transport,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    produce = transport.producer
    monkeypatch.setattr(transport, "producer", lambda: _Stuck(produce()))
    async with QueryClient(bus, transport=transport, timeout=60.0) as client:
        with pytest.raises(RequestTimeoutError, match=r"no reply within 0\.2 s"):
            await asyncio.wait_for(client.fetchval("SELECT 1", timeout=0.2), 30)  # hang guard
        assert client._bus is not None
        assert client._bus._pending == {}
