"""Private streaming replicas for the routing tests.

A test that pauses a replica's replay or stops it uses its own replica of the
stack's primary (``pg_basebackup -R`` into ``.stack/``), so the shared replica
stays untouched for everyone else's tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from tests.helpers import wait_for
from tests.integration.pg_cluster import PgCluster, PgToolError
from tests.stack import REPO, Stack

__all__ = ["PrivateReplica", "caught_up", "free_port", "private_replica_of"]


def free_port() -> int:
    """A TCP port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateReplica:
    """A streaming replica of the stack's primary that a test may pause or stop."""

    cluster: PgCluster
    port: int
    dsn: str = ""  # the adapters' login
    admin_dsn: str = ""  # the superuser: pausing replay and other control

    @property
    def data(self) -> Path:
        return self.cluster.data

    def start(self) -> None:
        """Start it again (same port, same data) and wait until it accepts connections."""
        self.cluster.start(self.port, self.data)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``."""
        self.cluster.stop()


@contextlib.contextmanager
def private_replica_of(stack: Stack) -> Iterator[PrivateReplica]:
    """A started private replica of ``stack``'s primary; stopped and deleted afterwards."""
    root = REPO / ".stack" / f"routing-test-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    cluster = PgCluster(data=root / "data", log_file=root / "server.log")
    replica = PrivateReplica(cluster, port=free_port())
    try:
        cluster.basebackup(
            "-h",
            stack.pg.host,
            "-p",
            str(stack.pg.port),
            "-U",
            stack.admin.user,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            env={**os.environ, "PGPASSWORD": stack.admin.password},
        )
        replica.dsn = stack.pg.dsn.replace(f":{stack.pg.port}/", f":{replica.port}/")
        replica.admin_dsn = stack.admin.dsn.replace(f":{stack.pg.port}/", f":{replica.port}/")
        replica.start()
        try:
            yield replica
        finally:
            with contextlib.suppress(PgToolError):
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
        await wait_for(
            lambda: r.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", target),
            timeout,
            interval=0.01,
            message="the replica catching up",
        )
    finally:
        await p.close()
        await r.close()
