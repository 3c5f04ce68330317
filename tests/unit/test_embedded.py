"""The embedded path: QueryClient → in-memory bus → adapter → SQLite → back, in one process.

No Java and no database server: this is what ``querybus dev`` runs.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console
from tests.helpers import collect, eventually, make_request, wait_for

from querybus.adapter.policy import Policy
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.cli.dev import run_dev
from querybus.client import ClientState, QueryClient
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import (
    IntegrityConstraintViolationError,
    InterfaceError,
    PayloadTooLargeError,
    RequestRejectedError,
    RequestTimeoutError,
    ResultTooLargeError,
    SQLSyntaxError,
    UndefinedObjectError,
)
from querybus.protocol import (
    Headers,
    QueryFailure,
    ReplyAddress,
    decode_reply,
    encode,
)
from querybus.transport import Transport, connect

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bus() -> BusSettings:
    return BusSettings(
        bootstrap_servers=f"memory://embedded-{uuid.uuid4().hex[:8]}",
        request_partitions=4,
        response_partitions=2,
        max_message_bytes=200_000,
    )


@pytest.fixture
async def transport(bus: BusSettings) -> AsyncIterator[Transport]:
    t = connect(bus.bootstrap_servers, max_message_bytes=bus.max_message_bytes)
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture
async def adapter(bus: BusSettings, transport: Transport) -> AsyncIterator[AdapterService]:
    svc = AdapterService(
        transport,
        SqliteExecutor(":memory:"),
        bus=bus,
        settings=AdapterSettings(group_id="embedded", pool_size=2),
        policy=Policy(allow_ddl=True),  # a local sandbox, like `querybus dev`
    )
    await svc.start(http=False)
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def client(bus: BusSettings, adapter: AdapterService) -> AsyncIterator[QueryClient]:
    async with QueryClient(bus, timeout=10.0) as c:
        yield c


async def test_statements_run_through_the_memory_bus(
    client: QueryClient, adapter: AdapterService
) -> None:
    assert (
        await client.execute("CREATE TABLE agents (id integer PRIMARY KEY, name text)") == "CREATE"
    )
    assert await client.execute("INSERT INTO agents VALUES ($1, $2)", 1, "ada") == "INSERT 0 1"
    await client.executemany("INSERT INTO agents VALUES ($1, $2)", [(2, "grace"), (3, "linus")])
    rows = await client.fetch("SELECT id, name FROM agents ORDER BY id")
    assert [(r["id"], r["name"]) for r in rows] == [(1, "ada"), (2, "grace"), (3, "linus")]
    assert await client.fetchval("SELECT name FROM agents WHERE id = $1", 2) == "grace"
    assert await client.fetchrow("SELECT * FROM agents WHERE id = $1", 99) is None
    result = await client.query("SELECT count(*) AS n FROM agents", operation_type="SELECT")
    assert result.rows[0]["n"] == 3
    assert result.served_by == adapter.instance_id
    assert result.route is not None
    assert result.route.target == "sqlite"
    assert result.command == "SELECT 1"
    updated = await client.request("UPDATE agents SET name = upper(name)", operation_type="UPDATE")
    assert updated.command == "UPDATE 3"
    assert updated.rowcount == 3


async def test_sqlite_errors_map_to_postgres_sqlstates(client: QueryClient) -> None:
    with pytest.raises(UndefinedObjectError) as info:
        await client.fetch("SELECT * FROM missing")
    assert info.value.sqlstate == "42P01"
    await client.execute("CREATE TABLE u (id integer PRIMARY KEY)")
    await client.execute("INSERT INTO u VALUES (1)")
    with pytest.raises(IntegrityConstraintViolationError) as dup:
        await client.execute("INSERT INTO u VALUES (1)")
    assert dup.value.sqlstate == "23505"
    # executemany is atomic here too.
    with pytest.raises(IntegrityConstraintViolationError):
        await client.executemany("INSERT INTO u VALUES ($1)", [(2,), (1,), (3,)])
    assert await client.fetchval("SELECT count(*) FROM u") == 1
    with pytest.raises(RequestRejectedError):
        await client.query("DELETE FROM u", operation_type="SELECT")
    with pytest.raises(RequestRejectedError):
        await client.execute("DELETE FROM u; SELECT 1")
    assert await client.fetchval("SELECT count(*) FROM u") == 1
    with pytest.raises(SQLSyntaxError):
        await client.execute("SELECT nosuchfunction_xyz(1)")


async def test_values_round_trip_through_sqlite(client: QueryClient) -> None:
    row = await client.fetchrow(
        "SELECT $1 AS i, $2 AS f, $3 AS s, $4 AS b, $5 AS n", 2**62, 1.5, "ünï ✓", b"\x00\xff", None
    )
    assert row is not None
    assert tuple(row) == (2**62, 1.5, "ünï ✓", b"\x00\xff", None)
    assert [type(v) for v in row] == [int, float, str, bytes, type(None)]


async def test_two_clients_on_the_memory_bus_get_their_own_replies(
    bus: BusSettings, adapter: AdapterService
) -> None:
    async with (
        QueryClient(bus, reply_partition=0) as first,
        QueryClient(bus, reply_partition=0) as second,
        QueryClient(bus, reply_partition=1) as third,
    ):
        clients = [first, second, third]

        async def run(index: int, c: QueryClient) -> list[int]:
            return list(
                await asyncio.gather(
                    *(c.fetchval("SELECT $1", index * 1000 + i) for i in range(150))
                )
            )

        got = await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))
        for i, values in enumerate(got):
            assert values == [i * 1000 + n for n in range(150)]
        for c in clients:
            assert c.metrics.replies == 150
            assert c.metrics.late_replies == 0  # a shared partition's other replies are skipped
        assert first.reply_address == second.reply_address != third.reply_address


async def test_timeout_and_late_reply_on_the_memory_bus(
    bus: BusSettings, transport: Transport
) -> None:
    # No adapter yet: the request waits on the bus, times out, and is answered later.
    async with QueryClient(bus, timeout=10.0) as c:
        with pytest.raises(RequestTimeoutError):
            await c.fetchval("SELECT 1", timeout=0.1)
        assert c.metrics.timeouts == 1
        svc = AdapterService(
            transport,
            SqliteExecutor(":memory:"),
            bus=bus,
            settings=AdapterSettings(group_id="late", pool_size=1),
        )
        await svc.start(http=False)
        try:
            assert await c.fetchval("SELECT 2") == 2
        finally:
            await svc.stop()
    # The first request's deadline had passed: it was not executed, and its
    # failure reply was counted as late (it reached a client that had given up).
    assert c.metrics.late_replies == 1


async def test_expired_and_malformed_requests(
    bus: BusSettings, transport: Transport, adapter: AdapterService, client: QueryClient
) -> None:
    topics = bus.topics
    reader = transport.partition_reader(topics.response, [1], start_at="end")
    dlq = transport.partition_reader(topics.dead_letter, [0], start_at="beginning")
    producer = transport.producer()
    await reader.start()
    await dlq.start()
    await producer.start()
    try:
        await client.execute("CREATE TABLE e (id integer)")
        cid = uuid.uuid4().hex
        expired = make_request(
            "INSERT INTO e VALUES (1)",
            id=cid,
            client="raw",
            reply_to=ReplyAddress(topics.response, 1),
            timeout=-1,
        )
        await producer.send(topics.request, encode(expired))
        await producer.send(topics.request, b"garbage", key=b"bad")
        await producer.send(topics.request, None, key=b"tombstone")
        [record] = await collect(
            reader, 1, where=lambda r: r.header(Headers.CORRELATION_ID) == cid.encode()
        )
        dead = await collect(dlq, 2)
    finally:
        await producer.stop()
        await dlq.stop()
        await reader.stop()
    assert record.value is not None
    reply = decode_reply(record.value)
    assert isinstance(reply, QueryFailure)
    assert reply.error.code == "deadline_exceeded"
    assert await client.fetchval("SELECT count(*) FROM e") == 0
    assert {r.key for r in dead} == {b"bad", b"tombstone"}
    assert all(r.header(Headers.DLQ_REASON) for r in dead)


async def test_oversized_request_and_reply(client: QueryClient, bus: BusSettings) -> None:
    with pytest.raises(PayloadTooLargeError):
        await client.fetchval("SELECT $1", "x" * bus.max_message_bytes)
    # The statement ran: the reply says so (command, rowcount), without its rows.
    with pytest.raises(ResultTooLargeError, match="reply") as caught:
        await client.fetchval("SELECT zeroblob(300000)")
    assert caught.value.rowcount == 1


async def test_idempotency_key_runs_once(client: QueryClient) -> None:
    await client.execute("CREATE TABLE i (id integer)")
    key = uuid.uuid4().hex
    for _ in range(3):
        assert await client.execute("INSERT INTO i VALUES (1)", idempotency_key=key) == "INSERT 0 1"
    assert await client.fetchval("SELECT count(*) FROM i") == 1


async def test_client_lifecycle(bus: BusSettings, adapter: AdapterService) -> None:
    c = QueryClient(bus)
    assert c.state is ClientState.UNOPENED
    with pytest.raises(InterfaceError):
        await c.fetch("SELECT 1")
    await c.start()
    assert c.state is ClientState.OPEN
    with pytest.raises(InterfaceError):
        await c.start()
    with pytest.raises(InterfaceError, match="operation_type"):
        await c.query("SELECT 1", operation_type="EXPLODE")
    await c.stop()
    await c.stop()  # twice is fine
    assert c.state is ClientState.CLOSED
    with pytest.raises(InterfaceError):
        await c.fetch("SELECT 1")
    with pytest.raises(InterfaceError):
        QueryClient(bus, timeout=0)


async def test_adapter_health_on_the_memory_bus(adapter: AdapterService) -> None:
    health = await adapter.health()
    assert health["status"] == "ready"
    assert health["checks"] == {"kafka": "ok", "database": "ok"}


# -- querybus dev -----------------------------------------------------------------------


@pytest.fixture
def fake_input(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []

    def fake(prompt: str = "") -> str:
        if not lines:
            raise EOFError
        return lines.pop(0)

    monkeypatch.setattr(builtins, "input", fake)
    return lines


async def test_run_dev_sends_each_line_through_the_bus(
    fake_input: list[str], tmp_path: Path
) -> None:
    fake_input.extend(
        [
            "CREATE TABLE pets (id integer PRIMARY KEY, name text);",
            "INSERT INTO pets VALUES (1, 'rex')",
            "",
            "SELECT id, name FROM pets",
        ]
    )
    out = io.StringIO()
    status = await run_dev(
        str(tmp_path / "dev.sqlite3"), False, Console(file=out, width=200, color_system=None)
    )
    text = out.getvalue()
    assert status == 0, text
    assert "rex" in text
    assert "correlation id" in text
    assert "SELECT 1" in text
    assert (tmp_path / "dev.sqlite3").exists()


async def test_run_dev_reports_failures_and_exits_non_zero(fake_input: list[str]) -> None:
    fake_input.extend(["SELECT * FROM nowhere", "SELECT 1", "\\q", "SELECT 2"])
    out = io.StringIO()
    status = await run_dev(":memory:", False, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert status == 1
    assert "42P01" in text
    assert "SELECT 1" in text
    assert "SELECT 2" not in text  # \q stopped the prompt


async def test_querybus_dev_command_through_a_pipe(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "POSTGRES_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from querybus.cli.main import main; main()",
        "dev",
        "--db",
        str(tmp_path / "p.sqlite3"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(
        proc.communicate(
            b"CREATE TABLE t (x integer)\nINSERT INTO t VALUES (41)\nSELECT x + 1 AS y FROM t\n"
        ),
        60,
    )
    assert proc.returncode == 0, stderr.decode()
    text = stdout.decode()
    assert "42" in text
    assert "correlation id" in text


async def test_wait_for_helper() -> None:
    box = {"n": 0}

    async def bump() -> bool:
        box["n"] += 1
        return box["n"] >= 3

    assert await wait_for(bump, 2.0, interval=0.001)
    with pytest.raises(AssertionError, match="never"):
        await wait_for(lambda: False, 0.05, message="never")


async def test_eventually_is_wait_for_with_an_acceptance_test() -> None:
    box = {"n": 0}

    async def count() -> list[int]:
        box["n"] += 1
        return [] if box["n"] >= 3 else [box["n"]]

    # A falsy value is returned when it is the one accepted.
    assert await eventually(count, lambda v: not v, within=2.0, interval=0.001) == []
    assert await wait_for(count, 2.0, accept=lambda v: v == [], interval=0.001) == []
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        await eventually(count, bool, within=0.05)


def test_make_request_defaults_and_overrides() -> None:
    before = time.time()
    a, b = make_request("SELECT $1", [1]), make_request("SELECT 1")
    assert a.id != b.id
    assert (a.sql, a.params, a.client, a.reply_to) == (
        "SELECT $1",
        [1],
        "test",
        ReplyAddress("r", 0),
    )
    assert before + 29 < a.deadline <= time.time() + 30
    assert make_request("SELECT 1", timeout=-5).deadline < before
    c = make_request("SELECT 1", id="x", client="c", deadline=7.0, many=True)
    assert (c.id, c.client, c.deadline, c.many) == ("x", "c", 7.0, True)


async def test_an_unreadable_reply_record_does_not_stop_the_reader() -> None:
    """A record with a non-UTF-8 correlation id on the client's reply partition
    is skipped and counted; the next request still gets its reply."""
    from querybus.adapter.service import AdapterService
    from querybus.adapter.sqlite import SqliteExecutor
    from querybus.client import QueryClient
    from querybus.config import AdapterSettings, BusSettings
    from querybus.protocol import Headers
    from querybus.transport import connect

    bus = BusSettings(bootstrap_servers=f"memory://unreadable-{id(object())}")
    transport = connect(bus.bootstrap_servers)
    adapter = AdapterService(
        transport, SqliteExecutor(":memory:"), bus=bus, settings=AdapterSettings(group_id="g")
    )
    await adapter.start(http=False)
    try:
        async with QueryClient(bus, transport=transport, timeout=10) as client:
            producer = transport.producer()
            await producer.start()
            try:
                address = client.reply_address
                await producer.send(
                    address.topic,
                    b"{}",
                    partition=address.partition,
                    headers=[(Headers.CORRELATION_ID, b"\xff\xfe")],
                )
            finally:
                await producer.stop()
            assert await client.fetchval("SELECT 42") == 42
            assert client.metrics.undecodable_replies == 1
    finally:
        await adapter.stop()
        await transport.close()
