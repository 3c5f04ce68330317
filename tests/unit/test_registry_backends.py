"""Backend details outside the shared contract: configuration, unreachable
backends, the Consul fake's own behaviour, the Kafka table's ordering."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from tests.fakes.consul import FakeConsul, parse_duration

from querybus.errors import ConfigurationError, RegistryUnavailableError
from querybus.registry import RegistrySettings, ServiceInstance, open_backend
from querybus.registry.backends._table import InstanceTable
from querybus.registry.backends.consul import ConsulBackend
from querybus.registry.backends.etcd import EtcdBackend
from querybus.registry.backends.kafka import KafkaBackend
from querybus.registry.backends.memory import MemoryBackend


def instance(instance_id: str = "i1", ttl: float = 10.0, **kw: object) -> ServiceInstance:
    now = time.time()
    return ServiceInstance(
        name="svc",
        instance_id=instance_id,
        service_type="t",
        endpoint="e",
        last_heartbeat=now,
        registered_at=now,
        ttl=ttl,
        **kw,  # type: ignore[arg-type]
    )


def test_settings_from_env() -> None:
    assert RegistrySettings.from_env({}).url == "memory://"
    s = RegistrySettings.from_env(
        {
            "QUERYBUS_REGISTRY": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": "h:1,h:2",
            "QUERYBUS_TOPIC_PREFIX": "p.",
        }
    )
    assert (s.url, s.topic_prefix) == ("kafka://h:1,h:2", "p.")
    s = RegistrySettings.from_env(
        {"QUERYBUS_REGISTRY": "etcd", "ETCD_ENDPOINTS": "http://a:1,http://b:2"}
    )
    assert s.url == "etcd://a:1,b:2"
    s = RegistrySettings.from_env({"QUERYBUS_REGISTRY": "Consul"})
    assert s.url == "consul://127.0.0.1:8500"
    s = RegistrySettings.from_env(
        {"QUERYBUS_REGISTRY": "consul", "CONSUL_HTTP_ADDR": "https://c:8501"}
    )
    assert s.url == "consul+https://c:8501"
    with pytest.raises(ConfigurationError, match="ETCD_ENDPOINTS"):
        RegistrySettings.from_env({"QUERYBUS_REGISTRY": "etcd"})
    with pytest.raises(ConfigurationError, match="must be one of"):
        RegistrySettings.from_env({"QUERYBUS_REGISTRY": "zookeeper"})


def test_open_backend_kinds() -> None:
    assert isinstance(open_backend("memory"), MemoryBackend)
    kafka = open_backend("kafka://memory://x", topic_prefix="p.")
    assert isinstance(kafka, KafkaBackend)
    assert kafka.topic == "p.querybus.registry"
    assert isinstance(open_backend("etcd://127.0.0.1:2379"), EtcdBackend)
    consul = open_backend("consul+https://c:8501")
    assert isinstance(consul, ConsulBackend)
    assert consul.address == "https://c:8501"
    with pytest.raises(ConfigurationError):
        open_backend("etcd://")
    with pytest.raises(ConfigurationError):
        open_backend("redis://x")


@pytest.mark.parametrize(
    "make",
    [
        lambda: EtcdBackend("http://127.0.0.1:9", timeout=1.0),
        lambda: ConsulBackend("http://127.0.0.1:9", timeout=1.0),
        lambda: KafkaBackend("127.0.0.1:9", timeout=2.0),
    ],
    ids=["etcd", "consul", "kafka"],
)
async def test_unreachable_backend_fails_to_start(make: object) -> None:
    backend = make()  # type: ignore[operator]
    with pytest.raises(RegistryUnavailableError):
        await backend.start()
    await backend.stop()  # safe after a failed start


def test_table_ignores_older_versions() -> None:
    table = InstanceTable()
    table.put(instance(note="new"), version=5)
    table.put(instance(note="old"), version=3)  # a replayed older record
    assert table.live()[0].note == "new"
    table.delete("i1", version=4)
    assert table.live()
    table.delete("i1", version=6)
    assert not table.live()
    table.put(instance(note="older"), version=5)
    assert not table.live()


def test_table_expires_on_read() -> None:
    table = InstanceTable()
    table.put(instance(ttl=0.0))
    assert table.live() == []


def test_go_durations() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("10")


async def test_consul_fake_reaps_after_deregister_critical_service_after() -> None:
    fake = FakeConsul()
    await fake.start()
    try:
        async with ConsulBackend(fake.address, deregister_after=0.3) as backend:
            await backend.register(instance(ttl=0.2))
            assert "i1" in fake.services
            deadline = time.monotonic() + 3
            # Hidden by the backend as soon as the TTL check expired ...
            while await backend.instances("svc"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert fake.checks["service:i1"].output == "TTL expired"
            # ... and reaped by the agent after DeregisterCriticalServiceAfter.
            while "i1" in fake.services:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    finally:
        await fake.stop()


async def test_consul_ignores_foreign_services_and_keeps_user_metadata() -> None:
    fake = FakeConsul()
    await fake.start()
    try:
        async with ConsulBackend(fake.address) as backend:
            fake._register(
                {"ID": "web-1", "Name": "web", "Check": {"TTL": "10s", "Status": "passing"}}
            )
            mine = instance(
                instance_id=f"i-{uuid.uuid4().hex[:6]}", metadata={"zone": "a"}, note="fine"
            )
            await backend.register(mine)
            (found,) = await backend.instances()
            assert found.metadata == {"zone": "a"}
            assert found.note == "fine"
            assert abs(found.last_heartbeat - mine.last_heartbeat) < 0.01
            assert await backend.instances("web") == []
    finally:
        await fake.stop()
