"""``querybus serve --allow-superuser`` (issue 7, defect 2's flag), on the real stack.

An adapter refuses to start as a superuser: a caller's SQL could run programs
and read files on the database host. The flag is the explicit way to say "I
know"; it only sets ``AdapterSettings.allow_superuser`` (the check itself is
the executor's).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.stack import Stack, UniqueNames


def _superuser_env(stack: Stack, unique: UniqueNames) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYBUS_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        POSTGRES_USER=stack.admin.user,  # the cluster's superuser
        POSTGRES_PASSWORD=stack.admin.password,
        QUERYBUS_TOPIC_PREFIX=unique("cli-serve") + ".",
        QUERYBUS_GROUP_ID=unique("group"),
        QUERYBUS_HTTP_PORT="0",
        QUERYBUS_POOL_SIZE="2",
        QUERYBUS_REGISTRY="",
        QUERYBUS_REPLICA_DSNS="",
    )
    return env


async def _serve(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "querybus", "serve", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, cwd=cwd,
    )  # fmt: skip


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_serve_as_superuser_is_refused_without_the_flag(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    proc = await _serve(_superuser_env(stack, unique), tmp_path)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await _stop(proc)
    assert proc.returncode == 1
    text = err.decode()
    assert "querybus serve failed" in text
    assert "--allow-superuser" in text


async def test_serve_as_superuser_with_the_flag_serves(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    env = _superuser_env(stack, unique)
    proc = await _serve(env, tmp_path, "--allow-superuser", "--log-level", "WARNING")
    try:
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "querybus", "check", "--timeout", "60",
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(check.communicate(), 90)
        finally:
            if check.returncode is None:
                check.kill()
                await check.wait()
        assert proc.returncode is None, "the adapter stopped"
        assert check.returncode == 0, err.decode()
        assert "✓ query executed successfully" in out.decode()
    finally:
        await _stop(proc)
    assert proc.returncode == 0
