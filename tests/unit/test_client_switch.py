"""The migration switch without a database: settings, the backend seam, and the
fallback's switch to direct and back.

The bus is the in-memory one with an adapter on SQLite; a wrapper makes it
"unreachable" on demand (sends and metadata requests raise
BrokerUnavailableError). The direct backend is a stand-in that answers every
request itself, so which backend answered is visible in the result. The real
direct backend runs in ``tests/integration/test_client_modes.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from tests.helpers import wait_for

import querybus.client.client as client_module
from querybus.adapter.policy import Policy
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.client import QueryClient
from querybus.config import AdapterSettings, BusSettings, ClientSettings
from querybus.errors import BrokerUnavailableError, ConfigurationError, InterfaceError
from querybus.protocol import Column, QueryRequest, QueryResult, ReplyAddress
from querybus.protocol.values import decode_value, encode_value, settle_value
from querybus.transport import Producer, Transport, connect

# -- settings -------------------------------------------------------------------------------

PG = {"POSTGRES_HOST": "db.example", "POSTGRES_USER": "app", "POSTGRES_PASSWORD": "s3cret"}


def test_settings_from_the_environment() -> None:
    assert ClientSettings.from_env({}) == ClientSettings()
    direct = ClientSettings.from_env({"QUERYBUS_MODE": "Direct", **PG})
    assert direct.mode == "direct"
    assert direct.dsn == "postgresql://app:s3cret@db.example:5432/postgres"
    assert "s3cret" not in repr(direct)
    fallback = ClientSettings.from_env({"QUERYBUS_FALLBACK": "direct", **PG})
    assert (fallback.mode, fallback.fallback) == ("bus", "direct")
    assert fallback.dsn is not None
    # No DSN is read when nothing may run directly.
    assert ClientSettings.from_env({"QUERYBUS_MODE": "bus", **PG}).dsn is None
    assert direct.pool_size == 10
    sized = ClientSettings.from_env(
        {"QUERYBUS_MODE": "direct", "QUERYBUS_DIRECT_POOL_SIZE": "3", **PG}
    )
    assert sized.pool_size == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QUERYBUS_MODE": "kafka"}, "mode must be one of bus, direct"),
        ({"QUERYBUS_FALLBACK": "sqlite"}, "fallback must be None or one of direct"),
        ({"QUERYBUS_DIRECT_POOL_SIZE": "0"}, "QUERYBUS_DIRECT_POOL_SIZE must be a positive"),
    ],
)
def test_unknown_modes_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClientSettings.from_env(env)


def test_direct_mode_needs_a_dsn() -> None:
    with pytest.raises(ConfigurationError, match="direct mode needs a PostgreSQL DSN"):
        QueryClient("127.0.0.1:9092", mode="direct")
    with pytest.raises(ConfigurationError, match="fallback to direct needs"):
        QueryClient("127.0.0.1:9092", fallback="direct")


def test_constructor_arguments_override_the_settings() -> None:
    settings = ClientSettings(mode="direct", dsn="postgresql://a@b/c")
    client = QueryClient(settings, mode="bus")
    assert client.mode == "bus"
    assert client.config.dsn == "postgresql://a@b/c"  # kept, unused


# -- values as direct mode hands them over ------------------------------------------------------


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        1,
        True,
        None,
        1.5,
        float("inf"),
        "x",
        _Text("sub"),
        (1, "a"),
        [[1, 2], [3, None]],
        {"k": [1, {"n": None}]},
        bytearray(b"ab"),
        uuid.UUID(int=7),
    ],
    ids=repr,
)
def test_settled_values_equal_a_trip_over_the_wire(value: Any) -> None:
    import msgspec

    tripped = decode_value(msgspec.json.decode(msgspec.json.encode(encode_value(value))))
    settled = settle_value(value)
    assert settled == tripped
    assert type(settled) is type(tripped)


# -- the fallback ---------------------------------------------------------------------------------


class _FlakyProducer:
    def __init__(self, owner: FlakyTransport, inner: Producer) -> None:
        self._owner = owner
        self._inner = inner

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        if self._owner.down:
            raise BrokerUnavailableError("the broker is down (test)")
        return await self._inner.send(topic, value, **kwargs)

    async def start_send(self, topic: str, value: bytes | None, **kwargs: Any) -> Any:
        if self._owner.down:
            raise BrokerUnavailableError("the broker is down (test)")
        return await self._inner.start_send(topic, value, **kwargs)


class FlakyTransport:
    """The in-memory transport, unreachable while ``down`` is set."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create_topics(self, specs: Sequence[Any]) -> None:
        if self.down:
            raise BrokerUnavailableError("the broker is down (test)")
        await self.inner.create_topics(specs)

    async def partition_count(self, topic: str) -> int:
        if self.down:
            raise BrokerUnavailableError("the broker is down (test)")
        return await self.inner.partition_count(topic)

    def producer(self) -> Any:
        return _FlakyProducer(self, self.inner.producer())


class FakeDirect:
    """Answers every request with one row, ``'direct'``."""

    name = "direct"
    decoded_rows = True
    keeps_deadlines = False
    reply_to = ReplyAddress("direct", 0)

    def __init__(self, *_: Any, **__: Any) -> None:
        self.started = 0
        self.seen: list[QueryRequest] = []

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        pass

    async def probe(self, timeout: float) -> None:
        pass

    def fail_waiting(self, correlation_id: str, exc: BaseException) -> None:
        pass

    async def exchange(self, request: QueryRequest, data: bytes, token: Any, **_: Any) -> Any:
        self.seen.append(request)
        return QueryResult(
            id=request.id, command="SELECT 1", columns=[Column("v", "text")], rows=[["direct"]]
        )


@pytest.fixture
def bus() -> BusSettings:
    return BusSettings(
        bootstrap_servers=f"memory://modes-{uuid.uuid4().hex[:8]}",
        request_partitions=1,
        response_partitions=1,
    )


@pytest.fixture
async def flaky(bus: BusSettings) -> AsyncIterator[FlakyTransport]:
    inner = connect(bus.bootstrap_servers)
    svc = AdapterService(
        inner,
        SqliteExecutor(":memory:"),
        bus=bus,
        settings=AdapterSettings(group_id="modes", pool_size=2),
        policy=Policy(),
    )
    await svc.start(http=False)
    try:
        yield FlakyTransport(inner)
    finally:
        await svc.stop()
        await inner.close()


@pytest.fixture
def fake_direct(monkeypatch: pytest.MonkeyPatch) -> FakeDirect:
    fake = FakeDirect()
    monkeypatch.setattr(client_module, "load_direct_backend", lambda *a, **k: fake)
    return fake


def falling_back_client(bus: BusSettings, flaky: FlakyTransport) -> QueryClient:
    client = QueryClient(
        bus,
        transport=flaky,  # type: ignore[arg-type]
        timeout=10.0,
        fallback="direct",
        dsn="postgresql://unused",
    )
    client.fallback_probe_interval = 0.01
    return client


async def test_requests_fall_back_while_the_bus_is_down_and_come_back(
    bus: BusSettings, flaky: FlakyTransport, fake_direct: FakeDirect
) -> None:
    client = falling_back_client(bus, flaky)
    async with client:
        assert await client.fetchval("SELECT 'bus' AS v") == "bus"
        assert fake_direct.started == 0  # nothing opened before it is needed
        flaky.down = True
        assert await client.fetchval("SELECT 'bus' AS v") == "direct"
        assert client.falling_back
        assert await client.fetchval("SELECT 'bus' AS v") == "direct"
        assert (client.metrics.fallbacks, client.metrics.fallback_outages) == (2, 1)
        flaky.down = False
        await wait_for(lambda: not client.falling_back, message="back on the bus")
        assert await client.fetchval("SELECT 'bus' AS v") == "bus"
        assert client.metrics.fallbacks == 2
        # A second outage is a second one.
        flaky.down = True
        assert await client.fetchval("SELECT 1") == "direct"
        assert client.metrics.fallback_outages == 2
        assert fake_direct.started == 1  # the pool stays open between outages


async def test_a_bus_down_at_start_falls_back_and_is_started_later(
    bus: BusSettings, flaky: FlakyTransport, fake_direct: FakeDirect
) -> None:
    flaky.down = True
    client = falling_back_client(bus, flaky)
    async with client:
        assert client.falling_back
        with pytest.raises(InterfaceError):
            _ = client.reply_address  # not connected to the bus
        assert await client.fetchval("SELECT 'bus' AS v") == "direct"
        flaky.down = False
        await wait_for(lambda: not client.falling_back, message="back on the bus")
        assert await client.fetchval("SELECT 'bus' AS v") == "bus"
        assert client.reply_address.topic == bus.topics.response


async def test_without_a_fallback_an_unreachable_bus_raises(
    bus: BusSettings, flaky: FlakyTransport
) -> None:
    async with QueryClient(bus, transport=flaky, timeout=10.0) as client:  # type: ignore[arg-type]
        flaky.down = True
        with pytest.raises(BrokerUnavailableError):
            await client.fetchval("SELECT 1")
        assert client.metrics.fallbacks == 0
