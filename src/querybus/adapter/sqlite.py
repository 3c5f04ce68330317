"""SQLite execution (aiosqlite) for the embedded mode: no database server needed.

Statements keep asyncpg's ``$1`` placeholders (SQLite reads ``$1`` as a named
parameter "1"). Errors get the PostgreSQL SQLSTATE that means the same thing,
so callers handle one error tree; SQLite's extended result codes say which
constraint failed, and for the rest (plain SQLITE_ERROR) its message is the
only signal there is.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from querybus.cancellation import wait_for
from querybus.errors import InterfaceError, OperationalError, QueryError, query_error_class
from querybus.execution import Job, Outcome, PoolStats
from querybus.protocol.messages import Column, OperationType, RouteInfo

__all__ = ["SqliteExecutor"]

_CONSTRAINTS = {
    "SQLITE_CONSTRAINT_UNIQUE": "23505",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "23505",
    "SQLITE_CONSTRAINT_NOTNULL": "23502",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "23503",
    "SQLITE_CONSTRAINT_CHECK": "23514",
}
_MESSAGES = (
    ("no such table", "42P01"),
    ("no such column", "42703"),
    ("no such function", "42883"),
    ("syntax error", "42601"),
    ("already exists", "42P07"),
    ("datatype mismatch", "42804"),
)
_TYPE_NAMES = {int: "integer", float: "real", str: "text", bytes: "blob", type(None): "null"}


def _map_error(exc: sqlite3.Error) -> QueryError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc)
    sqlstate = _CONSTRAINTS.get(name)
    if sqlstate is None and name.startswith("SQLITE_CONSTRAINT"):
        sqlstate = "23000"
    if sqlstate is None:
        lowered = message.lower()
        sqlstate = next((code for text, code in _MESSAGES if text in lowered), "XX000")
    return query_error_class(sqlstate)(message, sqlstate=sqlstate, detail=name or None)


class SqliteExecutor:
    """Runs requests on one SQLite file (or ``":memory:"``), one at a time."""

    name = "sqlite"
    #: Interactive transactions and batches need PostgreSQL: the adapter
    #: answers them with FeatureNotSupportedError in the embedded mode.
    transactions = None

    def __init__(self, path: str = ":memory:") -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        # SQLite has one writer; one connection used serially keeps it simple.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._db = await aiosqlite.connect(self._path, isolation_level=None)

    async def stop(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise InterfaceError("the SQLite executor is not started")
        return self._db

    async def run(self, job: Job) -> Outcome:
        db = self._require()
        started = time.perf_counter()
        async with self._lock:
            try:
                outcome = await wait_for(self._run(db, job), job.deadline.left())
            except sqlite3.Error as exc:
                raise _map_error(exc) from exc
            except TimeoutError:
                await db.interrupt()
                raise query_error_class("57014")(
                    "statement canceled: the request's deadline passed", sqlstate="57014"
                ) from None
        outcome.execute_seconds = time.perf_counter() - started
        outcome.route = RouteInfo(target="sqlite", reason="embedded")
        return outcome

    async def _run(self, db: aiosqlite.Connection, job: Job) -> Outcome:
        request, params = job.request, job.params
        if request.many:
            await db.execute("BEGIN")
            try:
                await db.executemany(request.sql, [_named(p) for p in params])
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
            return Outcome(command=f"EXECUTEMANY {len(params)}", rowcount=len(params))
        async with db.execute(request.sql, _named(params)) as cursor:
            rows = [list(r) for r in await cursor.fetchall()]
            description = cursor.description or ()
            changed = cursor.rowcount
        op = job.statement.operation
        columns = [
            Column(d[0], _TYPE_NAMES.get(type(rows[0][i]), "text") if rows else "text")
            for i, d in enumerate(description)
        ]
        if op is OperationType.INSERT:
            command = f"INSERT 0 {max(changed, 0)}"
        elif op in (OperationType.UPDATE, OperationType.DELETE):
            command = f"{op.value} {max(changed, 0)}"
        elif op is OperationType.SELECT:
            command = f"SELECT {len(rows)}"
        else:
            command = request.sql.split(None, 1)[0].upper() if request.sql.strip() else ""
        rowcount = len(rows) if description else max(changed, 0)
        return Outcome(command=command, columns=columns, rows=rows, rowcount=rowcount)

    def pool_stats(self) -> dict[str, PoolStats]:
        return {}  # one connection, no pool

    async def ping(self, timeout: float) -> None:
        db = self._require()
        try:
            await wait_for(db.execute("SELECT 1"), timeout)
        except (TimeoutError, sqlite3.Error) as exc:
            raise OperationalError(f"SQLite does not answer: {exc}") from exc


def _named(params: Sequence[Any]) -> dict[str, Any]:
    return {str(i): v for i, v in enumerate(params, start=1)}
