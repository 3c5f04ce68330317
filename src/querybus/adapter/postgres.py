"""PostgreSQL execution on asyncpg. The only asyncpg importer besides the router's targets.

One request = one statement in autocommit (or, for ``executemany``, one
transaction). A write with an idempotency key runs in one transaction with
its key in the durable store (:mod:`querybus.adapter.idempotency`).

Nothing a request does to its session may leak into the next one, but
resetting every connection on release (asyncpg's default) costs a full round
trip per request. So the pool does not reset; instead, after a
statement that might have left session state behind (anything but a plain
SELECT/INSERT/UPDATE/DELETE calling known built-ins: see
``StatementInfo.session_safe``), and after we shortened ``statement_timeout``,
the executor sends asyncpg's reset query plus ``DISCARD TEMP`` before the
connection goes back. Transaction control and ``SET`` are refused upstream.

Deadlines: the pool's sessions start with ``statement_timeout`` = the
adapter's longest allowed statement; a request whose time left is clearly
shorter (under 90 % of that) gets its own ``SET statement_timeout`` first, and
asyncpg's client-side timeout cancels the statement on the server at the
deadline in every case. So the database never runs a statement more than
10 % past its caller's deadline, and the common case pays no extra round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgspec

from querybus.adapter.executor import Outcome
from querybus.adapter.idempotency import IdempotencySettings, IdempotencyStore, request_digest
from querybus.errors import (
    OperationalError,
    QueryBusError,
    QueryCanceledError,
    QueryError,
    query_error_class,
)
from querybus.protocol.messages import Column, QueryRequest
from querybus.routing.classify import analyze, classify

# Raised by asyncpg itself (not the server) for a parameter it cannot encode.
_ClientDataError = asyncpg.exceptions._base.DataError
# Everything asyncpg (or the socket under it) raises, mapped by map_database_error.
_DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. the server shut down mid-statement
    OSError,
    asyncio.TimeoutError,
)

__all__ = [
    "RELEASE_TIMEOUT",
    "PostgresExecutor",
    "create_pool",
    "init_connection",
    "map_database_error",
    "prepare_idempotency",
    "run_on_connection",
    "run_statement",
]

_json_encode = msgspec.json.Encoder().encode


def _encode_json(value: Any) -> str:
    # A str parameter for a json column is taken as an already-encoded document,
    # like asyncpg does without codecs; anything else is encoded.
    if isinstance(value, str):
        return value
    return _json_encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: json/jsonb travel as Python dicts and lists."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


#: How long releasing a connection to its pool may take. asyncpg's release waits,
#: without limit, for a cancelled statement's cancellation to complete; past
#: this bound it terminates the connection instead of hanging the caller.
RELEASE_TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def pooled(pool: asyncpg.Pool, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` (waiting at most ``timeout``), released with a bound."""
    conn = await pool.acquire(timeout=timeout)
    try:
        yield conn
    finally:
        await pool.release(conn, timeout=RELEASE_TIMEOUT)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to do; run_on_connection resets when needed."""


async def create_pool(
    dsn: str, *, size: int, max_statement_timeout: float, application_name: str = "querybus"
) -> asyncpg.Pool:
    """An asyncpg pool of exactly ``size`` connections, set up by :func:`init_connection`.

    Raises:
        OperationalError: the server cannot be reached or refuses the login.
    """
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=size,
            max_size=size,
            init=init_connection,
            reset=_keep_session,
            server_settings={
                "application_name": application_name,
                "statement_timeout": str(int(max_statement_timeout * 1000)),
            },
        )
    except _DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc
    return pool


def map_database_error(exc: BaseException) -> QueryBusError:
    """The querybus error for an asyncpg (or socket) exception.

    Server errors keep their SQLSTATE, detail and hint; we never match on the
    message text, which the server may localize.
    """
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        cls = query_error_class(sqlstate)
        message = str(getattr(exc, "message", None) or exc)
        return cls(
            message,
            sqlstate=sqlstate,
            detail=getattr(exc, "detail", None),
            hint=getattr(exc, "hint", None),
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return QueryCanceledError(
            "statement canceled: the request's deadline passed", sqlstate="57014"
        )
    if isinstance(exc, _ClientDataError):
        # asyncpg's client-side DataError: a parameter it cannot encode (a str
        # for an int4 column, …). The caller's fault: invalid_parameter_value.
        return query_error_class("22023")(str(exc), sqlstate="22023")
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return OperationalError(f"database unreachable: {exc}", sqlstate="08006")
    return QueryError(f"{type(exc).__name__}: {exc}")


def _columns(stmt: Any) -> list[Column]:
    return [Column(a.name, a.type.name) for a in stmt._get_attributes()]


async def run_on_connection(
    conn: asyncpg.Connection,
    request: QueryRequest,
    params: Sequence[Any],
    *,
    timeout: float,
    session_timeout: float | None = None,
    want_lsn: bool = False,
    idempotency: IdempotencyStore | None = None,
) -> Outcome:
    """Run one request's statement on ``conn``.

    Args:
        conn: a connection set up by :func:`init_connection`.
        request: the validated request.
        params: decoded parameters (a list of lists when ``request.many``).
        timeout: seconds left before the request's deadline.
        session_timeout: the connection's current ``statement_timeout`` in
            seconds, if known; a shorter ``timeout`` is applied with SET first.
        want_lsn: after a write, read the WAL position (read-your-writes).
        idempotency: the durable store; when given and the request has an
            idempotency key, the statement runs in one transaction with its
            key (or is not run at all when the key is already stored). The
            caller decides whether the statement needs it (reads do not).

    Raises:
        QueryError: the database refused the statement (precise subclass by SQLSTATE).
        OperationalError: the connection failed.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    dirty = not analyze(request.sql).session_safe
    try:
        if session_timeout is not None and timeout < session_timeout * 0.9:
            dirty = True  # the SET below must not outlive this request
            await conn.execute(f"SET statement_timeout = {max(1, int(timeout * 1000))}")
        key = request.idem
        if idempotency is not None and key is not None:
            try:
                outcome = await idempotency.run(
                    conn,
                    key,
                    lambda: run_statement(conn, request, params, timeout=_left(deadline)),
                    request=request_digest(request.sql, request.params, request.many),
                    deadline=deadline,
                )
            except asyncpg.ActiveSQLTransactionError:
                # VACUUM, CREATE INDEX CONCURRENTLY…: refused inside a transaction
                # block before doing anything. They run as before, without a
                # durable record (the adapter's in-memory cache still applies).
                outcome = await run_statement(conn, request, params, timeout=_left(deadline))
        else:
            outcome = await run_statement(conn, request, params, timeout=timeout)
        if want_lsn:
            # The insert position, not pg_current_wal_lsn(): with
            # synchronous_commit=off the write position can still be behind
            # this statement's own commit record.
            outcome.lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    except _DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc
    finally:
        if dirty:
            await _reset_session(conn)
    outcome.execute_seconds = time.perf_counter() - started
    return outcome


async def run_statement(
    conn: asyncpg.Connection, request: QueryRequest, params: Sequence[Any], *, timeout: float
) -> Outcome:
    """Only the statement of ``request``: in autocommit, or inside the caller's
    transaction when ``conn`` is in one (``executemany`` then joins it instead
    of opening its own). No session handling and no error mapping: that is
    :func:`run_on_connection`'s job.

    Raises:
        asyncpg.PostgresError and the other asyncpg errors, unmapped.
    """
    if request.many:
        if conn.is_in_transaction():
            await conn.executemany(request.sql, params, timeout=timeout)
        else:
            async with conn.transaction():
                await conn.executemany(request.sql, params, timeout=timeout)
        return Outcome(command=f"EXECUTEMANY {len(params)}", rowcount=len(params))
    # asyncpg's statement cache makes both calls below one round trip
    # after the first: Parse/Describe is done once per connection.
    stmt = await conn._get_statement(request.sql, timeout)
    rows, status, _ = await conn._execute(request.sql, params, 0, timeout, return_status=True)
    command = status.decode() if isinstance(status, bytes) else str(status or "")
    return Outcome(
        command=command,
        columns=_columns(stmt),
        rows=[list(r) for r in rows],
        rowcount=_rowcount(command, len(rows)),
    )


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError  # mapped like asyncpg's own: QueryCanceledError
    return left


async def prepare_idempotency(conn: asyncpg.Connection, store: IdempotencyStore) -> None:
    """Create ``store``'s table on ``conn``'s server if needed (see
    :meth:`IdempotencyStore.prepare`).

    Raises:
        QueryError: the table cannot be created (e.g. no CREATE privilege).
        OperationalError: the connection failed.
    """
    try:
        await store.prepare(conn)
    except _DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc


async def _reset_session(conn: asyncpg.Connection) -> None:
    """Undo whatever the statement may have left in the session; a connection
    that cannot be reset is closed rather than handed to the next request."""
    try:
        await conn.execute(conn.get_reset_query() + "\nDISCARD TEMP;", timeout=5.0)
    except _DATABASE_ERRORS:
        conn.terminate()


def _rowcount(command: str, returned: int) -> int:
    # "INSERT 0 3", "UPDATE 2", "SELECT 5", "DELETE 0", "COPY 7" end with a count.
    tail = command.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else returned


class PostgresExecutor:
    """Runs every request on one PostgreSQL server through one pool.

    Args:
        dsn: the server.
        pool_size: connections; the adapter never runs more requests at once.
        max_statement_timeout: the longest any statement may run, seconds.
        idempotency: the durable idempotency store (default: on, table
            ``querybus_idempotency``, keys kept 24 h); see
            :mod:`querybus.adapter.idempotency`.
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        max_statement_timeout: float = 30.0,
        idempotency: IdempotencySettings | None = None,
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._max_statement_timeout = max_statement_timeout
        self._pool: asyncpg.Pool | None = None
        settings = idempotency or IdempotencySettings()
        self.idempotency = IdempotencyStore(settings) if settings.enabled else None

    async def start(self) -> None:
        """Open the pool and prepare the idempotency table.

        Raises:
            OperationalError: the server cannot be reached.
            QueryError: the idempotency table cannot be created.
        """
        self._pool = await create_pool(
            self._dsn, size=self._pool_size, max_statement_timeout=self._max_statement_timeout
        )
        if self.idempotency is not None:
            try:
                async with self._pool.acquire(timeout=self._max_statement_timeout) as conn:
                    await prepare_idempotency(conn, self.idempotency)
            except BaseException:
                await self.stop()
                raise
            self.idempotency.start_cleanup(self._require_pool().acquire)

    async def stop(self) -> None:
        if self.idempotency is not None:
            await self.idempotency.stop_cleanup()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except TimeoutError:
                pool.terminate()

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise OperationalError("the executor is not started")
        return self._pool

    async def run(self, request: QueryRequest, params: Sequence[Any], *, timeout: float) -> Outcome:
        pool = self._require_pool()
        try:
            async with pooled(pool, timeout) as conn:
                return await run_on_connection(
                    conn,
                    request,
                    params,
                    timeout=timeout,
                    session_timeout=self._max_statement_timeout,
                    idempotency=self._store_for(request),
                )
        except _DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc

    def _store_for(self, request: QueryRequest) -> IdempotencyStore | None:
        # Reads need no durable record (see querybus.adapter.idempotency).
        if request.idem is None or self.idempotency is None:
            return None
        return self.idempotency if classify(request.sql).writes else None

    async def ping(self, timeout: float) -> None:
        pool = self._require_pool()
        try:
            async with pooled(pool, timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)
        except _DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc
