"""Replicas discovered from the registry, on the real primary, the shared
streaming replica and real etcd (a unique key prefix per test).

* a :class:`RoutingExecutor` with no static replica follows the
  ``postgres-replica`` instances: reads move to the replica once it is
  registered and back to the primary once it is deregistered; static replicas
  are never touched by discovery;
* ``querybus registry announce-replica`` as a real process: passing with its
  endpoint and no credentials in the stored record, critical for a primary,
  gone at once on SIGTERM;
* ``querybus serve`` with ``QUERYBUS_REPLICA_DISCOVERY=1`` routes reads to a
  replica another process announces.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.helpers import bounded, wait_for
from tests.integration.routing_helpers import free_port
from tests.stack import Stack, UniqueNames

from querybus.client import QueryClient
from querybus.config import BusSettings, TopicNames
from querybus.execution import Deadline, Job
from querybus.protocol.messages import QueryRequest, ReplyAddress
from querybus.registry import (
    HealthStatus,
    RegistryBackend,
    RegistryClient,
    ServiceRegistry,
    open_backend,
)
from querybus.routing.discovery import ReplicaDiscovery
from querybus.routing.executor import RoutingExecutor
from querybus.routing.settings import RoutingSettings
from querybus.routing.targets import ReplicaConfig

SERVICE = "postgres-replica"
FAST = RoutingSettings(lag_interval=0.05, max_replica_lag=5.0, ban_seconds=0.2, ban_max_seconds=1.0)


@pytest.fixture
async def backend(stack: Stack, unique: UniqueNames) -> AsyncIterator[RegistryBackend]:
    b = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=unique("disc") + ".")
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def req(sql: str) -> QueryRequest:
    return QueryRequest(
        id=uuid.uuid4().hex,
        client="discovery-test",
        sql=sql,
        reply_to=ReplyAddress("unused", 0),
        deadline=time.time() + 30,
    )


async def where(ex: RoutingExecutor) -> tuple[str, str, Any]:
    out = await ex.run(Job.of(req("SELECT pg_is_in_recovery()"), [], deadline=Deadline.after(10)))
    assert out.route is not None
    return out.route.target, out.route.reason, out.rows[0][0]


@bounded(90)
async def test_discovered_replica_gets_reads_and_leaves_with_its_registration(
    stack: Stack, backend: RegistryBackend
) -> None:
    label = f"replica:127.0.0.1:{stack.replica_port}"
    async with (
        RoutingExecutor(stack.pg_dsn, [], settings=FAST) as ex,
        ReplicaDiscovery(ex, RegistryClient(backend), interval=0.1) as discovery,
    ):
        assert await where(ex) == ("primary", "no_healthy_replica", False)
        async with ServiceRegistry(backend) as registry:
            registration = await registry.register(
                SERVICE,
                "database",
                f"127.0.0.1:{stack.replica_port}",
                metadata={"role": "replica", "database": stack.pg.database, "weight": "1"},
                ttl=10,
            )

            async def on_replica() -> bool:
                return await where(ex) == (label, "read", True)

            await wait_for(
                on_replica, 15, interval=0.05, message="a read on the discovered replica"
            )
            assert discovery.discovered == {f"127.0.0.1:{stack.replica_port}": label[8:]}
            target = ex.replica(label[8:])
            assert target is not None
            # The primary's credentials, the replica's address.
            assert target.dsn == stack.pg_dsn.replace(
                f"@{stack.pg.host}:{stack.pg.port}/", f"@127.0.0.1:{stack.replica_port}/"
            )

            await registration.deregister()

            async def on_primary() -> bool:
                return await where(ex) == ("primary", "no_healthy_replica", False)

            await wait_for(on_primary, 15, interval=0.05, message="reads back on the primary")
            assert ex.replicas == []
            assert target.retired


@bounded(90)
async def test_static_replicas_are_never_touched_by_discovery(
    stack: Stack, backend: RegistryBackend
) -> None:
    # A static replica that is down (nothing listens there): banned, but configured.
    dead = free_port()
    static = ReplicaConfig(
        dsn=stack.pg_dsn.replace(f":{stack.pg.port}/", f":{dead}/"), name="static"
    )
    endpoint = f"127.0.0.1:{stack.replica_port}"
    async with (
        RoutingExecutor(stack.pg_dsn, [static], settings=FAST) as ex,
        ReplicaDiscovery(ex, RegistryClient(backend), interval=0.1) as discovery,
        ServiceRegistry(backend) as registry,
    ):
        (static_target,) = ex.replicas
        # An instance at the static replica's own address is not added a second time.
        await registry.register(SERVICE, "database", f"127.0.0.1:{dead}", ttl=10)
        live = await registry.register(SERVICE, "database", endpoint, ttl=10)
        await wait_for(
            lambda: discovery.discovered == {endpoint: endpoint}, 15, message="discovered"
        )
        assert [r.name for r in ex.replicas] == ["static", endpoint]
        assert ex.replicas[0] is static_target
        assert (await where(ex))[0] == f"replica:{endpoint}"

        await live.deregister()
        await wait_for(lambda: discovery.discovered == {}, 15, message="removed")
        assert ex.replicas == [static_target]
        assert not static_target.retired


@bounded(90)
async def test_unreachable_registry_keeps_the_discovered_set(
    stack: Stack, backend: RegistryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"127.0.0.1:{stack.replica_port}"
    async with (
        RoutingExecutor(stack.pg_dsn, [], settings=FAST) as ex,
        ServiceRegistry(backend) as registry,
    ):
        await registry.register(SERVICE, "database", endpoint, ttl=10)
        async with ReplicaDiscovery(ex, RegistryClient(backend), interval=0.1) as discovery:
            assert discovery.discovered == {endpoint: endpoint}
        # The same executor, now following a registry nobody answers at.
        down = open_backend(f"etcd://127.0.0.1:{free_port()}")
        async with ReplicaDiscovery(ex, RegistryClient(down), interval=0.05) as blind:
            blind._added = dict(discovery._added)  # as if it had discovered them before the outage
            await asyncio.sleep(0.5)
            assert [r.name for r in ex.replicas] == [endpoint]
            assert (await where(ex))[0] == f"replica:{endpoint}"
        outages = [r for r in caplog.records if "registry unreachable" in r.getMessage()]
        assert len(outages) == 1, "logged once per outage, not per poll"


# -- announce-replica as a real process ------------------------------------------------


def _env(stack: Stack, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "QUERYBUS_REGISTRY": "etcd",
        "ETCD_ENDPOINTS": stack.etcd_endpoint,
        "QUERYBUS_TOPIC_PREFIX": prefix,
        **extra,
    }


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", *args,
        env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _announce(env: dict[str, str], dsn: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "registry", "announce-replica", dsn, *args,
        env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


@bounded(90)
async def test_announce_replica_process(stack: Stack, unique: UniqueNames) -> None:
    prefix = unique("announce") + "."
    env = _env(stack, prefix)
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=prefix)
    await backend.start()
    replica = await _announce(env, stack.replica_dsn, "--ttl", "10", "--weight", "3")
    primary = await _announce(env, stack.pg_dsn, "--service", "not-a-replica")
    try:
        client = RegistryClient(backend)
        endpoint = f"127.0.0.1:{stack.replica_port}"

        async def announced() -> bool:
            found = await client.instances(SERVICE, status=HealthStatus.PASSING)
            return [i.endpoint for i in found] == [endpoint]

        await wait_for(announced, 30, interval=0.1, message="the replica announced as passing")
        (instance,) = await client.instances(SERVICE)
        assert instance.service_type == "database"
        assert instance.metadata == {
            "role": "replica",
            "database": stack.pg.database,
            "weight": "3",
            "group": "default",
        }

        rc, out = await _cli(env, "registry", "ls", "--json")
        assert rc == 0, out
        listed = [i for i in json.loads(out) if i["name"] == SERVICE]
        assert len(listed) == 1
        assert listed[0]["endpoint"] == endpoint
        assert listed[0]["status"] == "passing"
        assert stack.pg.password not in out, "the password reached the registry"
        assert "postgresql://" not in out
        assert stack.pg.user not in json.dumps(listed[0]["metadata"])

        # The primary announced as a replica: critical, so nobody reads from it.
        async def critical() -> list[Any]:
            return await client.instances("not-a-replica", status=HealthStatus.CRITICAL)

        (wrong,) = await wait_for(critical, 30, interval=0.1, message="the primary as critical")
        assert wrong.endpoint == f"{stack.pg.host}:{stack.pg.port}"
        assert "not in recovery" in wrong.note

        # A clean stop deregisters at once (well before the 10 s TTL).
        replica.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(replica.wait(), 30) == 0
        assert await client.instances(SERVICE) == []
    finally:
        await _stop(replica)
        await _stop(primary)
        await backend.stop()


# -- querybus serve with discovery -------------------------------------------------------


@bounded(90)
async def test_serve_routes_reads_to_an_announced_replica(
    stack: Stack, unique: UniqueNames
) -> None:
    prefix = unique("servedisc") + "."
    env = _env(
        stack,
        prefix,
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        QUERYBUS_GROUP_ID=unique("group"),
        QUERYBUS_HTTP_PORT="0",
        QUERYBUS_POOL_SIZE="2",
        QUERYBUS_REPLICA_DSNS="",  # no static replica: routing only through discovery
        QUERYBUS_REPLICA_DISCOVERY="1",
        QUERYBUS_REPLICA_DISCOVERY_INTERVAL="0.2",
        QUERYBUS_REPLICA_SERVICE="pg-ro",
    )
    adapter = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    announcer: asyncio.subprocess.Process | None = None
    settings = BusSettings(
        bootstrap_servers=stack.kafka_bootstrap, topics=TopicNames(prefix=prefix)
    )
    try:
        async with QueryClient(settings, timeout=30) as client:
            first = await client.query("SELECT pg_is_in_recovery()")
            assert first.route is not None
            assert (first.route.target, first.route.reason) == ("primary", "no_healthy_replica")

            announcer = await _announce(env, stack.replica_dsn, "--service", "pg-ro")
            label = f"replica:127.0.0.1:{stack.replica_port}"

            async def on_replica() -> bool:
                got = await client.query("SELECT pg_is_in_recovery()")
                assert got.route is not None
                return got.route.target == label and got.rows[0][0] is True

            await wait_for(on_replica, 60, interval=0.1, message="a read on the announced replica")

            announcer.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(announcer.wait(), 30) == 0

            async def on_primary() -> bool:
                got = await client.query("SELECT pg_is_in_recovery()")
                assert got.route is not None
                return got.route.target == "primary"

            await wait_for(on_primary, 30, interval=0.1, message="reads back on the primary")
        adapter.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(adapter.wait(), 60) == 0
    finally:
        if announcer is not None:
            await _stop(announcer)
        await _stop(adapter)
