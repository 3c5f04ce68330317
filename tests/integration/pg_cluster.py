"""The one wrapper of PostgreSQL's server tools for the tests' private servers.

The private primaries of the outage tests (:mod:`tests.integration.private_services`)
and the private replicas of the routing tests (:mod:`tests.integration.routing_helpers`)
both run ``initdb``, ``pg_basebackup`` and ``pg_ctl`` through :class:`PgCluster`:
as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run
as root), with a bounded time, and with the tool's error and the end of the
server log in the exception when one fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgCluster", "PgToolError", "pg_bin", "tail"]


def pg_bin() -> Path:
    """The directory of the newest installed PostgreSQL server binaries."""
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "pg_basebackup").exists():
            return d
    found = shutil.which("pg_basebackup")
    assert found, "PostgreSQL binaries (pg_basebackup) not found"
    return Path(found).parent


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (or a note that there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


class PgToolError(RuntimeError):
    """``initdb``, ``pg_basebackup`` or ``pg_ctl`` failed (its stderr and the server log's end)."""


@dataclass
class PgCluster:
    """One data directory and the server tools that create, start and stop it.

    Args:
        data: the data directory (made by :meth:`initdb` or :meth:`basebackup`).
        log_file: the server log ``pg_ctl start`` writes.
        bin: the PostgreSQL binaries (default: the newest installed).
    """

    data: Path
    log_file: Path
    bin: Path = field(default_factory=pg_bin)

    def run(self, tool: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        """Run one of the server tools as the postgres user.

        Raises:
            PgToolError: it exited with an error.
            subprocess.TimeoutExpired: it took more than two minutes.
        """
        # PostgreSQL refuses to run as root: run it as the postgres user, as the stack does.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run(
            [*prefix, str(self.bin / tool), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            cwd="/",
            env=None if env is None else dict(env),
        )
        if proc.returncode != 0:
            raise PgToolError(
                f"{tool} {' '.join(args[:1])} failed ({proc.returncode}): "
                f"{proc.stderr.strip()}\n{tail(self.log_file)}"
            )

    def initdb(self, *args: str) -> None:
        """A new cluster in :attr:`data` (``args``: initdb's options)."""
        self.run("initdb", "-D", str(self.data), *args)

    def basebackup(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        """A copy of a running server into :attr:`data` (``args``: where from, how)."""
        self.run("pg_basebackup", "-D", str(self.data), *args, env=env)

    def start(self, port: int, socket_dir: Path, *settings: str) -> None:
        """Start the server on 127.0.0.1:``port`` and wait (up to 60 s) until it
        accepts connections; ``settings`` are extra ``name=value`` server settings."""
        options = [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={socket_dir}",
            *(f"-c {s}" for s in settings),
        ]
        self.run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-s",
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
        )

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are terminated, the server shuts down cleanly."""
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-s")

    def running(self) -> bool:
        """Whether a server runs on :attr:`data` (its ``postmaster.pid`` exists)."""
        return (self.data / "postmaster.pid").exists()
