"""Replica discovery without a database: the DSN rewrite, endpoint parsing,
what an announcement carries, copy-on-write replica lists, and syncing an
(unstarted) executor with the memory registry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from querybus.errors import ConfigurationError, OperationalError, RegistryUnavailableError
from querybus.registry import RegistryClient, ServiceInstance, ServiceRegistry
from querybus.registry.backends.memory import MemoryBackend
from querybus.routing.discovery import ReplicaDiscovery, announcement, parse_endpoint
from querybus.routing.executor import RoutingExecutor
from querybus.routing.settings import RoutingSettings
from querybus.routing.strategies import LeastOutstanding, RoundRobin
from querybus.routing.targets import ReplicaConfig, Target, dsn_name, replica_dsn

PRIMARY = "postgresql://app:s3cr%40t@db-primary:5433/shop?sslmode=require&application_name=x"

# -- the DSN rewrite -------------------------------------------------------------------


def test_replica_dsn_replaces_host_and_port_and_keeps_credentials() -> None:
    dsn = replica_dsn(PRIMARY, "10.0.0.7", 5544)
    assert dsn == (
        "postgresql://app:s3cr%40t@10.0.0.7:5544/shop?sslmode=require&application_name=x"
    )


def test_replica_dsn_replaces_database_when_given() -> None:
    dsn = replica_dsn(PRIMARY, "r1", 5432, database="shop replica/2")
    assert dsn.startswith("postgresql://app:s3cr%40t@r1:5432/shop%20replica%2F2?")
    assert "sslmode=require" in dsn


def test_replica_dsn_brackets_ipv6() -> None:
    assert replica_dsn(PRIMARY, "::1", 6000).startswith("postgresql://app:s3cr%40t@[::1]:6000/")
    assert replica_dsn(PRIMARY, "[fe80::2]", 6000).startswith(
        "postgresql://app:s3cr%40t@[fe80::2]:6000/"
    )
    assert dsn_name(replica_dsn(PRIMARY, "::1", 6000)) == "[::1]:6000"


def test_replica_dsn_drops_host_parameters_and_multi_host() -> None:
    primary = "postgresql://u:p@h1:5432,h2:5433/db?host=/tmp&port=1&dbname=other&x=1"
    assert replica_dsn(primary, "r", 7000) == "postgresql://u:p@r:7000/db?dbname=other&x=1"
    assert replica_dsn(primary, "r", 7000, database="d") == "postgresql://u:p@r:7000/d?x=1"


def test_replica_dsn_without_credentials_or_path() -> None:
    assert replica_dsn("postgres://h", "r", 1) == "postgres://r:1"


@pytest.mark.parametrize(
    ("primary", "host", "port"),
    [
        ("host=h port=5432 user=u", "r", 5432),  # libpq key=value: not a URI
        (PRIMARY, "", 5432),
        (PRIMARY, "evil@host", 5432),
        (PRIMARY, "r", 0),
        (PRIMARY, "r", 70000),
    ],
)
def test_replica_dsn_rejects(primary: str, host: str, port: int) -> None:
    with pytest.raises(ConfigurationError):
        replica_dsn(primary, host, port)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:5433", ("127.0.0.1", 5433)),
        ("db.example:6432", ("db.example", 6432)),
        ("db.example", ("db.example", 5432)),
        ("[::1]:5433", ("::1", 5433)),
        ("[::1]", ("::1", 5432)),
        ("::1", ("::1", 5432)),
    ],
)
def test_parse_endpoint(endpoint: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["", ":5432", "h:port", "h:0", "h:99999", "[::1", "a/b:1"])
def test_parse_endpoint_rejects(endpoint: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_endpoint(endpoint)


def test_announcement_never_carries_credentials() -> None:
    endpoint, metadata = announcement(
        "postgresql://replicator:hunter2@10.1.2.3:5544/shop", weight=2.5, group="analytics"
    )
    assert endpoint == "10.1.2.3:5544"
    assert metadata == {
        "role": "replica",
        "database": "shop",
        "weight": "2.5",
        "group": "analytics",
    }
    text = repr((endpoint, metadata))
    assert "hunter2" not in text
    assert "replicator" not in text
    assert announcement("postgresql://u@[::1]:7/d")[0] == "[::1]:7"
    assert announcement("postgresql://u@h/d", endpoint="10.0.0.1:6000")[0] == "10.0.0.1:6000"
    with pytest.raises(ConfigurationError):
        announcement("postgresql://u@h1:1,h2:2/d")
    with pytest.raises(ConfigurationError):
        announcement("postgresql:///d")  # no TCP host
    with pytest.raises(ConfigurationError):
        announcement("postgresql://u@h/d", weight=-1)


# -- copy-on-write replica lists ---------------------------------------------------------


def _executor(*replicas: str | ReplicaConfig) -> RoutingExecutor:
    return RoutingExecutor(
        "postgresql://u:p@127.0.0.1:1/db",
        list(replicas),
        settings=RoutingSettings(load_catalog=False),
    )


def _shared(ex: RoutingExecutor) -> None:
    assert ex.router.replicas is ex.replicas
    assert ex.monitor.replicas is ex.replicas


async def test_add_and_remove_replace_the_list_never_mutate_it() -> None:
    ex = _executor(ReplicaConfig(dsn="postgresql://u:p@r1:5432/db", name="static"))
    _shared(ex)
    before = ex.replicas
    added = await ex.add_replica(ReplicaConfig(dsn="postgresql://u:p@r2:5432/db", weight=3))
    assert added.name == "r2:5432"
    assert added.label == "replica:r2:5432"
    assert added.weight == 3
    assert [r.name for r in before] == ["static"], "an iteration in progress keeps the old list"
    assert ex.replicas is not before
    assert [r.name for r in ex.replicas] == ["static", "r2:5432"]
    _shared(ex)

    during = ex.replicas
    removed = await ex.remove_replica("r2:5432")
    assert removed is added
    assert removed.retired
    assert [r.name for r in during] == ["static", "r2:5432"]
    assert [r.name for r in ex.replicas] == ["static"]
    _shared(ex)
    assert await ex.remove_replica("r2:5432") is None


async def test_names_stay_unique() -> None:
    ex = _executor("postgresql://u@r1:5432/db")
    a = await ex.add_replica(ReplicaConfig(dsn="postgresql://u@r1:5432/db"))
    b = await ex.add_replica(ReplicaConfig(dsn="postgresql://u@r1:5432/db", name="r1:5432"))
    assert [r.name for r in ex.replicas] == ["r1:5432", "r1:5432#2", "r1:5432#3"]
    assert (a.name, b.name) == ("r1:5432#2", "r1:5432#3")
    await ex.remove_replica("r1:5432#2")
    c = await ex.add_replica(ReplicaConfig(dsn="postgresql://u@r1:5432/db"))
    assert c.name == "r1:5432#2"  # freed names are reused


async def test_a_retired_target_opens_nothing() -> None:
    ex = _executor()
    target = await ex.add_replica(ReplicaConfig(dsn="postgresql://u@127.0.0.1:1/db"))
    await ex.remove_replica(target.name)

    with pytest.raises(OperationalError, match="removed"):
        await target.open()
    with pytest.raises(OperationalError, match="removed"):
        await target.ping(0.5)


def test_strategies_cope_with_a_changing_list() -> None:
    targets = [Target(f"r{i}", "postgresql://x") for i in range(4)]
    for strategy in (RoundRobin(), LeastOutstanding()):
        for n in (4, 1, 3, 0, 2, 4):
            ordered = strategy.order(targets[:n])
            assert sorted(t.name for t in ordered) == sorted(t.name for t in targets[:n])


# -- syncing with the registry (memory backend, executor not started) ---------------------


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    b = MemoryBackend(f"unit-{uuid.uuid4().hex[:8]}")
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def test_sync_follows_the_registry_and_leaves_static_replicas_alone(
    backend: MemoryBackend,
) -> None:
    ex = RoutingExecutor(
        "postgresql://app:pw@primary:5432/shop?search_path=s",
        [ReplicaConfig(dsn="postgresql://app:pw@static:5432/shop", name="static")],
        settings=RoutingSettings(load_catalog=False),
    )
    registry = ServiceRegistry(backend)
    discovery = ReplicaDiscovery(ex, RegistryClient(backend))
    assert await discovery.sync()
    assert [r.name for r in ex.replicas] == ["static"]

    a = await registry.register(
        "postgres-replica", "database", "10.0.0.1:5433",
        metadata={"weight": "2", "group": "analytics", "database": "shop_ro"},
    )  # fmt: skip
    b = await registry.register("postgres-replica", "database", "[::1]:5434")
    # Same server as the static replica: not added twice.
    dup = await registry.register("postgres-replica", "database", "static:5432")
    # Another service's instances are not replicas.
    await registry.register("something-else", "database", "10.0.0.9:5432")
    await discovery.sync()
    by_name = {r.name: r for r in ex.replicas}
    assert set(by_name) == {"static", "10.0.0.1:5433", "[::1]:5434"}
    r1 = by_name["10.0.0.1:5433"]
    assert r1.dsn == "postgresql://app:pw@10.0.0.1:5433/shop_ro?search_path=s"
    assert (r1.weight, r1.group, r1.label) == (2.0, "analytics", "replica:10.0.0.1:5433")
    assert by_name["[::1]:5434"].dsn == "postgresql://app:pw@[::1]:5434/shop?search_path=s"
    assert discovery.discovered == {"10.0.0.1:5433": "10.0.0.1:5433", "[::1]:5434": "[::1]:5434"}

    # Metadata changes apply in place; the same Target stays.
    await a.deregister()
    a = await registry.register(
        "postgres-replica", "database", "10.0.0.1:5433",
        metadata={"weight": "5", "group": "default", "database": "shop_ro"},
    )  # fmt: skip
    await discovery.sync()
    assert ex.replica("10.0.0.1:5433") is r1
    assert (r1.weight, r1.group) == (5.0, "default")

    # Gone from the registry: removed; the static replica stays.
    await b.deregister()
    await dup.deregister()
    await discovery.sync()
    assert [r.name for r in ex.replicas] == ["static", "10.0.0.1:5433"]
    await a.deregister()
    await discovery.sync()
    assert [r.name for r in ex.replicas] == ["static"]
    assert discovery.discovered == {}
    await registry.close()


class _Flaky(RegistryClient):
    down = False

    async def instances(self, *args: object, **kwargs: object) -> list[ServiceInstance]:
        if self.down:
            raise RegistryUnavailableError("etcd is down")
        return await super().instances(*args, **kwargs)  # type: ignore[arg-type]


async def test_an_unreachable_registry_keeps_the_set_and_logs_once(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    ex = _executor()
    client = _Flaky(backend)
    discovery = ReplicaDiscovery(ex, client)
    async with ServiceRegistry(backend) as registry:
        await registry.register("postgres-replica", "database", "r1:5432")
        await discovery.sync()
        assert [r.name for r in ex.replicas] == ["r1:5432"]
        client.down = True
        with caplog.at_level(logging.WARNING, logger="querybus.routing.discovery"):
            for _ in range(3):
                assert not await discovery.sync()
        assert [r.name for r in ex.replicas] == ["r1:5432"]
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
        client.down = False
        assert await discovery.sync()
        assert [r.name for r in ex.replicas] == ["r1:5432"]


async def test_bad_instances_are_ignored(backend: MemoryBackend) -> None:
    ex = _executor()
    discovery = ReplicaDiscovery(ex, RegistryClient(backend))
    async with ServiceRegistry(backend) as registry:
        await registry.register("postgres-replica", "database", "not a host:port")
        await registry.register("postgres-replica", "database", "r1:5432", metadata={"weight": "x"})
        await registry.register("postgres-replica", "database", "r2:5432")
        await discovery.sync()
        assert [r.name for r in ex.replicas] == ["r2:5432"]


def test_discovery_settings_from_env() -> None:
    s = RoutingSettings.from_env(
        {"QUERYBUS_REPLICA_DISCOVERY": "true", "QUERYBUS_REPLICA_SERVICE": "pg-ro"}
    )
    assert (s.discovery, s.discovery_service, s.discovery_interval) == (True, "pg-ro", 2.0)
    d = RoutingSettings.from_env({})
    assert (d.discovery, d.discovery_service) == (False, "postgres-replica")
    with pytest.raises(ConfigurationError):
        RoutingSettings.from_env({"QUERYBUS_REPLICA_DISCOVERY_INTERVAL": "0"})
