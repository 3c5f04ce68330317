"""Helpers of the CLI tests: each ``querybus`` command runs as its own process.

Shared by ``tests/integration/test_cli_*.py`` and ``tests/unit/test_cli_commands.py``.
Nothing here starts the stack or imports the integration fixtures at run time
(``Stack`` and ``Bus`` are for type checking only), so a unit test may use
:func:`start_cli` and :func:`run_cli` without the local services.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import Bus
    from tests.stack import Stack


def cli_env(stack: Stack, prefix: str, *, registry: bool, **extra: str) -> dict[str, str]:
    """The environment of a CLI process on ``stack``'s Kafka and etcd.

    None of the caller's ``QUERYBUS_*`` settings and no ``COLUMNS`` (output
    goes to a pipe and must not depend on the caller's terminal); topic prefix
    ``prefix``; the etcd registry if ``registry``, else none. ``extra`` sets
    (or overrides) further variables.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUERYBUS_", "COLUMNS"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        ETCD_ENDPOINTS=stack.etcd_endpoint,
        QUERYBUS_TOPIC_PREFIX=prefix,
        QUERYBUS_REGISTRY="etcd" if registry else "",
    )
    env.update(extra)
    return env


async def start_cli(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    stdin: int | IO[Any] = subprocess.DEVNULL,
    stdout: int | IO[Any] = subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """Start ``python -m querybus ARGS`` (stderr on a pipe, never a terminal)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", *args,
        stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
        env=env, cwd=cwd,
    )  # fmt: skip


async def run_cli(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    bound: float,
    input: bytes | None = None,
) -> tuple[int, str, str]:
    """Run ``querybus ARGS`` (``input`` on its stdin, if given); return its exit
    code, stdout and stderr. It must end within ``bound`` seconds, else the test
    fails (and the process is killed)."""
    stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
    proc = await start_cli(env, cwd, *args, stdin=stdin)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), bound)
    except TimeoutError:
        pytest.fail(f"`querybus {' '.join(args)}` still running after {bound} s")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def serving(bus: Bus) -> None:
    """Start an adapter on ``bus`` and wait until it answers: the CLI process
    is then measured against a serving adapter, not against a group join."""
    await bus.adapter()
    client = await bus.client(timeout=60.0)
    assert await client.fetchval("SELECT 1") == 1
