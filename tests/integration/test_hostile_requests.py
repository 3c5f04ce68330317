"""One hostile or malformed request must not take anything down (issue 7).

Each test is a class of defect found by trying querybus as a new user would,
on the real stack: a request that changes a pooled connection for good, code
execution as a superuser, a reply that cannot be delivered, a caller's
mistake reported as an outage, a committed write reported as a failure, and
a request that is only small while compressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as KafkaTopicPartition
from tests.helpers import collect, make_request, wait_for
from tests.integration.conftest import Bus
from tests.stack import Stack, UniqueNames

from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.config import AdapterSettings, BusSettings
from querybus.database.executor import PostgresExecutor
from querybus.errors import (
    ConfigurationError,
    DataError,
    InsufficientPrivilegeError,
    OperationalError,
    QueryCanceledError,
    RequestRejectedError,
    ResultTooLargeError,
)
from querybus.execution import Deadline, Job
from querybus.protocol import (
    Headers,
    QueryFailure,
    QueryRequest,
    ReplyAddress,
    decode_reply,
    encode,
)
from querybus.routing.executor import RoutingExecutor, RoutingSettings
from querybus.routing.targets import is_target_failure
from querybus.transport import PartitionReader, Producer, Record, TopicSpec

MakeTable = Callable[[str], Awaitable[str]]


# -- raw requests: what a hostile or broken producer can put on the request topic ----------


@dataclass
class Raw:
    """A raw producer on the request topic and a reader of one reply partition."""

    bus: Bus
    producer: Producer
    replies: PartitionReader
    dead_letters: PartitionReader
    reply_partition: int = 1

    def request(self, sql: str, params: Sequence[Any] = (), **fields: Any) -> QueryRequest:
        """A request whose reply comes to this reader's partition."""
        fields.setdefault("client", "raw-test")
        fields.setdefault("reply_to", ReplyAddress(self.bus.settings.topics.response, 1))
        return make_request(sql, params, **fields)

    async def send(self, value: bytes, cid: str, *, key: bytes = b"k") -> None:
        """One record with the headers a client sets (the same key: one partition)."""
        topics = self.bus.settings.topics
        await self.producer.send(
            topics.request,
            value,
            key=key,
            headers=[
                (Headers.CORRELATION_ID, cid.encode()),
                (Headers.REPLY_TOPIC, topics.response.encode()),
                (Headers.REPLY_PARTITION, str(self.reply_partition).encode()),
            ],
        )

    async def reply(self, cid: str, timeout: float = 20.0) -> Record:
        [record] = await collect(
            self.replies,
            1,
            timeout=timeout,
            where=lambda r: r.header(Headers.CORRELATION_ID) == cid.encode(),
        )
        return record

    async def dead_lettered(self, cids: set[str], timeout: float = 20.0) -> list[Record]:
        found = await collect(
            self.dead_letters,
            len(cids),
            timeout=timeout,
            where=lambda r: (r.header(Headers.CORRELATION_ID) or b"").decode() in cids,
        )
        return found


@pytest.fixture
async def raw(bus: Bus) -> AsyncIterator[Raw]:
    transport = await bus.transport()
    topics = bus.settings.topics
    settings = bus.settings
    await transport.create_topics(  # as an adapter would, so the readers can start first
        [
            TopicSpec(topics.request, partitions=settings.request_partitions),
            TopicSpec(topics.response, partitions=settings.response_partitions),
            TopicSpec(topics.dead_letter),
        ]
    )
    producer = transport.producer()
    replies = transport.partition_reader(topics.response, [1], start_at="end")
    dead_letters = transport.partition_reader(topics.dead_letter, [0], start_at="end")
    await producer.start()
    try:
        await replies.start()
        try:
            await dead_letters.start()
            try:
                yield Raw(bus, producer, replies, dead_letters)
            finally:
                await dead_letters.stop()
        finally:
            await replies.stop()
    finally:
        await producer.stop()


def failure(record: Record) -> QueryFailure:
    assert record.value is not None
    reply = decode_reply(record.value)
    assert isinstance(reply, QueryFailure), reply
    return reply


async def count(pg: asyncpg.Connection, table: str) -> int:
    return int(await pg.fetchval(f"SELECT count(*) FROM {table}"))


# -- 1. nothing a request does to its session reaches the next request ------------------------

SESSION_SNAPSHOT = """
SELECT current_user::text, session_user::text, current_setting('search_path'),
       coalesce((SELECT string_agg(name || '=' || setting, ',' ORDER BY name)
                   FROM pg_settings WHERE source NOT IN ('default', 'configuration file',
                                                         'override')), ''),
       (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
       (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
       (SELECT count(*) FROM pg_listening_channels()),
       (SELECT count(*) FROM pg_cursors WHERE is_holdable),
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())
"""


async def snapshot(executor: PostgresExecutor) -> list[tuple[Any, ...]]:
    """The session state of every pooled connection (all held at once, so each is seen)."""
    pool = executor._pool
    assert pool is not None
    conns = [await pool.acquire() for _ in range(pool.size)]
    try:
        rows = [tuple(await c.fetchrow(SESSION_SNAPSHOT)) for c in conns]
        return sorted(rows)
    finally:
        for c in conns:
            await pool.release(c, timeout=10)


@pytest.fixture
async def escape_role(pg: asyncpg.Connection, stack: Stack) -> AsyncIterator[str]:
    """A role the adapter's login may become (as with PostgREST's recipe), with no rights."""
    role = f"t_escape_{uuid.uuid4().hex[:8]}"
    await pg.execute(f"CREATE ROLE {role} NOLOGIN")
    await pg.execute(f"GRANT {role} TO {stack.pg.user}")
    try:
        yield role
    finally:
        await pg.execute(f"REVOKE {role} FROM {stack.pg.user}")
        await pg.execute(f"DROP ROLE {role}")


# Function bodies (plpgsql, created by the schema's owner) that leave one kind of
# session state behind: the adapter's parse-tree checks cannot see into them, so
# only the reset after the request can stop the state reaching the next one.
SESSION_CHANGES = {
    "role by set_config": "PERFORM set_config('role', '{role}', false);",
    "role by dynamic SET ROLE": "EXECUTE 'SET ROLE {role}';",
    "search_path": "PERFORM set_config('search_path', 'pg_catalog', false);",
    "a setting": "PERFORM set_config('work_mem', '77MB', false);",
    "a custom setting": "PERFORM set_config('request.jwt.claims', '{{\"sub\":\"x\"}}', false);",
    "a temporary table": "EXECUTE 'CREATE TEMP TABLE IF NOT EXISTS qb_leak (a int)';",
    "an advisory lock": "PERFORM pg_advisory_lock(770077);",
    "LISTEN": "EXECUTE 'LISTEN qb_leak';",
}


@pytest.mark.parametrize("kind", sorted(SESSION_CHANGES))
async def test_session_state_left_by_a_function_never_reaches_the_next_request(
    bus: Bus, pg: asyncpg.Connection, unique: UniqueNames, escape_role: str, kind: str
) -> None:
    fn = unique.ident("leak")
    body = SESSION_CHANGES[kind].format(role=escape_role)
    await pg.execute(
        f"CREATE FUNCTION {fn}() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN {body} RETURN 1; END $f$"
    )
    try:
        # One connection: every request runs on the connection the function used.
        svc = await bus.adapter(pool_size=1)
        assert isinstance(svc.executor, PostgresExecutor)
        client = await bus.client()
        before = await snapshot(svc.executor)
        for _ in range(3):
            assert await client.fetchval(f"SELECT {fn}()") == 1
            assert await client.fetchval("SELECT current_user::text") == bus.stack.pg.user
        assert await snapshot(svc.executor) == before
    finally:
        await pg.execute(f"DROP FUNCTION {fn}()")


async def test_a_role_escape_does_not_make_later_writes_fail(
    bus: Bus, pg: asyncpg.Connection, make_table: MakeTable, unique: UniqueNames, escape_role: str
) -> None:
    # The case: after one escape, 20 of 20 later INSERTs failed with 42501.
    table = await make_table("id int")
    fn = unique.ident("escape")
    await pg.execute(
        f"CREATE FUNCTION {fn}() RETURNS int LANGUAGE plpgsql AS "
        f"$f$ BEGIN PERFORM set_config('role', '{escape_role}', false); RETURN 1; END $f$"
    )
    try:
        await bus.adapter(pool_size=2)
        client = await bus.client()
        await asyncio.gather(*(client.fetchval(f"SELECT {fn}()") for _ in range(4)))
        for i in range(20):
            await client.execute(f"INSERT INTO {table} VALUES ($1)", i)
        assert await count(pg, table) == 20
    finally:
        await pg.execute(f"DROP FUNCTION {fn}()")


HOSTILE_BUS_REQUESTS = [
    "SELECT set_config('role', '{role}', false)",
    "SELECT set_config('role', '{role}', true), current_user",
    "SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)",
    "WITH x AS (SELECT set_config('statement_timeout', '1', false)) SELECT * FROM x",
    "SET ROLE {role}",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION {role}",
    "SET search_path = pg_catalog",
    "DO $$ BEGIN EXECUTE 'SET ROLE {role}'; END $$",
    "DO $do$ BEGIN PERFORM set_config('role', '{role}', false); END $do$",
    "PREPARE qb_leak AS SELECT 1",
    "LISTEN qb_leak",
    "DECLARE qb_leak CURSOR WITH HOLD FOR SELECT 1",
    "CREATE TEMP TABLE qb_leak (a int)",
    "SELECT 1 INTO TEMP qb_leak",
    "ALTER ROLE CURRENT_USER SET search_path = pg_catalog",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''true'''; END $$",
    "SELECT 1; SET ROLE {role}",
    "SELECT $$;$$; SET ROLE {role}",
    "SELECT 1 /* ; */ ; RESET ALL",
    "SELECT query_to_xml('SET ROLE {role}', true, true, '')",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = current_user",
]


async def test_hostile_statements_are_refused_and_the_pool_is_unchanged(
    bus: Bus, escape_role: str
) -> None:
    svc = await bus.adapter(pool_size=2)
    assert isinstance(svc.executor, PostgresExecutor)
    client = await bus.client()
    before = await snapshot(svc.executor)
    for template in HOSTILE_BUS_REQUESTS:
        sql = template.format(role=escape_role)
        with pytest.raises(RequestRejectedError) as caught:
            await client.fetch(sql)
        assert not caught.value.retriable, sql
        assert await client.fetchval("SELECT current_user::text") == bus.stack.pg.user, sql
    assert await snapshot(svc.executor) == before


# -- 2. no code execution as a superuser -------------------------------------------------------


async def test_the_stack_adapter_login_has_no_dangerous_rights(
    pg: asyncpg.Connection, stack: Stack
) -> None:
    row = await pg.fetchrow(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "FROM pg_roles WHERE rolname = $1",
        stack.pg.user,
    )
    assert row is not None
    assert not any(row.values()), dict(row)
    for role in ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"):
        assert not await pg.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", stack.pg.user, role)
    assert stack.admin.user != stack.pg.user


async def test_executor_refuses_a_superuser_login_unless_allowed(stack: Stack) -> None:
    refused = PostgresExecutor(stack.admin_dsn, pool_size=1)
    with pytest.raises(ConfigurationError, match=r"SUPERUSER.*allow-superuser"):
        await refused.start()
    allowed = PostgresExecutor(stack.admin_dsn, pool_size=1, allow_superuser=True)
    await allowed.start()
    await allowed.stop()


async def test_executor_refuses_a_login_that_may_run_server_programs(
    stack: Stack, pg: asyncpg.Connection
) -> None:
    role = f"t_login_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    await pg.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    await pg.execute(f"GRANT pg_execute_server_program TO {role}")
    dsn = stack.pg.dsn.replace(f"{stack.pg.user}:", f"{role}:", 1).replace(
        f":{stack.pg.password}@", f":{password}@", 1
    )
    try:
        with pytest.raises(ConfigurationError, match="pg_execute_server_program"):
            await PostgresExecutor(dsn, pool_size=1, idempotency=None).start()
        await pg.execute(f"REVOKE pg_execute_server_program FROM {role}")
        await pg.execute(f"ALTER ROLE {role} CREATEROLE")
        with pytest.raises(ConfigurationError, match="CREATEROLE"):
            await PostgresExecutor(dsn, pool_size=1).start()
    finally:
        await pg.execute(f"DROP ROLE {role}")


async def test_even_unchecked_copy_to_program_is_refused_by_the_database(stack: Stack) -> None:
    # Behind the policy's back (the executor runs whatever it gets): the login itself
    # cannot run programs on the database host.
    executor = PostgresExecutor(stack.pg_dsn, pool_size=1)
    await executor.start()
    try:
        request = make_request("COPY (SELECT 1) TO PROGRAM 'true'", timeout=10)
        with pytest.raises(InsufficientPrivilegeError):
            await executor.run(Job.of(request, [], deadline=Deadline.after(10)))
    finally:
        await executor.stop()


# -- 3. a reply that cannot be delivered never pins the adapter --------------------------------


async def committed_offset(bus: Bus, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bus.settings.bootstrap_servers,
        group_id=bus.group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return await consumer.committed(KafkaTopicPartition(bus.settings.topics.request, partition))
    finally:
        await consumer.stop()


async def test_requests_with_unusable_reply_addresses_are_dead_lettered_unrun_and_never_block(
    bus: Bus, raw: Raw, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int")
    # One connection, so up to 4 requests in flight: 30 bad ones would fill it many times.
    svc = await bus.adapter(pool_size=1)
    topics = bus.settings.topics
    bad_addresses = [
        ReplyAddress(topics.response, 999),  # no such partition
        ReplyAddress(topics.response, -1),
        ReplyAddress(topics.response + ".nobody-made-this", 0),  # no such topic
        ReplyAddress(topics.request, 0),  # not a reply topic: would loop
        ReplyAddress(topics.dead_letter, 0),
        ReplyAddress("some-other-service", 0),
        ReplyAddress("bad name!", 0),
    ]
    bad: set[str] = set()
    last = None
    for i in range(30):
        req = raw.request(
            f"INSERT INTO {table} VALUES ($1)",
            [i],
            reply_to=bad_addresses[i % len(bad_addresses)],
            timeout=3600,  # long deadlines: nothing may wait for them
        )
        bad.add(req.id)
        await raw.send(encode(req), req.id)
    good = raw.request("SELECT 41 + 1")
    await raw.send(encode(good), good.id)
    # Answered while 30 requests with hour-long deadlines are in the partition before it.
    reply = await raw.reply(good.id, timeout=15)
    assert reply.value is not None
    assert b"42" in reply.value
    dead = await raw.dead_lettered(bad)
    assert {(r.header(Headers.DLQ_REASON) or b"").split(b":")[0] for r in dead} == {
        b"unusable reply address"
    }
    assert await count(pg, table) == 0, "a request nobody can hear about must not run"
    # Every offset is committed, so a crash now would redeliver none of them.
    last = await wait_for(
        lambda: committed_offset(bus, _partition_of(svc)), timeout=15, message="commit"
    )
    assert last is not None


def _partition_of(svc: AdapterService) -> int:
    # All raw records share one key, so one partition holds them.
    [tp] = [tp for tp in svc._tracker._next]
    return tp[1]


async def test_a_reply_that_fails_to_send_is_dead_lettered_after_a_bounded_effort(
    bus: Bus, raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    from querybus.errors import TransportError

    svc = await bus.adapter(pool_size=1)
    assert svc._producer is not None
    real_send = svc._producer.send
    refused: list[str] = []

    async def send(topic: str, value: bytes | None, **kw: Any) -> Any:
        if topic == bus.settings.topics.response and value and b"refuse-me" in value:
            refused.append(topic)
            raise TransportError("TopicAuthorizationFailedError: refused")
        return await real_send(topic, value, **kw)

    monkeypatch.setattr(svc._producer, "send", send)
    req = raw.request("SELECT 'refuse-me'", timeout=3600)
    await raw.send(encode(req), req.id)
    [dead] = await raw.dead_lettered({req.id})
    assert dead.value is not None
    assert b"refuse-me" in dead.value  # the reply itself is kept
    assert b"could not be delivered" in (dead.header(Headers.DLQ_REASON) or b"")
    assert len(refused) == 3
    good = raw.request("SELECT 'fine'")
    await raw.send(encode(good), good.id)
    assert (await raw.reply(good.id)).value is not None


# -- 4. a caller's mistake is not an outage -----------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT $1::int", []),
        ("SELECT $1::int, $2::int", [1]),
        ("SELECT 1", [1, 2]),
        ("SELECT $1::int", ["not a number"]),
        ("SELECT $1::date", [12]),
    ],
)
async def test_wrong_parameters_are_a_typed_caller_error(
    client: QueryClient, sql: str, params: list[Any]
) -> None:
    with pytest.raises(DataError) as caught:
        await client.fetch(sql, *params)
    assert not caught.value.retriable
    assert (caught.value.sqlstate or "").startswith("22")  # data exception
    assert await client.fetchval("SELECT 1") == 1


async def test_caller_mistakes_never_take_a_replica_out_of_rotation(stack: Stack) -> None:
    # The case: 10 bad requests per second moved 280 of 400 good reads to
    # the primary, because each one banned the replica as "unreachable".
    settings = RoutingSettings(lag_interval=0.05, max_replica_lag=30.0, ban_seconds=5.0)
    async with RoutingExecutor(stack.pg_dsn, [stack.replica_dsn], settings=settings) as ex:
        [replica] = ex.replicas
        for sql, params in [("SELECT $1::int", []), ("SELECT 1", [1]), ("SELECT $1::int", [1.5])]:
            for _ in range(5):
                request = make_request(sql, timeout=10)
                with pytest.raises(DataError):
                    await ex.run(Job.of(request, params, deadline=Deadline.after(10)))
        assert replica.failures == 0
        assert not replica.banned()
        good = make_request("SELECT 1", timeout=10)
        outcome = await ex.run(Job.of(good, [], deadline=Deadline.after(10)))
        assert outcome.route is not None
        assert outcome.route.target == replica.label


def test_only_connection_failures_count_against_a_target() -> None:
    assert is_target_failure(OperationalError("x", sqlstate="08006"))
    assert is_target_failure(OperationalError("x", sqlstate="57P01"))
    assert not is_target_failure(OperationalError("out of memory", sqlstate="53200"))
    assert not is_target_failure(QueryCanceledError("x", sqlstate="57014"))
    assert not is_target_failure(DataError("bad parameters", sqlstate="22023"))


# -- 5. a committed write is never reported as a failure ---------------------------------------


@pytest.fixture
def small_replies(bus: Bus) -> Bus:
    bus.settings = BusSettings(
        bootstrap_servers=bus.settings.bootstrap_servers,
        topics=bus.settings.topics,
        request_partitions=bus.settings.request_partitions,
        response_partitions=bus.settings.response_partitions,
        max_message_bytes=50_000,
    )
    return bus


async def test_a_write_whose_rows_do_not_fit_reports_that_it_committed(
    small_replies: Bus, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    bus = small_replies
    table = await make_table("id int, pad text")
    await bus.adapter()
    client = await bus.client()
    with pytest.raises(ResultTooLargeError) as caught:
        await client.fetch(
            f"INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g "
            "RETURNING *"
        )
    err = caught.value
    assert err.command == "INSERT 0 2000"
    assert err.rowcount == 2000
    assert not err.retriable
    assert "ran" in err.message
    assert await count(pg, table) == 2000
    # Reads that do not fit say the same (the statement ran; nothing to commit).
    with pytest.raises(ResultTooLargeError) as read:
        await client.fetch(f"SELECT * FROM {table}")
    assert read.value.command == "SELECT 2000"


# -- 6. limits apply to what the request is, not to what the broker saw ------------------------


async def test_a_compressed_request_over_the_decoded_limit_is_refused_unrun(
    bus: Bus, raw: Raw, make_table: MakeTable, pg: asyncpg.Connection
) -> None:
    table = await make_table("id int")
    await bus.adapter()
    # 5 MB of SQL comment, a few KB once gzipped: the broker's 1 MB limit lets it through.
    req = raw.request(f"INSERT INTO {table} VALUES (1) -- " + "x" * 5_000_000)
    value = encode(req)
    assert len(gzip.compress(value)) < 100_000
    producer = AIOKafkaProducer(
        bootstrap_servers=bus.settings.bootstrap_servers,
        compression_type="gzip",
        max_request_size=10_000_000,  # the client's own check is on the uncompressed size
    )
    await producer.start()
    try:
        topics = bus.settings.topics
        await producer.send_and_wait(
            topics.request,
            value,
            key=b"k",
            headers=[
                (Headers.CORRELATION_ID, req.id.encode()),
                (Headers.REPLY_TOPIC, topics.response.encode()),
                (Headers.REPLY_PARTITION, b"1"),
            ],
        )
    finally:
        await producer.stop()
    reply = failure(await raw.reply(req.id))
    assert reply.error.code == "payload_too_large"
    assert "once decompressed" in reply.error.message
    [dead] = await raw.dead_lettered({req.id})
    assert dead.value is None  # the reason is kept, the 5 MB are not
    assert await count(pg, table) == 0


async def test_too_many_or_too_deep_parameters_are_refused(client: QueryClient) -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(RequestRejectedError, match="nested"):
        await client.fetchval("SELECT $1::jsonb", {"a": deep})
    with pytest.raises(RequestRejectedError, match="nested"):
        await client.fetchval("SELECT $1::int[]", deep)


async def test_values_nested_beyond_the_decoders_reach_are_a_protocol_error(
    bus: Bus, raw: Raw
) -> None:
    await bus.adapter()
    cid = uuid.uuid4().hex
    deep = b"[" * 200_000 + b"]" * 200_000
    value = (
        b'{"v":1,"id":"'
        + cid.encode()
        + b'","client":"c","sql":"SELECT 1","params":'
        + deep
        + b',"reply_to":{"topic":"x","partition":0},"deadline":1e12}'
    )
    await raw.send(value, cid)
    assert failure(await raw.reply(cid)).error.code == "protocol"
    [dead] = await raw.dead_lettered({cid})
    assert b"nested too deeply" in (dead.header(Headers.DLQ_REASON) or b"")


async def test_a_request_cannot_ask_for_more_time_than_the_adapter_allows(
    bus: Bus, raw: Raw
) -> None:
    transport = await bus.transport()
    svc = AdapterService(
        transport,
        PostgresExecutor(bus.stack.pg_dsn, pool_size=1),
        bus=bus.settings,
        settings=AdapterSettings(group_id=bus.group_id, pool_size=1, max_deadline=1.0),
    )
    await svc.start(http=False)
    try:
        req = raw.request("SELECT pg_sleep(30)", timeout=3600)
        await raw.send(encode(req), req.id)
        # Answered long before the 30 s sleep could end: cancelled at the adapter's
        # limit (or, on a slow machine, out of time before it even started).
        reply = failure(await raw.reply(req.id, timeout=20))
        assert reply.error.sqlstate == "57014" or reply.error.code == "deadline_exceeded"
    finally:
        with contextlib.suppress(Exception):
            await svc.stop()
