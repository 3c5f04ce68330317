"""The core path end to end: QueryClient → real Kafka → adapter → real PostgreSQL → back.

Each test has its own topic prefix and consumer group (the ``bus`` fixture), so
they can run next to other engineers' tests on the same broker and database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from tests.helpers import collect, make_request, wait_for
from tests.integration.conftest import Bus

from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.errors import (
    DataError,
    IntegrityConstraintViolationError,
    PayloadTooLargeError,
    QueryCanceledError,
    RequestRejectedError,
    RequestTimeoutError,
    ResultTooLargeError,
    UndefinedObjectError,
)
from querybus.protocol import (
    Headers,
    OperationType,
    QueryFailure,
    ReplyAddress,
    decode_reply,
    encode,
)

MakeTable = Callable[[str], Awaitable[str]]

UTC = dt.UTC
PLUS_2 = dt.timezone(dt.timedelta(hours=2))

# (PostgreSQL type, Python value); each must come back equal and of the same type.
VALUES: list[tuple[str, Any]] = [
    ("int4", 42),
    ("int8", 2**63 - 1),
    ("int8", -(2**63)),
    ("int2", -32768),
    ("float8", 3.5),
    ("float8", -1.25e-300),
    ("float8", math.inf),
    ("float8", -math.inf),
    ("numeric", Decimal("12345678901234567890.123456789")),
    ("numeric", Decimal("-0.000000001")),
    ("text", "héllo wörld ✓ 🚀 \u00a0 ünïcödé"),
    ("text", ""),
    ("bool", True),
    ("bool", False),
    ("bytea", b"\x00\x01\xfe\xff binary"),
    ("bytea", b""),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("date", dt.date(2026, 11, 27)),
    ("time", dt.time(23, 59, 58, 123456)),
    ("timetz", dt.time(12, 30, 0, 5, tzinfo=PLUS_2)),
    ("timestamp", dt.datetime(2026, 11, 27, 12, 0, 0, 123456)),
    ("timestamptz", dt.datetime(2026, 11, 27, 12, 0, 0, 654321, tzinfo=UTC)),
    ("timestamptz", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=PLUS_2)),
    ("interval", dt.timedelta(days=3, seconds=7200, microseconds=5)),
    ("interval", dt.timedelta(seconds=-1)),
    ("json", {"a": 1, "b": [1, 2, {"c": None}], "d": "ü"}),
    ("json", [1, "two", {"three": 3}]),
    ("jsonb", {"nested": {"list": [1.5, True, None]}}),
    ("jsonb", [{"a": 1}, {"b": 2}]),
    ("int4[]", [1, 2, 3]),
    ("text[]", ["a", "ü", None, ""]),
    ("int4[][]", [[1, 2], [3, 4]]),
    ("numeric[]", [Decimal("1.5"), Decimal("-2")]),
]


def same(expected: Any, got: Any) -> bool:
    """Equal and of the same Python type (recursively for lists)."""
    if isinstance(expected, list):
        return (
            type(got) is list
            and len(got) == len(expected)
            and all(same(e, g) for e, g in zip(expected, got, strict=True))
        )
    if isinstance(expected, dt.datetime | dt.time) and expected.tzinfo is not None:
        # PostgreSQL may move an aware timestamp to another offset: compare instants.
        return type(got) is type(expected) and got.tzinfo is not None and got == expected
    return type(got) is type(expected) and got == expected


async def count(pg: asyncpg.Connection, table: str) -> int:
    return int(await pg.fetchval(f"SELECT count(*) FROM {table}"))


# -- 1. values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pgtype", "value"), VALUES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(VALUES)]
)
async def test_value_round_trips_through_select(
    client: QueryClient, pgtype: str, value: Any
) -> None:
    result = await client.request(f"SELECT $1::{pgtype} AS v", [value])
    got = result.rows[0]["v"]
    assert same(value, got), f"{pgtype}: sent {value!r}, got {got!r}"
    assert result.columns[0].name == "v"


async def test_special_values_round_trip(client: QueryClient) -> None:
    nan = await client.fetchval("SELECT $1::float8", math.nan)
    assert isinstance(nan, float)
    assert math.isnan(nan)
    dec_nan = await client.fetchval("SELECT $1::numeric", Decimal("NaN"))
    assert isinstance(dec_nan, Decimal)
    assert dec_nan.is_nan()
    assert await client.fetchval("SELECT $1::text", None) is None
    assert await client.fetchval("SELECT NULL::int") is None
    # The column types travel with the rows.
    result = await client.request("SELECT 1::int8 AS a, 'x'::text AS b, now() AS c")
    assert [(c.name, c.type) for c in result.columns] == [
        ("a", "int8"),
        ("b", "text"),
        ("c", "timestamptz"),
    ]


async def test_every_type_round_trips_through_a_table(
    client: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    columns = [
        ("c_int8", "int8", -(2**63)),
        ("c_float8", "float8", math.inf),
        ("c_numeric", "numeric", Decimal("NaN")),
        ("c_text", "text", "naïve ☃"),
        ("c_bool", "bool", True),
        ("c_null", "text", None),
        ("c_bytea", "bytea", bytes(range(256))),
        ("c_uuid", "uuid", uuid.uuid4()),
        ("c_date", "date", dt.date(1999, 12, 31)),
        ("c_time", "time", dt.time(1, 2, 3)),
        ("c_timetz", "timetz", dt.time(1, 2, 3, tzinfo=PLUS_2)),
        ("c_ts", "timestamp", dt.datetime(2000, 2, 29, 23, 59, 59, 999999)),
        ("c_tstz", "timestamptz", dt.datetime(2000, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("c_interval", "interval", dt.timedelta(days=-1, seconds=5)),
        ("c_json", "json", {"k": [1, 2]}),
        ("c_jsonb", "jsonb", [1, {"x": "y"}]),
        ("c_ints", "int4[]", [5, 6]),
        ("c_texts", "text[]", ["p", "q"]),
        ("c_grid", "int4[][]", [[1, 2, 3], [4, 5, 6]]),
    ]
    table = await make_table(", ".join(f"{name} {t}" for name, t, _ in columns))
    names = ", ".join(name for name, _, _ in columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    tag = await client.execute(
        f"INSERT INTO {table} ({names}) VALUES ({placeholders})", *[v for _, _, v in columns]
    )
    assert tag == "INSERT 0 1"
    row = await client.fetchrow(f"SELECT {names} FROM {table}")
    assert row is not None
    for name, _, value in columns:
        got = row[name]
        if isinstance(value, Decimal) and value.is_nan():
            assert isinstance(got, Decimal)
            assert got.is_nan()
        else:
            assert same(value, got), f"{name}: sent {value!r}, got {got!r}"
    # What reached the database is the real value, not a string form of it.
    assert await pg.fetchval(f"SELECT c_int8 FROM {table}") == -(2**63)
    assert await pg.fetchval(f"SELECT c_grid[2][3] FROM {table}") == 6


# -- 2. concurrency: every reply reaches its own caller ---------------------------------


async def test_4_clients_x_1000_concurrent_requests_each_get_their_own_reply(bus: Bus) -> None:
    a = await bus.adapter(pool_size=8)
    b = await bus.adapter(pool_size=8)
    # Two clients share reply partition 0: each must skip the other's replies.
    clients = [
        await bus.client(reply_partition=0, timeout=90.0),
        await bus.client(reply_partition=0, timeout=90.0),
        await bus.client(timeout=90.0),
        await bus.client(timeout=90.0),
    ]
    per_client = 1000

    async def run(index: int, client: QueryClient) -> list[tuple[int, int]]:
        values = [index * 1_000_000 + i for i in range(per_client)]
        got = await asyncio.gather(*(client.fetchval("SELECT $1::int", v) for v in values))
        return list(zip(values, got, strict=True))

    results = await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))
    for pairs in results:
        assert len(pairs) == per_client
        mismatched = [(sent, got) for sent, got in pairs if sent != got]
        assert not mismatched, f"{len(mismatched)} crossed replies, e.g. {mismatched[:3]}"
    for c in clients:
        assert c.metrics.requests == per_client
        assert c.metrics.replies == per_client
        assert c.metrics.timeouts == 0
        assert c.metrics.late_replies == 0
    assert clients[0].reply_address == clients[1].reply_address
    assert a.instance_id != b.instance_id


# -- 3. errors and timeouts -------------------------------------------------------------


async def test_sql_errors_arrive_as_typed_errors_promptly(
    client: QueryClient, make_table: MakeTable
) -> None:
    table = await make_table("id int PRIMARY KEY")
    await client.execute(f"INSERT INTO {table} VALUES (1)")

    cases: list[tuple[str, tuple[Any, ...], type[Exception], str]] = [
        ("SELECT * FROM no_such_table_querybus", (), UndefinedObjectError, "42P01"),
        (f"INSERT INTO {table} VALUES ($1)", (1,), IntegrityConstraintViolationError, "23505"),
        ("SELECT 1 / $1::int", (0,), DataError, "22012"),
    ]
    for sql, args, cls, sqlstate in cases:
        started = time.monotonic()
        with pytest.raises(cls) as info:
            await client.execute(sql, *args, timeout=30.0)
        elapsed = time.monotonic() - started
        assert info.value.sqlstate == sqlstate  # type: ignore[attr-defined]
        assert info.value.message
        assert elapsed < 2.0, f"{sqlstate} took {elapsed:.2f} s"
    assert client.metrics.timeouts == 0


async def test_timeout_raises_and_the_late_reply_is_dropped_and_counted(
    client: QueryClient,
) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await client.execute("SELECT pg_sleep(2)", timeout=0.5)
    assert time.monotonic() - started < 3.0  # 0.5 s plus a loaded machine's slack
    assert client.metrics.timeouts == 1
    # The adapter's statement is cancelled at the deadline; its (failure) reply
    # comes back after the caller gave up and is counted, then dropped.
    await wait_for(lambda: client.metrics.late_replies >= 1, 10.0, message="late reply")
    # The client still works.
    assert await client.fetchval("SELECT 7") == 7


async def test_statement_timeout_follows_the_deadline(client: QueryClient) -> None:
    # A deadline shorter than the statement: the database cancels it; nothing hangs.
    with pytest.raises((RequestTimeoutError, QueryCanceledError)):
        await client.execute("SELECT pg_sleep(5)", timeout=1.0)


# -- 4. rejected requests execute nothing -------------------------------------------------


async def test_mismatched_or_multiple_statements_are_rejected_and_nothing_runs(
    client: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int")
    await pg.execute(f"INSERT INTO {table} SELECT generate_series(1, 3)")

    with pytest.raises(RequestRejectedError, match="DELETE"):
        await client.query(f"DELETE FROM {table}", operation_type="SELECT")
    with pytest.raises(RequestRejectedError):
        await client.query(
            f"WITH gone AS (DELETE FROM {table} RETURNING id) SELECT * FROM gone",
            operation_type="SELECT",
        )
    with pytest.raises(RequestRejectedError, match="one SQL statement"):
        await client.execute(f"DELETE FROM {table}; INSERT INTO {table} VALUES (99)")
    with pytest.raises(RequestRejectedError, match="one SQL statement"):
        await client.query(f"SELECT 1; DELETE FROM {table}", operation_type="SELECT")
    with pytest.raises(RequestRejectedError):
        await client.execute("this is not SQL at all")

    assert await count(pg, table) == 3
    # A correctly declared statement runs.
    result = await client.query(f"DELETE FROM {table} WHERE id = 1", operation_type="DELETE")
    assert result.command == "DELETE 1"
    assert await count(pg, table) == 2


# -- 5. an expired request is not executed ---------------------------------------------------


async def test_expired_request_is_not_executed(
    bus: Bus, adapter: AdapterService, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int")
    transport = await bus.transport()
    topics = bus.settings.topics
    reader = transport.partition_reader(topics.response, [1], start_at="end")
    producer = transport.producer()
    await reader.start()
    try:
        await producer.start()
        try:
            cid = uuid.uuid4().hex
            request = make_request(
                f"INSERT INTO {table} VALUES (1)",
                id=cid,
                client="raw-test",
                op=OperationType.INSERT,
                reply_to=ReplyAddress(topics.response, 1),
                timeout=-5,
                sent_at=time.time() - 6,
            )
            await producer.send(
                topics.request,
                encode(request),
                headers=[(Headers.CORRELATION_ID, cid.encode())],
            )
        finally:
            await producer.stop()
        [record] = await collect(
            reader, 1, where=lambda r: r.header(Headers.CORRELATION_ID) == cid.encode()
        )
    finally:
        await reader.stop()
    assert record.value is not None
    reply = decode_reply(record.value)
    assert isinstance(reply, QueryFailure)
    assert reply.id == cid
    assert reply.error.code == "deadline_exceeded"
    assert reply.served_by == adapter.instance_id
    assert await count(pg, table) == 0


# -- 6. two adapters share a group; stopping one loses nothing ----------------------------


async def test_two_adapters_share_the_load_and_a_graceful_stop_loses_nothing(bus: Bus) -> None:
    first = await bus.adapter(pool_size=4)
    second = await bus.adapter(pool_size=4)
    client = await bus.client(timeout=60.0)

    async def served_by(n: int) -> set[str]:
        results = await asyncio.gather(*(client.request("SELECT $1::int", [i]) for i in range(n)))
        return {r.served_by for r in results}

    both = {first.instance_id, second.instance_id}
    # The group settles after the second member joins; then 200 requests spread
    # over 8 partitions reach both members.
    await wait_for(lambda: served_by(40), 30.0)  # warm up
    await wait_for(lambda: _is(both, served_by(40)), 30.0, message="both adapters serving")
    assert await served_by(200) == both

    # Requests in flight on both adapters while one stops gracefully.
    n = 80
    pending = [
        asyncio.ensure_future(client.fetchval("SELECT $1::int FROM pg_sleep(0.2)", i))
        for i in range(n)
    ]
    await wait_for(lambda: _in_flight(second) > 0, 10.0, message="second adapter busy")
    await second.stop()
    values = await asyncio.gather(*pending)
    assert values == list(range(n))
    # The survivor takes over the stopped member's partitions.
    assert await served_by(40) == {first.instance_id}


async def _is(expected: set[str], got: Awaitable[set[str]]) -> bool:
    return await got == expected


def _in_flight(svc: AdapterService) -> float:
    return float(svc.metrics.registry.get_sample_value("querybus_in_flight") or 0)


# -- 7. malformed input goes to the dead-letter topic --------------------------------------


async def test_malformed_messages_are_dead_lettered_and_the_adapter_keeps_serving(
    bus: Bus, adapter: AdapterService, client: QueryClient
) -> None:
    transport = await bus.transport()
    topics = bus.settings.topics
    good = make_request(
        "SELECT 1", client="raw", reply_to=ReplyAddress(topics.response, 0), timeout=60
    )
    good_json = encode(good).decode()
    bad: dict[str, bytes | None] = {
        "not-json": b"\x00\x01 definitely not json",
        "wrong-shape": b"[1, 2, 3]",
        "wrong-fields": b'{"hello": "world"}',
        "v99": good_json.replace('"v":1', '"v":99').encode(),
        "missing-sql": good_json.replace('"sql":"SELECT 1",', "").encode(),
        "wrong-type": good_json.replace('"deadline":', '"deadline":"soon","x":').encode(),
        "tombstone": None,
    }
    assert b'"v":99' in (bad["v99"] or b"")
    assert b"sql" not in (bad["missing-sql"] or b"sql")

    dlq = transport.partition_reader(topics.dead_letter, [0], start_at="beginning")
    replies = transport.partition_reader(topics.response, [2], start_at="end")
    producer = transport.producer()
    await dlq.start()
    await replies.start()
    try:
        await producer.start()
        try:
            for name, value in bad.items():
                await producer.send(topics.request, value, key=name.encode())
            # One malformed request that names its reply address in the headers.
            cid = uuid.uuid4().hex
            await producer.send(
                topics.request,
                b"{broken",
                key=b"with-headers",
                headers=[
                    (Headers.CORRELATION_ID, cid.encode()),
                    (Headers.REPLY_TOPIC, topics.response.encode()),
                    (Headers.REPLY_PARTITION, b"2"),
                ],
            )
        finally:
            await producer.stop()
        # The next good request is served.
        assert await client.fetchval("SELECT $1::text", "still alive") == "still alive"

        [reply_record] = await collect(
            replies, 1, where=lambda r: r.header(Headers.CORRELATION_ID) == cid.encode()
        )
        records = await collect(dlq, len(bad) + 1)
    finally:
        await replies.stop()
        await dlq.stop()

    assert reply_record.value is not None
    reply = decode_reply(reply_record.value)
    assert isinstance(reply, QueryFailure)
    assert reply.error.code == "protocol"

    reasons = {}
    for r in records:
        reason = r.header(Headers.DLQ_REASON)
        assert reason, f"dead letter without a reason: {r}"
        assert r.key is not None
        reasons[r.key.decode()] = reason.decode()
        if r.key != b"tombstone":
            sent = bad.get(r.key.decode(), b"{broken")
            assert r.value == sent, "the dead letter keeps the original bytes"
    assert set(reasons) == {*bad, "with-headers"}
    assert "99" in reasons["v99"]
    assert "tombstone" in reasons["tombstone"]
    assert "sql" in reasons["missing-sql"]
    assert adapter.health  # still the same adapter object
    assert (
        adapter.metrics.registry.get_sample_value("querybus_requests_total", {"outcome": "ok"}) or 0
    ) >= 1


# -- 8. sizes -------------------------------------------------------------------------------


async def test_oversized_request_and_reply_fail_fast_with_payload_too_large(
    client: QueryClient, bus: Bus
) -> None:
    with pytest.raises(PayloadTooLargeError):
        await client.fetchval("SELECT length($1::text)", "x" * (bus.settings.max_message_bytes + 1))
    assert client.metrics.requests == 0  # refused before sending

    started = time.monotonic()
    # The statement ran: the caller learns what it did, without its rows.
    with pytest.raises(ResultTooLargeError, match="reply") as caught:
        await client.fetchval("SELECT repeat('x', 2000000)", timeout=30.0)
    assert caught.value.command == "SELECT 1"
    assert time.monotonic() - started < 10.0
    assert client.metrics.timeouts == 0
    # A large-but-allowed reply still works.
    assert len(await client.fetchval("SELECT repeat('y', 500000)")) == 500_000


# -- 9. health and metrics over HTTP ---------------------------------------------------------


async def test_health_and_metrics_endpoints(adapter: AdapterService, client: QueryClient) -> None:
    assert adapter.http_port
    await client.fetchval("SELECT 1")
    with pytest.raises(UndefinedObjectError):
        await client.fetchval("SELECT * FROM no_such_table_querybus")
    base = f"http://127.0.0.1:{adapter.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ready"
        assert body["instance"] == adapter.instance_id
        assert body["checks"] == {"kafka": "ok", "database": "ok"}
        assert (await http.get("/health/live")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'querybus_requests_total{outcome="ok"}' in text
        assert 'querybus_errors_total{code="query",sqlstate_class="42"}' in text
        assert "querybus_request_seconds_bucket" in text
        assert "querybus_in_flight" in text
        assert (await http.get("/nope")).status_code == 404
    assert (await adapter.health())["status"] == "ready"


async def test_metrics_show_the_database_pool_in_use_and_waited_for(
    bus: Bus, pg: asyncpg.Connection
) -> None:
    adapter = await bus.adapter(pool_size=2, http=True)
    client = await bus.client()
    key = uuid.uuid4().int >> 65  # this test's own advisory lock

    def pool(name: str, state: str | None = None) -> float | None:
        labels = {"target": "postgres"} if state is None else {"target": "postgres", "state": state}
        return adapter.metrics.registry.get_sample_value(name, labels)

    assert pool("querybus_db_connections", "idle") == 2
    assert pool("querybus_db_waiting") == 0
    await pg.execute("SELECT pg_advisory_lock($1)", key)  # the statements below wait on it
    try:
        calls = [
            asyncio.create_task(client.fetchval("SELECT pg_advisory_xact_lock($1)", key))
            for _ in range(3)
        ]
        await wait_for(
            lambda: (pool("querybus_db_connections", "in_use"), pool("querybus_db_waiting")),
            10,
            message="both connections in use and one request waiting",
            accept=lambda v: v == (2, 1),
        )
        async with httpx.AsyncClient(timeout=10.0) as http:
            text = (await http.get(f"http://127.0.0.1:{adapter.http_port}/metrics")).text
        assert 'querybus_db_connections{state="in_use",target="postgres"} 2.0' in text, text
        assert 'querybus_db_waiting{target="postgres"} 1.0' in text
        assert 'querybus_db_connections{state="missing",target="postgres"} 0.0' in text
    finally:
        await pg.execute("SELECT pg_advisory_unlock($1)", key)
    await asyncio.gather(*calls)
    await wait_for(
        lambda: (pool("querybus_db_connections", "idle"), pool("querybus_db_waiting")),
        10,
        message="the pool idle again",
        accept=lambda v: v == (2, 0),
    )


# -- 10. executemany and idempotency -----------------------------------------------------------


async def test_executemany_is_atomic(
    client: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int PRIMARY KEY, note text")
    sql = f"INSERT INTO {table} (id, note) VALUES ($1, $2)"
    await client.executemany(sql, [(i, f"n{i}") for i in range(100)])
    assert await count(pg, table) == 100

    # Row 50 repeats id 0: the whole batch fails and none of it stays.
    batch = (
        [(i, "new") for i in range(100, 150)] + [(0, "dup")] + [(i, "new") for i in range(150, 200)]
    )
    with pytest.raises(IntegrityConstraintViolationError) as info:
        await client.executemany(sql, batch)
    assert info.value.sqlstate == "23505"
    assert await count(pg, table) == 100
    assert await pg.fetchval(f"SELECT count(*) FROM {table} WHERE note = 'new'") == 0


async def test_same_idempotency_key_runs_once_and_both_get_a_reply(
    client: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    # No unique constraint: only the key stops a second row.
    table = await make_table("id int, at timestamptz DEFAULT clock_timestamp()")
    sql = f"INSERT INTO {table} (id) VALUES ($1)"
    key = uuid.uuid4().hex
    # Two at once (the second waits for the first) and one after (served from the cache).
    r1, r2 = await asyncio.gather(
        client.request(sql, [1], idempotency_key=key),
        client.request(sql, [1], idempotency_key=key),
    )
    r3 = await client.request(sql, [1], idempotency_key=key)
    assert r1.command == r2.command == r3.command == "INSERT 0 1"
    assert len({r1.correlation_id, r2.correlation_id, r3.correlation_id}) == 3
    assert await count(pg, table) == 1
    # Another key is another request.
    await client.request(sql, [1], idempotency_key=uuid.uuid4().hex)
    assert await count(pg, table) == 2


async def test_concurrent_duplicates_of_a_failing_idempotent_request_both_get_the_error(
    client: QueryClient, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int CHECK (id > 0)")
    sql = f"INSERT INTO {table} (id) SELECT $1::int FROM pg_sleep(0.3)"
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        client.request(sql, [-1], idempotency_key=key, timeout=5.0),
        client.request(sql, [-1], idempotency_key=key, timeout=5.0),
        return_exceptions=True,
    )
    for r in results:
        assert isinstance(r, IntegrityConstraintViolationError), repr(r)
    assert await count(pg, table) == 0


# -- 11. the original API ---------------------------------------------------------------------


async def test_original_query_api_returns_rows_with_name_access(
    client: QueryClient, make_table: MakeTable
) -> None:
    table = await make_table("id int, name text")
    inserted = await client.query(
        query=f"INSERT INTO {table} VALUES ($1, $2), ($3, $4)",
        params=[1, "ada", 2, "grace"],
        operation_type="INSERT",
    )
    assert inserted.rowcount == 2
    result = await client.query(
        query=f"SELECT id, name FROM {table} ORDER BY id", operation_type="SELECT"
    )
    assert len(result) == 2
    assert [row["name"] for row in result] == ["ada", "grace"]
    assert result.rows[0]["id"] == 1
    assert result.rows[1].as_dict() == {"id": 2, "name": "grace"}
    assert result.command == "SELECT 2"
    assert result.correlation_id
    assert result.served_by
    assert result.elapsed > 0
    # Lower-case operation types are accepted, as the original API did.
    assert (await client.query(f"SELECT count(*) AS n FROM {table}", operation_type="select")).rows[
        0
    ]["n"] == 2
