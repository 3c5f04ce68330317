"""Outages: the database or the broker goes away and comes back.

Non-negotiable: bad input gets a clear, typed error and nothing is lost,
including during broker or database outages; the adapter never dies.

Both tests stop and restart PRIVATE services (tests/integration/private_services.py):
the shared stack is never touched.

* Database outage: requests get a prompt, typed, retriable ``OperationalError``
  reply (never a timeout), ``/health`` says the database is failing while
  ``/health/live`` stays 200, and once the server is back the same adapter
  serves again; a write refused during the outage is inserted exactly once by
  its retry.
* Broker outage: a request sent while the broker is down fails with a typed
  ``TransportError`` within its timeout; once the broker is back the same client
  and adapter work again, and every request published before the stop (answered,
  running, or still unread in the log) gets exactly its own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from tests.helpers import collect, wait_for
from tests.integration.pg_cluster import tail
from tests.integration.private_services import PrivateKafka, private_kafka, private_postgres
from tests.stack import Stack, UniqueNames

from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.config import AdapterSettings, BusSettings, TopicNames
from querybus.database.executor import PostgresExecutor
from querybus.errors import (
    BrokerUnavailableError,
    OperationalError,
    QueryBusError,
    RequestTimeoutError,
    TransportError,
)
from querybus.transport import Transport, connect


def _transport(bootstrap: str, name: str, *, request_timeout: float = 30.0) -> Transport:
    # 6 s is the broker's minimum session timeout; short heartbeats make the
    # group notice a restarted coordinator quickly.
    return connect(
        bootstrap,
        client_id=name,
        request_timeout=request_timeout,
        session_timeout=6.0,
        heartbeat_interval=0.5,
    )


@contextlib.asynccontextmanager
async def _closing(*resources: object) -> AsyncIterator[None]:
    """Stop clients, then adapters, then close transports, whatever happened."""
    try:
        yield
    finally:
        for r in resources:
            closer = getattr(r, "stop", None) or r.close  # type: ignore[attr-defined]
            # Bounded: after a failure with the broker still down, aiokafka
            # could wait for its coordinator forever.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closer(), 30)


async def _sessions_running(dsn: str, sql: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", sql
        )
    finally:
        await conn.close()
    return bool(n)


def _alive(adapter: AdapterService) -> bool:
    """The adapter's consume loop still runs (what /health/live reports)."""
    return adapter._loop_task is not None and not adapter._loop_task.done()


def _in_flight(adapter: AdapterService) -> float:
    return adapter.metrics.registry.get_sample_value("querybus_in_flight") or 0


# -- 1. database outage -------------------------------------------------------------------


async def test_database_outage_gets_typed_errors_and_the_adapter_recovers(
    stack: Stack, unique: UniqueNames
) -> None:
    with private_postgres() as pg:
        table = unique.ident("outage")
        conn = await asyncpg.connect(pg.dsn)
        try:
            # No key: a write that ran twice would show as two rows.
            await conn.execute(f"CREATE TABLE {table} (id int, note text)")
        finally:
            await conn.close()
        await pg.add_adapter_role()

        bus = BusSettings(
            bootstrap_servers=stack.kafka_bootstrap,
            topics=TopicNames(prefix=unique("outage-db") + "."),
            request_partitions=2,
            response_partitions=1,
        )
        transport = _transport(stack.kafka_bootstrap, "outage-db-adapter")
        adapter = AdapterService(
            transport,
            PostgresExecutor(pg.adapter_dsn, pool_size=2),
            bus=bus,
            settings=AdapterSettings(
                group_id=unique("group"), pool_size=2, http_port=0, shutdown_grace=5.0
            ),
        )
        client = QueryClient(bus, timeout=30.0)
        async with _closing(client, adapter, transport):
            await adapter.start(http=True)
            await client.start()
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{adapter.http_port}", timeout=10)
            async with http:
                # Up: queries and writes work, the adapter is ready.
                assert await client.fetchval("SELECT 1") == 1
                assert await client.execute(f"INSERT INTO {table} VALUES (1, 'before')") == (
                    "INSERT 0 1"
                )
                assert (await http.get("/health")).status_code == 200

                # A statement running when the server stops gets an error reply at once.
                running = asyncio.create_task(client.fetchval("SELECT pg_sleep(25)"))
                await wait_for(
                    lambda: _sessions_running(pg.dsn, "SELECT pg_sleep(25)"),
                    20,
                    message="the statement runs on the server",
                )
                stopped_at = time.monotonic()
                await asyncio.to_thread(pg.stop)
                with pytest.raises(OperationalError) as caught:
                    await running
                assert caught.value.retriable
                assert time.monotonic() - stopped_at < 5

                # Down: every request gets a prompt, typed, retriable error; never a timeout.
                for _ in range(3):
                    t0 = time.monotonic()
                    with pytest.raises(OperationalError) as caught:
                        await client.fetchval("SELECT 1")
                    assert not isinstance(caught.value, RequestTimeoutError)
                    assert caught.value.retriable
                    assert time.monotonic() - t0 < 5, "the error reply must be prompt"

                # A write during the outage: the caller is told it did not happen.
                key = unique("idem")
                insert = f"INSERT INTO {table} VALUES (2, 'during the outage')"
                t0 = time.monotonic()
                with pytest.raises(OperationalError) as caught:
                    await client.execute(insert, idempotency_key=key)
                assert caught.value.retriable
                assert time.monotonic() - t0 < 5

                # The adapter is alive and says the database is failing.
                assert (await http.get("/health/live")).status_code == 200
                health = await http.get("/health")
                assert health.status_code == 503
                checks = health.json()["checks"]
                assert checks["kafka"] == "ok"
                assert checks["database"].startswith("failing"), checks

                # Back (same port, same data): the same adapter serves again.
                await asyncio.to_thread(pg.start)

                async def serves() -> bool:
                    try:
                        return bool(await client.fetchval("SELECT 1", timeout=5) == 1)
                    except OperationalError:
                        return False

                await wait_for(serves, 30, interval=0.2, message="queries succeed again")
                assert adapter.started.is_set()
                assert (await http.get("/health")).status_code == 200

                # The caller retries its refused write: exactly one row.
                result = await client.request(insert, idempotency_key=key)
                assert result.command == "INSERT 0 1"
                assert result.served_by == adapter.instance_id
                rows = await client.fetch(f"SELECT id, note FROM {table} ORDER BY id")
                assert [tuple(r) for r in rows] == [(1, "before"), (2, "during the outage")]


# -- 2. broker outage -----------------------------------------------------------------------


async def _published(kafka: PrivateKafka, topic: str, count: int) -> None:
    """Wait until ``count`` records are in ``topic`` (acknowledged by the broker)."""
    transport = _transport(kafka.bootstrap, "outage-probe", request_timeout=5.0)
    try:
        reader = transport.partition_reader(topic, start_at="beginning")
        await reader.start()
        try:
            await collect(reader, count, timeout=20)
        finally:
            await reader.stop()
    finally:
        await transport.close()


async def test_broker_outage_fails_fast_loses_nothing_and_recovers(
    stack: Stack, unique: UniqueNames
) -> None:
    table = unique.ident("outage")
    pg = await asyncpg.connect(stack.admin_dsn)
    await pg.execute(f"CREATE TABLE {table} (id int)")
    batch: list[asyncio.Task[int]] = []
    try:
        with private_kafka() as kafka:
            await kafka.wait_ready()
            bus = BusSettings(
                bootstrap_servers=kafka.bootstrap,
                topics=TopicNames(prefix=unique("outage-kafka") + "."),
                request_partitions=2,
                response_partitions=1,
            )
            adapter_transport = _transport(kafka.bootstrap, "outage-adapter", request_timeout=3)
            client_transport = _transport(kafka.bootstrap, "outage-client", request_timeout=3)
            # One connection: the adapter runs one statement at a time and holds
            # at most 4 records, so a batch is partly answered, partly running or
            # waiting in the adapter, and partly still unread in the log.
            adapter = AdapterService(
                adapter_transport,
                PostgresExecutor(stack.pg_dsn, pool_size=1),
                bus=bus,
                settings=AdapterSettings(
                    group_id=unique("group"), pool_size=1, http_port=0, shutdown_grace=5.0
                ),
            )
            client = QueryClient(bus, transport=client_transport, timeout=3.0)
            async with _closing(client, adapter, adapter_transport, client_transport):
                await adapter.start(http=False)
                await client.start()
                assert await client.fetchval("SELECT 1") == 1

                # N requests with a long timeout; the broker stops while some are in flight.
                n = 10
                batch.extend(
                    asyncio.create_task(
                        client.fetchval("SELECT $1::int FROM pg_sleep(0.4)", i, timeout=90)
                    )
                    for i in range(n)
                )
                await _published(kafka, bus.topics.request, n + 1)  # + the SELECT 1
                await wait_for(
                    lambda: any(t.done() for t in batch), 20, message="a first batch reply"
                )
                await asyncio.to_thread(kafka.stop)
                # Some replies are out; the adapter holds some (running or waiting for
                # the connection); the rest were never fetched from the log.
                unanswered = sum(not t.done() for t in batch)
                held = _in_flight(adapter)
                assert 1 <= held < unanswered < n, (held, unanswered)

                # Down: a request fails with a typed transport error within its timeout.
                t0 = time.monotonic()
                with pytest.raises(TransportError) as caught:
                    await client.execute(f"INSERT INTO {table} VALUES (1)", timeout=3)
                elapsed = time.monotonic() - t0
                assert isinstance(caught.value, RequestTimeoutError | BrokerUnavailableError)
                assert caught.value.retriable
                assert elapsed < 3 + 1.5, f"took {elapsed:.1f} s with a 3 s timeout"
                health = await adapter.health(timeout=2)
                assert health["checks"]["kafka"].startswith("failing"), health
                assert _alive(adapter)

                # Back (same ports, same data): the same client and adapter work again.
                kafka.start()
                await kafka.wait_ready()

                failures: list[str] = []

                async def serves() -> bool:
                    try:
                        return bool(await client.fetchval("SELECT 1", timeout=3) == 1)
                    except TransportError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                        return False

                try:
                    await wait_for(serves, 60, interval=0.2, message="requests succeed again")
                except AssertionError:
                    # Which side is stuck: the client's failures, the adapter's view.
                    raise AssertionError(
                        f"last failures {failures[-3:]}; adapter in flight "
                        f"{_in_flight(adapter)}, assigned "
                        f"{adapter._consumer.assignment() if adapter._consumer else None}; "
                        f"health {await adapter.health(timeout=2)}\n"
                        f"broker log:\n{tail(kafka.server_log)}"
                    ) from None

                # Nothing was lost: every request of the batch gets exactly its own reply.
                results = await asyncio.wait_for(asyncio.gather(*batch), 90)
                assert results == list(range(n))
                result = await client.request("SELECT 2 AS two")
                assert result.served_by == adapter.instance_id
                assert _alive(adapter)

                # The write whose caller got an error never ran: its deadline had passed.
                assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        for task in batch:
            task.cancel()
        with contextlib.suppress(QueryBusError, asyncpg.PostgresError):
            await pg.execute(f"DROP TABLE IF EXISTS {table}")
        await pg.close()
