"""``querybus check`` on the real stack (issue 7, defect 8).

With no adapter running it used to wait 30 s in silence and then print a bare
timeout, although the registry already said that no adapter was registered.
Now: the registry is asked first and its answer said at once; without a
registry the wait is short; every failure says how to start an adapter; the
exit code is 1. Each check runs as its own process with stdout and stderr on
pipes (not terminals), on a topic prefix of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.cli_helpers import cli_env, run_cli, serving, start_cli
from tests.integration.conftest import Bus
from tests.stack import Stack, UniqueNames

from querybus.registry import (
    CheckResult,
    HealthStatus,
    RegistryBackend,
    ServiceRegistry,
    open_backend,
)

SERVICE = "database-adapter"

#: Far below the old 30 s wait and far above what a check should take: only a
#: hang fails on it, never a slow machine.
BOUND = 15.0


async def _check(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run ``querybus check ARGS``; it must end within :data:`BOUND` seconds."""
    return await run_cli(env, cwd, "check", *args, bound=BOUND)


@pytest.fixture
async def etcd(stack: Stack, unique: UniqueNames) -> AsyncIterator[tuple[str, RegistryBackend]]:
    """A topic prefix and the etcd registry namespaced by it (empty at first)."""
    prefix = unique("cli-check") + "."
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=prefix)
    await backend.start()
    try:
        yield prefix, backend
    finally:
        await backend.stop()


# -- no registry: a short wait, then a clear message --------------------------


async def test_without_registry_a_check_with_no_adapter_ends_within_seconds(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    env = cli_env(stack, unique("cli-check") + ".", registry=False)
    code, out, err = await _check(env, tmp_path)
    assert code == 1
    assert out == ""
    assert "no service registry configured" in err  # said before waiting
    assert "no adapter answered" in err
    assert "database.query.request" in err
    assert "querybus serve" in err
    assert "make run" in err


async def test_without_registry_json_names_the_failure(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    env = cli_env(stack, unique("cli-check") + ".", registry=False)
    code, out, err = await _check(env, tmp_path, "--json")
    assert code == 1
    got = json.loads(out)
    assert got["ok"] is False
    assert (got["error"], got["reason"]) == ("NoAdapterError", "no_answer")
    assert "querybus serve" in got["hint"]
    assert out.count("\n") == 1  # one object, one line: what a script reads
    assert "waiting up to" not in err  # progress notes are for people, not --json


@pytest.mark.parametrize("seconds", ["1", "2.5"])
async def test_the_wait_is_configurable(
    stack: Stack, unique: UniqueNames, tmp_path: Path, seconds: str
) -> None:
    env = cli_env(stack, unique("cli-check") + ".", registry=False)
    code, _, err = await _check(env, tmp_path, "--timeout", seconds)
    assert code == 1
    assert f"within {seconds} s" in err
    assert "querybus serve" in err


async def test_with_an_unreachable_registry_the_bus_is_asked(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    env = cli_env(stack, unique("cli-check") + ".", registry=True)
    env["ETCD_ENDPOINTS"] = "http://127.0.0.1:9"  # discard port: nothing answers
    code, _, err = await _check(env, tmp_path, "--timeout", "2")
    assert code == 1
    assert "no adapter answered" in err
    assert "querybus serve" in err


# -- with a registry: known, and said, at once --------------------------------


async def test_with_registry_no_adapter_registered_is_said_at_once(
    stack: Stack, etcd: tuple[str, RegistryBackend], tmp_path: Path
) -> None:
    prefix, _ = etcd
    env = cli_env(stack, prefix, registry=True)
    # Even when told to wait a long time, the first line says what is wrong.
    proc = await start_cli(env, tmp_path, "check", "--timeout", "120")
    try:
        assert proc.stderr is not None
        first = (await asyncio.wait_for(proc.stderr.readline(), BOUND)).decode()
        assert "no adapter is registered in the etcd registry" in first
        assert prefix in first
        assert "querybus serve" in first
        assert proc.returncode is None  # …and it keeps looking until the timeout
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.parametrize("as_json", [False, True])
async def test_with_registry_no_adapter_registered_fails_within_seconds(
    stack: Stack, etcd: tuple[str, RegistryBackend], tmp_path: Path, as_json: bool
) -> None:
    prefix, _ = etcd
    code, out, err = await _check(
        cli_env(stack, prefix, registry=True), tmp_path, *(["--json"] if as_json else [])
    )
    assert code == 1
    if as_json:
        got = json.loads(out)
        assert (got["error"], got["reason"]) == ("NoAdapterError", "not_registered")
        assert "no adapter is registered in the etcd registry" in got["message"]
    else:
        assert "✗ querybus check failed: NoAdapterError: no adapter is registered" in err
        assert "querybus serve" in err


class _Critical:
    name = "database"

    async def check(self) -> CheckResult:
        return CheckResult(HealthStatus.CRITICAL, "database unreachable (test)")


async def test_with_registry_an_adapter_registered_but_critical_is_not_serving(
    stack: Stack, etcd: tuple[str, RegistryBackend], tmp_path: Path
) -> None:
    prefix, backend = etcd
    registration = await ServiceRegistry(backend).register(
        SERVICE,
        "effect",
        prefix + "database.query.request",
        health_checks=[_Critical()],
        initial_status=HealthStatus.CRITICAL,
        ttl=30.0,
    )
    async with registration:
        code, out, _ = await _check(cli_env(stack, prefix, registry=True), tmp_path, "--json")
    assert code == 1
    got = json.loads(out)
    assert got["reason"] == "not_serving"
    assert registration.instance_id in got["message"]
    assert "critical" in got["message"]
    assert "database unreachable (test)" in got["message"]


async def test_with_registry_a_registered_adapter_that_does_not_answer(
    stack: Stack, etcd: tuple[str, RegistryBackend], tmp_path: Path
) -> None:
    """A stale registration (say, of an adapter killed with -9 before its TTL
    ran out): listed as passing, but nothing consumes its topic."""
    prefix, backend = etcd
    registration = await ServiceRegistry(backend).register(
        SERVICE,
        "effect",
        prefix + "database.query.request",
        initial_status=HealthStatus.PASSING,
        ttl=30.0,
    )
    async with registration:
        code, _, err = await _check(
            cli_env(stack, prefix, registry=True), tmp_path, "--timeout", "2"
        )
    assert code == 1
    assert "no adapter answered" in err
    assert registration.instance_id in err
    assert "querybus serve" in err


# -- an adapter serving: the check passes, quickly, with whole ids -------------


async def test_an_adapter_serving_passes_and_prints_whole_ids(
    stack: Stack, bus: Bus, tmp_path: Path
) -> None:
    await serving(bus)
    env = cli_env(stack, bus.settings.topics.prefix, registry=False)
    code, out, err = await _check(env, tmp_path)
    assert code == 0, err
    assert "✓ query executed successfully" in out
    # Whole: the 16-hex client prefix and the counter, nothing cut off.
    assert re.search(r"^  correlation id: [0-9a-f]{17,}$", out, re.M), out
    assert f"  request topic:  {bus.settings.topics.request}\n" in out
    code, out, _ = await _check(env, tmp_path, "--json", "--timeout", "30")
    assert code == 0
    got = json.loads(out)
    assert got["ok"] is True
    assert got["request_topic"] == bus.settings.topics.request


async def test_with_registry_an_adapter_registering_during_the_wait_is_used(
    stack: Stack, bus: Bus, tmp_path: Path
) -> None:
    """What `make run` does: start an adapter, then at once `check --timeout 60`."""
    prefix = bus.settings.topics.prefix
    backend = open_backend(f"etcd://{stack.etcd_endpoint}", topic_prefix=prefix)
    await backend.start()
    try:
        proc = await start_cli(
            cli_env(stack, prefix, registry=True), tmp_path, "check", "--timeout", "60"
        )
        try:
            assert proc.stderr is not None
            first = (await asyncio.wait_for(proc.stderr.readline(), BOUND)).decode()
            assert "no adapter is registered" in first
            await serving(bus)
            registration = await ServiceRegistry(backend).register(
                SERVICE,
                "effect",
                bus.settings.topics.request,
                initial_status=HealthStatus.PASSING,
                ttl=30.0,
            )
            async with registration:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await backend.stop()
    assert proc.returncode == 0, first + err.decode()
    assert "✓ query executed successfully" in out.decode()
