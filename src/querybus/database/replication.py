"""Replication on PostgreSQL: LSNs, commit positions, replay waits, replica status.

Part of the database layer (the only asyncpg importer), used by the router.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from querybus.database.errors import DATABASE_ERRORS, map_database_error
from querybus.errors import RequestRejectedError

__all__ = [
    "REPLICA_STATUS",
    "commit_lsn",
    "format_lsn",
    "parse_lsn",
    "wait_replayed",
]

#: ``(pg_is_in_recovery(), pg_last_wal_replay_lsn())`` of a server.
REPLICA_STATUS = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` → the WAL position as an int.

    Raises:
        RequestRejectedError: ``text`` is not an LSN (it comes from callers, as ``min_lsn``).
    """
    hi, sep, lo = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return (int(hi, 16) << 32) | int(lo, 16)
    except ValueError:
        raise RequestRejectedError(f"not a PostgreSQL LSN: {text!r}") from None


def format_lsn(value: int) -> str:
    """The inverse of :func:`parse_lsn`."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


async def commit_lsn(conn: Any) -> str:
    """The WAL *insert* position on ``conn``'s server, read right after a write.

    Not ``pg_current_wal_lsn()``: that is the *write* position, which with
    ``synchronous_commit = off`` can still be behind our own commit record, so
    a replica that replayed it could miss the write (we measured exactly that
    stale read). The insert position is past every record already inserted.

    Raises:
        OperationalError: the connection failed.
        QueryError: the server refused the query.
    """
    try:
        return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc


async def wait_replayed(conn: Any, min_lsn: int, *, budget: float, poll: float) -> int | None:
    """Poll ``pg_last_wal_replay_lsn()`` on ``conn`` until it reaches ``min_lsn``.

    Returns the replayed LSN once it is ``>= min_lsn``, or ``None`` when the
    budget ran out first.

    Raises:
        OperationalError: the connection failed.
        QueryError: the server refused the query.
    """
    deadline = time.monotonic() + budget
    while True:
        try:
            text = await conn.fetchval(
                "SELECT pg_last_wal_replay_lsn()::text", timeout=max(budget, 1.0)
            )
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc
        if text is not None:
            lsn = parse_lsn(text)
            if lsn >= min_lsn:
                return lsn
        if time.monotonic() + poll > deadline:
            return None
        await asyncio.sleep(poll)
