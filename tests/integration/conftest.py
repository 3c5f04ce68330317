"""Fixtures of the core end-to-end tests: a real adapter on real Kafka and PostgreSQL.

Every test gets its own topic prefix and consumer group, so tests never see each
other's traffic, and every client, adapter and transport is stopped afterwards
(``filterwarnings=error`` turns a forgotten one into a failure).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
from tests.stack import Stack, UniqueNames

from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.config import AdapterSettings, BusSettings, TopicNames
from querybus.database.executor import PostgresExecutor
from querybus.transport import Transport, connect


def kafka_transport(stack: Stack, bus: BusSettings) -> Transport:
    # Members learn of a rebalance at their next heartbeat: keep it short so the
    # group tests are quick (6 s is the broker's minimum session timeout).
    return connect(
        stack.kafka_bootstrap,
        client_id="querybus-it",
        max_message_bytes=bus.max_message_bytes,
        heartbeat_interval=0.2,
        session_timeout=6.0,
    )


@dataclass
class Bus:
    """One test's private bus: settings with a unique prefix and group."""

    settings: BusSettings
    group_id: str
    stack: Stack

    async def adapter(
        self, *, pool_size: int = 4, http: bool = False, shutdown_grace: float = 10.0
    ) -> AdapterService:
        """A started adapter of this test's group (stopped by the ``bus`` fixture)."""
        transport = kafka_transport(self.stack, self.settings)
        svc = AdapterService(
            transport,
            PostgresExecutor(self.stack.pg_dsn, pool_size=pool_size),
            bus=self.settings,
            settings=AdapterSettings(
                group_id=self.group_id,
                pool_size=pool_size,
                http_port=0,
                shutdown_grace=shutdown_grace,
            ),
        )
        self._cleanups.append(transport.close)
        self._cleanups.append(svc.stop)
        await svc.start(http=http)
        return svc

    async def client(self, **kwargs: object) -> QueryClient:
        """A started client of this bus (stopped by the ``bus`` fixture)."""
        client = QueryClient(self.settings, **kwargs)  # type: ignore[arg-type]
        self._cleanups.append(client.stop)
        await client.start()
        return client

    async def transport(self) -> Transport:
        """A raw transport of this bus (closed by the ``bus`` fixture)."""
        transport = kafka_transport(self.stack, self.settings)
        self._cleanups.append(transport.close)
        return transport

    def __post_init__(self) -> None:
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    async def close(self) -> None:
        # Last started, first stopped: clients, then adapters, then transports.
        while self._cleanups:
            with contextlib.suppress(Exception):
                await self._cleanups.pop()()


@pytest.fixture
async def bus(stack: Stack, unique: UniqueNames) -> AsyncIterator[Bus]:
    """A private bus (unique topic prefix and consumer group) for one test."""
    settings = BusSettings(
        bootstrap_servers=stack.kafka_bootstrap,
        topics=TopicNames(prefix=unique("e2e") + "."),
        request_partitions=8,
        response_partitions=4,
    )
    b = Bus(settings, unique("group"), stack)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def adapter(bus: Bus) -> AdapterService:
    """A started adapter (with /health and /metrics) serving this test's bus."""
    return await bus.adapter(http=True)


@pytest.fixture
async def client(bus: Bus, adapter: AdapterService) -> QueryClient:
    """A started client of this test's bus, with its adapter running."""
    return await bus.client()


@pytest.fixture
async def pg(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the database as the cluster's superuser, to set up
    and check behind the bus's back (adapters log in as a non-superuser role)."""
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def make_table(
    pg: asyncpg.Connection, unique: UniqueNames
) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """``await make_table("id int PRIMARY KEY, note text")`` → a fresh table's name
    (dropped after the test)."""
    made: list[str] = []

    async def make(columns: str) -> str:
        name = unique.ident("e2e")
        await pg.execute(f"CREATE TABLE {name} ({columns})")
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            await pg.execute(f"DROP TABLE IF EXISTS {name}")
