"""The registry across processes, on real Kafka and real etcd.

A child Python process registers a service (ServiceRegistry on the real
backend) and obeys commands on stdin; this process watches it through a
RegistryClient on its own connection:

* registered → visible here within one second;
* health change → visible within one heartbeat interval;
* ``kill -9`` → gone after the TTL;
* clean stop (deregister) → gone at once (far sooner than the TTL);
* ``querybus registry ls --json`` lists it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest
from tests.helpers import eventually
from tests.stack import UniqueNames

from querybus.registry import HealthStatus, RegistryBackend, RegistryClient, open_backend

T = TypeVar("T")

TTL = 2.0
INTERVAL = 0.4

CHILD = r"""
import asyncio, json, sys, time
from querybus.registry import HealthStatus, ManualCheck, ServiceRegistry, open_backend

async def main(url, prefix, name, ttl, interval):
    check = ManualCheck("app")
    async with open_backend(url, topic_prefix=prefix) as backend:
        started = time.perf_counter()
        registration = await ServiceRegistry(backend).register(
            name, "effect", "database.query.request", metadata={"group": "g"},
            health_checks=[check], ttl=ttl, heartbeat_interval=interval,
        )
        elapsed = time.perf_counter() - started
        print(json.dumps({"id": registration.instance_id, "ms": elapsed * 1000}), flush=True)
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            if line == "stop":
                await registration.deregister()
                print("stopped", flush=True)
                return
            check.set(HealthStatus(line), "told so")
            print("ok", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))
"""


def _url(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "kafka":
        bootstrap = (
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            or request.getfixturevalue("stack").kafka_bootstrap
        )
        return f"kafka://{bootstrap}"
    endpoints = os.environ.get("ETCD_ENDPOINTS") or request.getfixturevalue("stack").etcd_endpoint
    return "etcd://" + ",".join(e.split("://", 1)[-1] for e in endpoints.split(","))


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.instance_id = ""
        self.register_ms = 0.0

    async def line(self, within: float = 30.0) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not raw:
            assert self.proc.stderr is not None
            err = await self.proc.stderr.read()
            pytest.fail(f"child exited: {err.decode()[-3000:]}")
        return raw.decode().strip()

    async def send(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.line()


@pytest.fixture(params=["kafka", "etcd"])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str, RegistryBackend, Path]]:
    url = _url(request.param, request)
    prefix = UniqueNames.remember(f"t-{os.urandom(4).hex()}-")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    backend = open_backend(url, topic_prefix=prefix)
    await backend.start()
    try:
        yield url, prefix, backend, script
    finally:
        await backend.stop()


async def _spawn(script: Path, url: str, prefix: str, name: str, ttl: float) -> Child:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        url,
        prefix,
        name,
        str(ttl),
        str(INTERVAL),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    child = Child(proc)
    ready = json.loads(await child.line())
    child.instance_id, child.register_ms = ready["id"], ready["ms"]
    return child


async def _reap(child: Child) -> None:
    if child.proc.returncode is None:
        child.proc.kill()
    await child.proc.wait()
    for pipe in (child.proc.stdout, child.proc.stderr):
        if pipe is not None:
            await pipe.read()
    if child.proc.stdin is not None:
        child.proc.stdin.close()


async def test_visible_health_kill9(setup: tuple[str, str, RegistryBackend, Path]) -> None:
    url, prefix, backend, script = setup
    client = RegistryClient(backend)
    name = f"svc-{os.urandom(4).hex()}"
    child = await _spawn(script, url, prefix, name, TTL)
    try:
        registered = time.monotonic()
        (found,) = await eventually(lambda: client.instances(name), bool, within=1.0)
        seen = time.monotonic() - registered
        print(
            f"\n[{backend.kind}] child registered in {child.register_ms:.1f} ms; "
            f"visible here after {seen * 1000:.0f} ms"
        )
        assert found.instance_id == child.instance_id
        assert found.status is HealthStatus.PASSING

        assert await child.send("critical") == "ok"
        told = time.monotonic()
        (found,) = await eventually(
            lambda: client.instances(name),
            lambda v: bool(v) and v[0].status is HealthStatus.CRITICAL,
            within=INTERVAL + 0.5,
        )
        print(f"[{backend.kind}] health change visible after {time.monotonic() - told:.2f}s")
        assert found.note == "app: told so"

        child.proc.kill()  # SIGKILL: no chance to deregister
        killed = time.monotonic()
        await eventually(lambda: client.instances(name), lambda v: not v, within=TTL + 2.5)
        print(f"[{backend.kind}] gone {time.monotonic() - killed:.2f}s after kill -9 (TTL {TTL}s)")
    finally:
        await _reap(child)


async def test_clean_stop_is_immediate_and_cli_lists(
    setup: tuple[str, str, RegistryBackend, Path],
) -> None:
    url, prefix, backend, script = setup
    client = RegistryClient(backend)
    name = f"svc-{os.urandom(4).hex()}"
    child = await _spawn(script, url, prefix, name, 60.0)  # a TTL far longer than the test
    try:
        await eventually(lambda: client.instances(name), bool, within=1.0)

        kind, _, address = url.partition("://")
        env = dict(os.environ, QUERYBUS_REGISTRY=kind, QUERYBUS_TOPIC_PREFIX=prefix)
        env["KAFKA_BOOTSTRAP_SERVERS" if kind == "kafka" else "ETCD_ENDPOINTS"] = address
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from querybus.cli.registry import registry_app; registry_app()",
            "ls",
            "--json",
            "--type",
            "effect",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        listed = {i["instance_id"]: i for i in json.loads(out)}
        assert listed[child.instance_id]["status"] == "passing"
        assert listed[child.instance_id]["endpoint"] == "database.query.request"
        assert listed[child.instance_id]["name"] == name
        assert listed[child.instance_id]["service_type"] == "effect"

        assert await child.send("stop") == "stopped"
        stopped = time.monotonic()
        await eventually(lambda: client.instances(name), lambda v: not v, within=1.0)
        print(f"\n[{backend.kind}] gone {time.monotonic() - stopped:.3f}s after a clean stop")
        await asyncio.wait_for(child.proc.wait(), 10)
    finally:
        await _reap(child)
