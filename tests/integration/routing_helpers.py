"""Private streaming replicas for the routing tests.

A test that pauses a replica's replay or stops it uses its own replica of the
stack's primary (``pg_basebackup -R`` into ``.stack/``), so the shared replica
stays untouched for everyone else's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from tests.stack import REPO, Stack

__all__ = ["PrivateReplica", "caught_up", "free_port", "private_replica_of"]


def _pg_bin() -> Path:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "pg_basebackup").exists():
            return d
    found = shutil.which("pg_basebackup")
    assert found, "PostgreSQL binaries (pg_basebackup) not found"
    return Path(found).parent


def free_port() -> int:
    """A TCP port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateReplica:
    """A streaming replica of the stack's primary that a test may pause or stop."""

    data: Path
    port: int
    dsn: str  # the adapters' login
    bin: Path
    admin_dsn: str = ""  # the superuser: pausing replay and other control

    def _run(self, *args: str, env: dict[str, str] | None = None) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *args],
            check=True,
            env=env,
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data}"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-s",
            "-l",
            str(self.data / "server.log"),
            "-o",
            opts,
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-s")


@contextlib.contextmanager
def private_replica_of(stack: Stack) -> Iterator[PrivateReplica]:
    """A started private replica of ``stack``'s primary; stopped and deleted afterwards."""
    root = REPO / ".stack" / f"routing-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    replica = PrivateReplica(data=data, port=free_port(), dsn="", bin=_pg_bin())
    try:
        env = {**os.environ, "PGPASSWORD": stack.admin.password}
        replica._run(
            str(replica.bin / "pg_basebackup"),
            "-h",
            stack.pg.host,
            "-p",
            str(stack.pg.port),
            "-U",
            stack.admin.user,
            "-D",
            str(data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            env=env,
        )
        replica.dsn = stack.pg.dsn.replace(f":{stack.pg.port}/", f":{replica.port}/")
        replica.admin_dsn = stack.admin.dsn.replace(f":{stack.pg.port}/", f":{replica.port}/")
        replica.start()
        try:
            yield replica
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                replica.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def caught_up(primary_dsn: str, replica_dsn: str, timeout: float = 30.0) -> None:
    """Poll until the replica has replayed everything committed on the primary so far."""
    p = await asyncpg.connect(primary_dsn)
    r = await asyncpg.connect(replica_dsn)
    try:
        # The insert position: with synchronous_commit=off the write position
        # (pg_current_wal_lsn) can still be behind commits that already returned.
        target = await p.fetchval("SELECT pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout
        while True:
            if await r.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", target):
                return
            assert time.monotonic() < deadline, "replica did not catch up"
            await asyncio.sleep(0.01)
    finally:
        await p.close()
        await r.close()
