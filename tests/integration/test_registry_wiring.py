"""The registry wired into the adapter and the client (issue 3), on real Kafka,
PostgreSQL and etcd: a real ``querybus serve`` process registers itself, the CLI
lists it, a client discovers it and queries through it, a clean stop removes it
at once, and a client whose registry is down falls back to its configured topic.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time

import pytest
from tests.helpers import wait_for
from tests.integration.conftest import Bus
from tests.stack import Stack, UniqueNames

from querybus.client import QueryClient
from querybus.config import BusSettings, TopicNames
from querybus.registry import HealthStatus, RegistryClient, open_backend

SERVICE = "database-adapter"


def _serve_env(stack: Stack, prefix: str, group: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "QUERYBUS_TOPIC_PREFIX": prefix,
        "QUERYBUS_GROUP_ID": group,
        "QUERYBUS_HTTP_PORT": "0",
        "QUERYBUS_POOL_SIZE": "2",
        "QUERYBUS_REGISTRY": "etcd",
        "ETCD_ENDPOINTS": stack.etcd_endpoint,
        "QUERYBUS_REPLICA_DSNS": "",
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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_registers_is_discovered_and_deregisters_on_stop(
    stack: Stack, unique: UniqueNames
) -> None:
    prefix = unique("reg") + "."
    env = _serve_env(stack, prefix, unique("group"))
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=prefix)
    await backend.start()
    adapter = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        registry = RegistryClient(backend)
        request_topic = prefix + "database.query.request"

        async def registered() -> bool:
            found = await registry.instances(SERVICE, status={HealthStatus.PASSING})
            return any(i.endpoint == request_topic for i in found)

        await wait_for(registered, 60, interval=0.1, message="the adapter registered as passing")
        # Its inbox (interactive transactions) is in its metadata, for operators.
        [instance] = await registry.instances(SERVICE)
        assert instance.metadata["inbox"] == TopicNames(prefix=prefix).inbox(instance.instance_id)

        # The CLI lists it, as `querybus registry ls --json` is documented to.
        rc, out = await _cli(env, "registry", "ls", "--json")
        assert rc == 0, out
        listed = [i for i in json.loads(out) if i["name"] == SERVICE]
        assert len(listed) == 1
        assert listed[0]["status"] == "passing"
        assert listed[0]["endpoint"] == request_topic
        assert listed[0]["service_type"] == "effect"
        assert listed[0]["instance_id"]

        # A client configured with a topic nobody serves reaches the adapter only
        # through discovery.
        settings = BusSettings(
            bootstrap_servers=stack.kafka_bootstrap,
            topics=TopicNames(prefix=prefix, request_name="nobody.listens.here"),
        )
        async with QueryClient(settings, registry=registry, timeout=30) as client:
            assert client.request_topic == request_topic
            assert await client.fetchval("SELECT 40 + $1::int", 2) == 42

        # A clean stop deregisters at once (well before the 10 s TTL).
        adapter.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(adapter.wait(), 60) == 0
        stopped = time.monotonic()
        assert not await registry.instances(SERVICE), "still listed right after a clean stop"
        assert time.monotonic() - stopped < 1.0
        rc, out = await _cli(env, "registry", "ls", "--json")
        assert rc == 0
        assert [i for i in json.loads(out) if i["name"] == SERVICE] == []
    finally:
        if adapter.returncode is None:
            adapter.kill()
            await adapter.wait()
        await backend.stop()


async def test_client_falls_back_to_configured_topic_when_registry_is_down(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    await bus.adapter()
    # Nothing listens on this port: the registry is down, for real.
    dead = open_backend(f"etcd://127.0.0.1:{_closed_port()}")
    async with QueryClient(bus.settings, registry=RegistryClient(dead), timeout=30) as client:
        assert client.request_topic == bus.settings.topics.request
        assert await client.fetchval("SELECT 'fallback works'") == "fallback works"
    fallbacks = [r for r in caplog.records if "using the configured topic" in r.getMessage()]
    assert len(fallbacks) == 1, "the fall back is logged exactly once"


async def test_client_falls_back_when_no_adapter_is_registered(
    bus: Bus, stack: Stack, unique: UniqueNames
) -> None:
    await bus.adapter()
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=unique("empty") + ".")
    await backend.start()
    try:
        async with QueryClient(bus.settings, registry=RegistryClient(backend)) as client:
            assert client.request_topic == bus.settings.topics.request
            assert await client.fetchval("SELECT 1") == 1
    finally:
        await backend.stop()
