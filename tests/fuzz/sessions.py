"""The state of every pooled session of an adapter, to compare before and after.

Every connection of the pool is acquired at once (so each one is seen, not the
same free one over and over) and asked, in one statement, for everything a
request could have left behind in its session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from querybus.adapter.service import AdapterService
from querybus.database.pool import ConnectionPool

__all__ = ["SessionState", "describe_changes", "pooled_sessions"]

# Custom settings the hostile SQL sets: unknown before (NULL); a value, even
# an empty one after RESET ALL, means a request left a placeholder behind.
_CUSTOM = ("qb.fuzz", "request.jwt.claims")
_CUSTOM_SQL = ", ".join(f"current_setting('{name}', true)" for name in _CUSTOM)

_STATE_SQL = f"""
SELECT current_user::text AS current_user_,
       session_user::text AS session_user_,
       current_setting('search_path') AS search_path,
       current_setting('role') AS role,
       (SELECT coalesce(string_agg(name || '=' || setting || ' (' || source || ')', ', '
                                   ORDER BY name), '')
          FROM pg_settings
         WHERE source NOT IN ('default', 'override', 'configuration file',
                              'environment variable')) AS settings,
       (SELECT array_agg(name ORDER BY name) FROM pg_settings
         WHERE name NOT LIKE 'plpgsql.%') AS setting_names,
       ARRAY[{_CUSTOM_SQL}]::text[]
           AS custom_settings,
       (SELECT coalesce(string_agg(name, ', ' ORDER BY name), '')
          FROM pg_prepared_statements WHERE name !~ '^__asyncpg_') AS prepared_statements,
       (SELECT coalesce(string_agg(name, ', ' ORDER BY name), '') FROM pg_cursors) AS cursors,
       (SELECT coalesce(string_agg(relname, ', ' ORDER BY relname), '')
          FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_relations,
       (SELECT coalesce(string_agg(proname, ', ' ORDER BY proname), '')
          FROM pg_proc WHERE pronamespace = pg_my_temp_schema()) AS temp_functions,
       (SELECT count(*) FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
       (SELECT coalesce(string_agg(c, ', ' ORDER BY c), '')
          FROM pg_listening_channels() AS c) AS listening,
       current_setting('transaction_read_only') AS transaction_read_only,
       pg_backend_pid() AS pid
"""


@dataclass(frozen=True, slots=True)
class SessionState:
    """What one pooled session looks like. Equality ignores ``pid``.

    ``setting_names`` shows a library loaded into the session (``LOAD``: its
    settings appear). PL/pgSQL's own are left out: they appear once any
    PL/pgSQL ran in the session, the adapter's own session reset included.
    """

    current_user_: str
    session_user_: str
    search_path: str
    role: str
    settings: str
    setting_names: tuple[str, ...]
    custom_settings: tuple[str | None, ...]
    prepared_statements: str
    cursors: str
    temp_relations: str
    temp_functions: str
    advisory_locks: int
    listening: str
    transaction_read_only: str
    in_transaction: bool
    pid: int

    def comparable(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "pid")


@contextlib.asynccontextmanager
async def _all_connections(pool: ConnectionPool, timeout: float) -> AsyncIterator[list[Any]]:
    held: list[Any] = []
    try:
        for _ in range(pool.size):
            async with asyncio.timeout(timeout):
                held.append(await pool.acquire())
        yield held
    finally:
        for conn in held:
            await pool.release(conn, timeout=timeout)


async def pooled_sessions(svc: AdapterService, *, timeout: float = 30.0) -> list[SessionState]:
    """The state of every session in ``svc``'s database pool.

    Raises:
        AssertionError: the adapter has no connection pool where the test looks for it.
    """
    pool = getattr(svc.executor, "_pool", None)
    assert isinstance(pool, ConnectionPool), (
        f"the fuzz test reads the adapter's pool at executor._pool; "
        f"{type(svc.executor).__name__} has {type(pool).__name__}"
    )
    states = []
    async with _all_connections(pool, timeout) as conns:
        for conn in conns:
            row = await conn.fetchrow(_STATE_SQL, timeout=timeout)
            states.append(
                SessionState(
                    **{
                        k: v
                        for k, v in dict(row).items()
                        if k not in ("custom_settings", "setting_names")
                    },
                    custom_settings=tuple(row["custom_settings"]),
                    setting_names=tuple(row["setting_names"]),
                    in_transaction=conn.is_in_transaction(),
                )
            )
    return states


def describe_changes(before: list[SessionState], after: list[SessionState]) -> list[str]:
    """How the sessions of ``after`` differ from those of ``before`` (empty: none does)."""
    baseline = {s.comparable() for s in before}
    reference = before[0]
    out = []
    for state in after:
        if state.comparable() in baseline:
            continue
        diffs = []
        for f in fields(state):
            old, new = getattr(reference, f.name), getattr(state, f.name)
            if f.name == "pid" or old == new:
                continue
            if f.name == "setting_names":
                added, gone = sorted(set(new) - set(old)), sorted(set(old) - set(new))
                diffs.append(f"settings that appeared: {added}, disappeared: {gone}")
            else:
                diffs.append(f"{f.name}: {old!r} -> {new!r}")
        out.append(f"backend {state.pid}: " + "; ".join(diffs))
    return out
