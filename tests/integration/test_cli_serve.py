"""``querybus serve --allow-superuser`` (issue 7, defect 2's flag), on the real stack.

An adapter refuses to start as a superuser: a caller's SQL could run programs
and read files on the database host. The flag is the explicit way to say "I
know"; it only sets ``AdapterSettings.allow_superuser`` (the check itself is
the executor's).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from tests.integration.cli_helpers import cli_env, run_cli, start_cli
from tests.stack import Stack, UniqueNames


def _superuser_env(stack: Stack, unique: UniqueNames) -> dict[str, str]:
    return cli_env(
        stack,
        unique("cli-serve") + ".",
        registry=False,
        POSTGRES_USER=stack.admin.user,  # the cluster's superuser
        POSTGRES_PASSWORD=stack.admin.password,
        QUERYBUS_GROUP_ID=unique("group"),
        QUERYBUS_HTTP_PORT="0",
        QUERYBUS_POOL_SIZE="2",
        QUERYBUS_REPLICA_DSNS="",
    )


async def _serve(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await start_cli(env, cwd, "serve", *args, stdout=subprocess.DEVNULL)


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
        code, out, err = await run_cli(env, tmp_path, "check", "--timeout", "60", bound=90)
        assert proc.returncode is None, "the adapter stopped"
        assert code == 0, err
        assert "✓ query executed successfully" in out
    finally:
        await _stop(proc)
    assert proc.returncode == 0
