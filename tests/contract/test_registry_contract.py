"""One registry contract, every backend.

Backends: memory; Kafka on the in-memory bus and on the real broker; etcd
(real, from ``ETCD_ENDPOINTS`` or the ``stack`` fixture); Consul against the
fake agent in ``tests/fakes/consul.py`` and, only when ``CONSUL_HTTP_ADDR``
is set, against that real agent (the one variant that skips). Real Kafka and
etcd fail, never skip, when they cannot be reached.

Each test opens a *writer* and a separate *reader* backend (two connections,
as two processes would have), uses unique names, and polls with deadlines.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

import pytest
from tests.fakes.consul import FakeConsul
from tests.helpers import eventually
from tests.stack import UniqueNames

from querybus.errors import RegistryUnavailableError, ServiceNotFoundError
from querybus.registry import (
    ChangeKind,
    HealthStatus,
    ManualCheck,
    RegistryBackend,
    RegistryClient,
    RegistryEvent,
    ServiceInstance,
    ServiceRegistry,
    open_backend,
)
from querybus.registry.backends.consul import ConsulBackend
from querybus.registry.backends.etcd import EtcdBackend

T = TypeVar("T")

TTL = 2.0
INTERVAL = 0.4
BACKENDS = ["memory", "kafka-memory-bus", "kafka", "etcd", "consul-fake", "consul-real"]


def _kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        return env
    bootstrap: str = request.getfixturevalue("stack").kafka_bootstrap
    return bootstrap


def _etcd_endpoints(request: pytest.FixtureRequest) -> str:
    env = os.environ.get("ETCD_ENDPOINTS")
    if env:
        return env
    endpoint: str = request.getfixturevalue("stack").etcd_endpoint
    return endpoint


class Flaky:
    """Wraps a backend; while ``dark`` every write fails as if the backend were down."""

    def __init__(self, inner: RegistryBackend) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.dark = False

    def _check(self) -> None:
        if self.dark:
            raise RegistryUnavailableError("simulated outage")

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def register(self, instance: ServiceInstance) -> None:
        self._check()
        await self.inner.register(instance)

    async def heartbeat(self, instance: ServiceInstance) -> None:
        self._check()
        await self.inner.heartbeat(instance)

    async def deregister(self, instance_id: str) -> None:
        self._check()
        await self.inner.deregister(instance_id)

    async def instances(self, name: str | None = None) -> list[ServiceInstance]:
        return await self.inner.instances(name)

    def snapshots(self, name: str | None = None) -> AsyncGenerator[list[ServiceInstance], None]:
        return self.inner.snapshots(name)


Opener = Callable[[], Awaitable[RegistryBackend]]


@pytest.fixture(params=BACKENDS)
async def open_(request: pytest.FixtureRequest) -> AsyncIterator[Opener]:
    """Opens started backends that share one namespace (fresh for each test)."""
    kind: str = request.param
    tag = uuid.uuid4().hex[:8]
    started: list[RegistryBackend] = []
    fake: FakeConsul | None = None
    if kind == "consul-real" and not os.environ.get("CONSUL_HTTP_ADDR"):
        pytest.skip("no real Consul agent: set CONSUL_HTTP_ADDR to run this variant")
    if kind == "consul-fake":
        fake = FakeConsul()
        await fake.start()
    kafka = _kafka_bootstrap(request) if kind == "kafka" else ""
    etcd = _etcd_endpoints(request) if kind == "etcd" else ""

    def make() -> RegistryBackend:
        if kind == "memory":
            return open_backend(f"memory://contract-{tag}")
        if kind == "kafka-memory-bus":
            return open_backend(f"kafka://memory://contract-{tag}", topic=f"registry-{tag}")
        if kind == "kafka":
            return open_backend(f"kafka://{kafka}", topic=UniqueNames.remember(f"t-registry-{tag}"))
        if kind == "etcd":
            return EtcdBackend(etcd, prefix=f"querybus-test/{tag}/")
        if kind == "consul-fake":
            assert fake is not None
            return ConsulBackend(fake.address, watch_wait=5.0)
        return ConsulBackend(os.environ["CONSUL_HTTP_ADDR"], watch_wait=5.0)

    async def opener() -> RegistryBackend:
        backend = make()
        await backend.start()
        started.append(backend)
        return backend

    try:
        yield opener
    finally:
        for backend in reversed(started):
            await backend.stop()
        if fake is not None:
            await fake.stop()


def ids(instances: list[ServiceInstance]) -> set[str]:
    return {i.instance_id for i in instances}


def name() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def test_register_is_visible_to_another_connection(open_: Opener) -> None:
    writer, reader = await open_(), await open_()
    svc = name()
    started = time.perf_counter()
    reg = await ServiceRegistry(writer).register(
        svc, "effect", "database.query.request", metadata={"group": "g1"}, ttl=TTL
    )
    elapsed = time.perf_counter() - started
    print(f"\n[{writer.kind}] registration took {elapsed * 1000:.1f} ms")
    async with reg:
        client = RegistryClient(reader)
        found = await eventually(lambda: client.instances(svc), bool, within=1.0)
        (instance,) = found
        assert instance.instance_id == reg.instance_id
        assert instance.name == svc
        assert instance.service_type == "effect"
        assert instance.endpoint == "database.query.request"
        assert instance.metadata == {"group": "g1"}
        assert instance.status is HealthStatus.PASSING
        assert instance.ttl == TTL
        assert abs(instance.last_heartbeat - time.time()) < 5
        assert await client.endpoints(svc) == ["database.query.request"]


async def test_instance_ids_are_unique(open_: Opener) -> None:
    backend = await open_()
    svc = name()
    registry = ServiceRegistry(backend)
    async with registry:
        a = await registry.register(svc, "effect", "t", ttl=TTL)
        b = await registry.register(svc, "effect", "t", ttl=TTL)
        assert a.instance_id != b.instance_id
        found = await eventually(
            lambda: RegistryClient(backend).instances(svc), lambda v: len(v) == 2, within=2.0
        )
        assert ids(found) == {a.instance_id, b.instance_id}


async def test_filters(open_: Opener) -> None:
    writer, reader = await open_(), await open_()
    svc, other = name(), name()
    sick = ManualCheck(status=HealthStatus.CRITICAL, note="down")
    async with ServiceRegistry(writer) as registry:
        a = await registry.register(svc, "effect", "ta", metadata={"zone": "a"}, ttl=TTL)
        b = await registry.register(
            svc, "effect", "tb", metadata={"zone": "b"}, health_checks=[sick], ttl=TTL
        )
        c = await registry.register(other, "agent", "tc", ttl=TTL)
        client = RegistryClient(reader)
        everyone = {a.instance_id, b.instance_id, c.instance_id}
        await eventually(client.instances, lambda v: everyone <= ids(v), within=2.0)
        assert ids(await client.instances(svc)) == {a.instance_id, b.instance_id}
        assert c.instance_id in ids(await client.instances(service_type="agent"))
        assert not ids(await client.instances(service_type="agent")) & {a.instance_id}
        assert ids(await client.instances(svc, metadata={"zone": "b"})) == {b.instance_id}
        assert ids(await client.instances(svc, status=HealthStatus.CRITICAL)) == {b.instance_id}
        assert ids(
            await client.instances(svc, status={HealthStatus.PASSING, HealthStatus.WARNING})
        ) == {a.instance_id}
        (critical,) = await client.instances(svc, status=HealthStatus.CRITICAL)
        assert "down" in critical.note
        assert ids(await client.discover(svc)) == {a.instance_id}
        with pytest.raises(ServiceNotFoundError):
            await client.discover(svc, metadata={"zone": "b"})
        with pytest.raises(ServiceNotFoundError):
            await client.discover(name())


async def test_health_change_visible_within_one_heartbeat(open_: Opener) -> None:
    writer, reader = await open_(), await open_()
    svc = name()
    check = ManualCheck()
    async with await ServiceRegistry(writer).register(
        svc, "effect", "t", health_checks=[check], ttl=TTL, heartbeat_interval=INTERVAL
    ) as reg:
        client = RegistryClient(reader)
        await eventually(lambda: client.instances(svc), bool, within=1.0)
        check.set(HealthStatus.WARNING, "slow")
        changed = time.monotonic()
        (found,) = await eventually(
            lambda: client.instances(svc),
            lambda v: bool(v) and v[0].status is HealthStatus.WARNING,
            within=INTERVAL + 1.0,
        )
        print(f"\n[{writer.kind}] status change seen after {time.monotonic() - changed:.2f}s")
        assert found.note == "manual: slow"
        assert reg.status is HealthStatus.WARNING
        with pytest.raises(ServiceNotFoundError):
            await client.discover(svc)
        check.set(HealthStatus.PASSING)
        await eventually(
            lambda: client.instances(svc, status=HealthStatus.PASSING), bool, within=INTERVAL + 1.0
        )


async def test_deregister_is_immediate(open_: Opener) -> None:
    writer, reader = await open_(), await open_()
    svc = name()
    reg = await ServiceRegistry(writer).register(svc, "effect", "t", ttl=30.0)
    client = RegistryClient(reader)
    await eventually(lambda: client.instances(svc), bool, within=1.0)
    await reg.deregister()
    await reg.deregister()  # idempotent
    # Far less than the 30 s TTL: gone because it left, not because it expired.
    await eventually(lambda: client.instances(svc), lambda v: not v, within=1.0)
    assert not await writer.instances(svc)


async def test_silent_instance_expires_and_comes_back_after_outage(open_: Opener) -> None:
    inner, reader = await open_(), await open_()
    writer = Flaky(inner)
    svc = name()
    client = RegistryClient(reader)
    async with await ServiceRegistry(writer).register(
        svc, "effect", "t", ttl=TTL, heartbeat_interval=INTERVAL
    ) as reg:
        await eventually(lambda: client.instances(svc), bool, within=1.0)
        writer.dark = True  # heartbeats stop reaching the backend
        silent = time.monotonic()
        await eventually(lambda: client.instances(svc), lambda v: not v, within=TTL + 3.0)
        print(f"\n[{inner.kind}] expired {time.monotonic() - silent:.2f}s after going silent")
        await eventually(
            lambda: asyncio.sleep(0, reg.state), lambda s: s == "disconnected", within=2.0
        )
        writer.dark = False  # the backend is back: the handle re-registers by itself
        await eventually(lambda: client.instances(svc), bool, within=INTERVAL + 2.0)
        assert (await client.instances(svc))[0].instance_id == reg.instance_id
    await eventually(lambda: client.instances(svc), lambda v: not v, within=1.0)


async def test_backend_level_contract(open_: Opener) -> None:
    backend = await open_()
    now = time.time()
    ghost = ServiceInstance(
        name=name(),
        instance_id=f"ghost-{uuid.uuid4().hex[:8]}",
        service_type="x",
        endpoint="e",
        last_heartbeat=now,
        registered_at=now,
        ttl=TTL,
    )
    with pytest.raises(ServiceNotFoundError):
        await backend.heartbeat(ghost)
    await backend.deregister(ghost.instance_id)  # unknown: no error
    await backend.register(ghost)
    await backend.heartbeat(ghost)
    assert ghost.instance_id in ids(await backend.instances(ghost.name))
    await backend.deregister(ghost.instance_id)
    with pytest.raises(ServiceNotFoundError):
        await backend.heartbeat(ghost)


async def _next(events: AsyncGenerator[RegistryEvent, None], within: float) -> RegistryEvent:
    return await asyncio.wait_for(anext(events), within)


async def test_watch_reports_added_updated_removed_and_expired(open_: Opener) -> None:
    writer, reader = await open_(), await open_()
    flaky = Flaky(writer)
    svc = name()
    check = ManualCheck()
    registry = ServiceRegistry(flaky)
    events = RegistryClient(reader).watch(svc)
    try:
        # Registered before the watch starts: reported as the initial "added".
        first = await registry.register(svc, "effect", "t1", ttl=TTL, heartbeat_interval=INTERVAL)
        event = await _next(events, 3.0)
        assert (event.kind, event.instance.instance_id) == (ChangeKind.ADDED, first.instance_id)

        second = await registry.register(
            svc, "effect", "t2", health_checks=[check], ttl=TTL, heartbeat_interval=INTERVAL
        )
        event = await _next(events, 3.0)
        assert (event.kind, event.instance.instance_id) == (ChangeKind.ADDED, second.instance_id)

        check.set(HealthStatus.CRITICAL, "broken")
        event = await _next(events, INTERVAL + 3.0)
        assert event.kind is ChangeKind.UPDATED
        assert event.instance.instance_id == second.instance_id
        assert event.instance.status is HealthStatus.CRITICAL

        await second.deregister()
        event = await _next(events, 3.0)
        assert (event.kind, event.instance.instance_id) == (ChangeKind.REMOVED, second.instance_id)

        flaky.dark = True
        event = await _next(events, TTL + 4.0)
        assert (event.kind, event.instance.instance_id) == (ChangeKind.REMOVED, first.instance_id)
        flaky.dark = False
        await first.deregister()
    finally:
        await events.aclose()
        flaky.dark = False
        await registry.close()
