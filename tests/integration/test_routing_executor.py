"""RoutingExecutor against the real primary and real streaming replicas.

Most tests use a *private* replica of the stack's primary (``pg_basebackup -R``
into ``.stack/``), because they pause its replay or stop it: the shared
replica stays untouched for everyone else's tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from tests.helpers import make_request, wait_for
from tests.integration.routing_helpers import (
    PrivateReplica,
    caught_up,
    free_port,
    private_replica_of,
)
from tests.stack import Stack
from tests.unit.test_classify_routing import TABLE

from querybus.errors import NoEligibleTargetError
from querybus.execution import Deadline, Job
from querybus.observability.metrics import Metrics
from querybus.protocol.messages import OperationType, QueryRequest, RoutePreference
from querybus.routing.classify import FunctionCatalog
from querybus.routing.decisions import RoutingDecision
from querybus.routing.executor import RoutingExecutor
from querybus.routing.reasons import Reason, Role
from querybus.routing.settings import RoutingSettings
from querybus.routing.strategies import StrategyName

SCHEMA_SQL = """
CREATE SCHEMA {s};
SET search_path = {s};
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric DEFAULT 0);
CREATE TABLE orders (id serial PRIMARY KEY, account_id int, amount numeric DEFAULT 1);
CREATE TABLE audit (at timestamptz DEFAULT now());
CREATE TABLE ryw (id bigserial PRIMARY KEY, worker int, n int);
CREATE SEQUENCE order_ids;
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one;
CREATE FUNCTION stable_total() RETURNS numeric STABLE LANGUAGE sql
    AS 'SELECT coalesce(sum(balance), 0) FROM accounts';
CREATE FUNCTION audit_touch() RETURNS int VOLATILE LANGUAGE sql
    AS 'INSERT INTO audit DEFAULT VALUES RETURNING 1';
INSERT INTO accounts (id, owner, balance) SELECT g, 'o' || g, g FROM generate_series(1, 20) g;
INSERT INTO orders (account_id) SELECT g FROM generate_series(1, 20) g;
"""


# -- a private replica -------------------------------------------------------


@pytest.fixture(scope="module")
def private_replica(stack: Stack) -> Iterator[PrivateReplica]:
    with private_replica_of(stack) as replica:
        yield replica


# -- schema and executors ------------------------------------------------------


@pytest.fixture(scope="module")
async def schema(stack: Stack, private_replica: PrivateReplica) -> AsyncIterator[str]:
    name = f"t_routing_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        await conn.execute(SCHEMA_SQL.format(s=name))
        await caught_up(stack.pg_dsn, private_replica.dsn)
        await caught_up(stack.pg_dsn, stack.replica_dsn)
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


def _in(dsn: str, schema: str) -> str:
    # asyncpg passes unknown DSN parameters as server settings.
    return f"{dsn}?search_path={schema}"


FAST = RoutingSettings(lag_interval=0.05, max_replica_lag=0.5, ban_seconds=0.2, ban_max_seconds=1.0)


@contextlib.asynccontextmanager
async def routing(
    stack: Stack, replica_dsns: list[str], schema: str, **kw: Any
) -> AsyncIterator[RoutingExecutor]:
    settings = kw.pop("settings", FAST)
    ex = RoutingExecutor(
        _in(stack.pg_dsn, schema), [_in(d, schema) for d in replica_dsns], settings=settings, **kw
    )
    await ex.start()
    try:
        yield ex
    finally:
        await ex.stop()


def req(sql: str, op: OperationType = OperationType.SELECT, **kw: Any) -> QueryRequest:
    """A request that declares its operation (a read unless told otherwise)."""
    return make_request(sql, op=op, client="routing-test", **kw)


# -- tests -------------------------------------------------------------------

_NOT_PREPARABLE = ("COPY", "BEGIN;")


async def test_statement_table_on_real_servers(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    async with routing(stack, [private_replica.dsn], schema) as ex:
        assert ex.classifier.catalog is not None
        assert len(ex.classifier.catalog) > 1000  # pg_proc was read
        for sql, role, reason in TABLE:
            got = ex.classify(sql)
            # With the real catalog, audit_touch() is known to be volatile.
            want = Reason.VOLATILE_FUNCTION if reason is Reason.UNKNOWN_FUNCTION else reason
            assert (got.role, got.reason) == (role, want), sql
            if role is Role.REPLICA and not sql.startswith(_NOT_PREPARABLE):
                # Every statement sent to a replica really runs there.
                out = await ex.run(
                    Job.of(req(sql), [1] if "$1" in sql else [], deadline=Deadline.after(10))
                )
                assert out.route is not None
                assert out.route.target.startswith("replica:"), (sql, out.route)
        out = await ex.run(Job.of(req("SELECT stable_total()"), [], deadline=Deadline.after(10)))
        assert out.route is not None
        assert out.route.target.startswith("replica:")


async def test_reads_on_replica_writes_on_primary(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    async with routing(stack, [private_replica.dsn], schema) as ex:
        read = await ex.run(
            Job.of(req("SELECT pg_is_in_recovery()"), [], deadline=Deadline.after(10))
        )
        assert read.rows == [[True]]
        assert read.route is not None
        assert read.route.target == f"replica:127.0.0.1:{private_replica.port}"
        assert read.route.reason == "read"
        assert read.lsn is None
        write = await ex.run(
            Job.of(
                req(
                    "INSERT INTO audit DEFAULT VALUES RETURNING pg_is_in_recovery()",
                    OperationType.INSERT,
                ),
                [],
                deadline=Deadline.after(10),
            )
        )
        assert write.rows == [[False]]
        assert write.route is not None
        assert (write.route.target, write.route.reason) == ("primary", "write")
        assert write.lsn is not None
        assert "/" in write.lsn
        locked = await ex.run(
            Job.of(
                req("SELECT id FROM accounts WHERE id = 1 FOR UPDATE"),
                [],
                deadline=Deadline.after(10),
            )
        )
        assert locked.route is not None
        assert (locked.route.target, locked.route.reason) == ("primary", "locking")
        forced = await ex.run(
            Job.of(
                req("SELECT pg_is_in_recovery()", route=RoutePreference.PRIMARY),
                [],
                deadline=Deadline.after(10),
            )
        )
        assert forced.rows == [[False]]
        assert forced.route is not None
        assert forced.route.reason == "preference_primary"


async def test_replay_paused_moves_reads_to_primary_and_back(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    control = await asyncpg.connect(private_replica.admin_dsn)
    writer = await asyncpg.connect(_in(stack.pg_dsn, schema))
    try:
        async with routing(stack, [private_replica.dsn], schema) as ex:
            replica = ex.replicas[0]
            probe = req("SELECT count(*) FROM accounts")

            async def served_by() -> str:
                out = await ex.run(Job.of(probe, [], deadline=Deadline.after(10)))
                assert out.route is not None
                return out.route.target

            assert (await served_by()).startswith("replica:")
            await control.execute("SELECT pg_wal_replay_pause()")

            async def lag_detected() -> bool:
                await writer.execute("INSERT INTO audit DEFAULT VALUES")
                s = replica.sample
                return s is not None and s.lag_seconds > FAST.max_replica_lag and s.lag_bytes > 0

            await wait_for(lag_detected, 20, message="lag to be detected")
            out = await ex.run(Job.of(probe, [], deadline=Deadline.after(10)))
            assert out.route is not None
            assert (out.route.target, out.route.reason) == ("primary", "replica_lag")

            await control.execute("SELECT pg_wal_replay_resume()")

            async def back() -> bool:
                return (await served_by()).startswith("replica:")

            await wait_for(back, 20, message="reads to return to the replica")
    finally:
        with contextlib.suppress(Exception):
            await control.execute("SELECT pg_wal_replay_resume()")
        await control.close()
        await writer.close()


async def test_read_your_writes_under_load(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    settings = RoutingSettings(lag_interval=0.05, max_replica_lag=5.0, ryw_wait=0.05)
    workers, rounds = 10, 100  # 1,000 write-then-read pairs
    reasons: collections.Counter[str] = collections.Counter()
    plain: collections.Counter[str] = collections.Counter()
    stop = asyncio.Event()
    async with routing(stack, [private_replica.dsn], schema, settings=settings) as ex:

        async def worker(w: int) -> None:
            for n in range(rounds):
                wrote = await ex.run(
                    Job.of(
                        req(
                            "INSERT INTO ryw (worker, n) VALUES ($1, $2) RETURNING id",
                            OperationType.INSERT,
                        ),
                        [w, n],
                        deadline=Deadline.after(10),
                    )
                )
                assert wrote.lsn is not None
                got = await ex.run(
                    Job.of(
                        req("SELECT n FROM ryw WHERE id = $1", min_lsn=wrote.lsn),
                        [wrote.rows[0][0]],
                        deadline=Deadline.after(10),
                    )
                )
                assert got.rows == [[n]], "stale read: the row just written is missing"
                assert got.route is not None
                reasons[got.route.reason] += 1

        async def reader() -> None:
            while not stop.is_set():
                out = await ex.run(
                    Job.of(req("SELECT count(*) FROM ryw"), [], deadline=Deadline.after(10))
                )
                assert out.route is not None
                plain[out.route.target.split(":")[0]] += 1

        readers = [asyncio.create_task(reader()) for _ in range(3)]
        try:
            await asyncio.gather(*(worker(w) for w in range(workers)))
        finally:
            stop.set()
            await asyncio.gather(*readers)
    assert sum(reasons.values()) == workers * rounds
    assert set(reasons) <= {"read_your_writes", "ryw_primary"}
    # Reads without an LSN keep using the replica.
    assert plain["replica"] > 0
    assert plain["replica"] >= 0.9 * sum(plain.values()), plain
    print(f"read-your-writes reasons: {dict(reasons)}; plain reads: {dict(plain)}")


async def test_replica_stopped_mid_load(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    served: collections.Counter[str] = collections.Counter()
    failures: list[BaseException] = []
    stop = asyncio.Event()
    async with routing(stack, [private_replica.dsn], schema) as ex:

        async def reader() -> None:
            while not stop.is_set():
                try:
                    out = await ex.run(
                        Job.of(
                            req("SELECT count(*) FROM accounts"), [], deadline=Deadline.after(10)
                        )
                    )
                except Exception as exc:  # counted: the test asserts there are none
                    failures.append(exc)
                    continue
                assert out.route is not None
                served[out.route.target.split(":")[0]] += 1

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        try:
            await wait_for(_served(served, "replica", 50), 20, message="load on the replica")
            await asyncio.to_thread(private_replica.stop)
            before = served["primary"]
            await wait_for(
                _served(served, "primary", before + 50), 20, message="reads on the primary"
            )
            await asyncio.to_thread(private_replica.start)
            after = served["replica"]
            await wait_for(
                _served(served, "replica", after + 50), 30, message="the replica to be used again"
            )
        finally:
            stop.set()
            await asyncio.gather(*readers)
    assert failures == []
    print(f"replica stopped mid-load: {dict(served)}")


def _served(counter: collections.Counter[str], kind: str, at_least: int) -> Any:
    async def check() -> bool:
        return counter[kind] >= at_least

    return check


async def test_self_healing_on_read_only_error(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    # A catalog that (wrongly) says audit_touch() is stable: the replica refuses it.
    lying = FunctionCatalog({"audit_touch": "s"})
    async with routing(stack, [private_replica.dsn], schema, catalog=lying) as ex:
        sql = "SELECT audit_touch()"
        first = await ex.run(Job.of(req(sql), [], deadline=Deadline.after(10)))
        assert first.route is not None
        assert (first.route.target, first.route.reason) == ("primary", "read_only_retry")
        assert first.lsn is not None  # it wrote: the caller can read its write
        second = await ex.run(Job.of(req(sql), [], deadline=Deadline.after(10)))
        assert second.route is not None
        assert (second.route.target, second.route.reason) == ("primary", "learned_primary")


async def test_decisions_and_metrics(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    decisions: list[RoutingDecision] = []
    metrics = Metrics()
    async with routing(
        stack, [private_replica.dsn], schema, metrics=metrics, on_decision=decisions.append
    ) as ex:
        await ex.run(
            Job.of(
                req("SELECT owner FROM accounts WHERE id = $1"), [3], deadline=Deadline.after(10)
            )
        )
        await ex.run(
            Job.of(
                req("UPDATE accounts SET balance = balance WHERE id = 1", OperationType.UPDATE),
                [],
                deadline=Deadline.after(10),
            )
        )
        with pytest.raises(Exception, match="nosuch"):
            await ex.run(Job.of(req("SELECT * FROM nosuch"), [], deadline=Deadline.after(10)))
    assert [d.target.split(":")[0] for d in decisions] == ["replica", "primary", "replica"]
    read, write, failed = decisions
    assert read.reason == "read"
    assert read.fingerprint
    assert read.lag_seconds is not None
    assert read.ok
    assert write.reason == "write"
    assert write.lag_seconds is None
    assert not failed.ok
    assert failed.error == "42P01"
    text = metrics.render().decode()
    assert (
        f'querybus_route_total{{reason="read",target="replica:127.0.0.1:{private_replica.port}"}}'
        in text
    )
    assert 'querybus_route_total{reason="write",target="primary"} 1.0' in text
    assert "querybus_route_seconds_count 3.0" in text


async def test_replica_down_at_start_and_fallback_settings(stack: Stack, schema: str) -> None:
    dead = stack.pg_dsn.replace(f":{stack.pg.port}/", f":{free_port()}/")
    async with routing(stack, [dead], schema) as ex:
        out = await ex.run(Job.of(req("SELECT 1"), [], deadline=Deadline.after(10)))
        assert out.route is not None
        assert (out.route.target, out.route.reason) == ("primary", "no_healthy_replica")
    strict = RoutingSettings(fallback_to_primary=False, lag_interval=0.05)
    async with routing(stack, [dead], schema, settings=strict) as ex:
        with pytest.raises(NoEligibleTargetError):
            await ex.run(Job.of(req("SELECT 1"), [], deadline=Deadline.after(10)))
        # Writes never depend on replicas.
        out = await ex.run(
            Job.of(
                req("INSERT INTO audit DEFAULT VALUES", OperationType.INSERT),
                [],
                deadline=Deadline.after(10),
            )
        )
        assert out.route is not None
        assert out.route.target == "primary"


async def test_shared_stack_replica(stack: Stack, schema: str) -> None:
    async with routing(stack, [stack.replica_dsn], schema) as ex:
        out = await ex.run(
            Job.of(req("SELECT pg_is_in_recovery()"), [], deadline=Deadline.after(10))
        )
        assert out.rows == [[True]]
        assert out.route is not None
        replica = f"replica:{stack.replica_host}:{stack.replica_port}"
        assert out.route.target == replica
        # Each target's pool, for the adapter's metrics (all idle again now).
        stats = ex.pool_stats()
        assert set(stats) == {"primary", replica}
        assert all(s.in_use == 0 and s.idle == s.size and not s.waiting for s in stats.values())


async def test_catalog_reloaded_after_ddl(
    stack: Stack, private_replica: PrivateReplica, schema: str
) -> None:
    async with routing(stack, [private_replica.dsn], schema) as ex:
        fn = f"fresh_{uuid.uuid4().hex[:8]}"
        assert ex.classify(f"SELECT {fn}()").reason is Reason.UNKNOWN_FUNCTION
        await ex.run(
            Job.of(
                req(
                    f"CREATE FUNCTION {fn}() RETURNS int STABLE LANGUAGE sql AS 'SELECT 7'",
                    OperationType.DDL,
                ),
                [],
                deadline=Deadline.after(10),
            )
        )

        async def known() -> bool:
            return ex.classify(f"SELECT {fn}()").role is Role.REPLICA

        await wait_for(known, 10, message="the catalog to be re-read")


@pytest.mark.parametrize("strategy", ["round_robin", "least_outstanding", "weighted_random"])
async def test_two_replicas_share_reads(
    stack: Stack, private_replica: PrivateReplica, schema: str, strategy: str
) -> None:
    settings = RoutingSettings(lag_interval=0.05, strategy=StrategyName(strategy))
    used: collections.Counter[str] = collections.Counter()
    async with routing(
        stack, [stack.replica_dsn, private_replica.dsn], schema, settings=settings
    ) as ex:

        async def one() -> None:
            out = await ex.run(
                Job.of(req("SELECT pg_is_in_recovery()"), [], deadline=Deadline.after(10))
            )
            assert out.rows == [[True]]
            assert out.route is not None
            used[out.route.target] += 1

        for _ in range(10):
            await asyncio.gather(*(one() for _ in range(10)))
    assert len(used) == 2, used
    assert all(n >= 10 for n in used.values()), used
