"""Running one statement on a PostgreSQL connection, with asyncpg.

The :mod:`querybus.database` package is the only asyncpg importer. One request
is one statement in autocommit (or, for ``executemany``, one transaction); a
write with an idempotency key runs in one transaction with its key in the
durable store (:mod:`querybus.database.idempotency`).

Nothing a request does to its session may leak into the next one, but
resetting every connection on release (asyncpg's pool's default) costs a full
round trip per request. So the pool (:class:`ConnectionPool`) does not reset;
instead, after a statement that might have left session state behind
(``Statement.session_safe`` is false; every statement when ``reset`` is asked
for), and after we shortened ``statement_timeout``, the connection gets
:data:`~querybus.database.session.RESET_SESSION`, which undoes every kind of
session state PostgreSQL has and checks the result in the same round trip.

Deadlines: the pool's sessions start with ``statement_timeout`` = the
adapter's longest allowed statement; a request whose time left is clearly
shorter (under 90 % of that) gets its own ``SET statement_timeout`` first, and
asyncpg's client-side timeout cancels the statement on the server at the
deadline in every case. So the database never runs a statement more than
10 % past its caller's deadline, and the common case pays no extra round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import msgspec

from querybus.database.errors import DATABASE_ERRORS, ClientDataError, map_database_error
from querybus.database.idempotency import IdempotencyStore, request_digest
from querybus.database.pool import ConnectionPool
from querybus.database.roles import RoleEscapeError, run_guarded
from querybus.database.session import reset_session
from querybus.errors import PermissionDeniedError
from querybus.execution import Job, Outcome
from querybus.protocol.messages import Column

__all__ = [
    "RELEASE_TIMEOUT",
    "connect",
    "create_pool",
    "init_connection",
    "pooled",
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


#: How long returning a connection to its pool may take: the wait for a
#: cancelled statement's cancellation to complete (or a stray transaction's
#: rollback); past this bound the connection is closed instead of hanging the
#: caller (see :class:`ConnectionPool`).
RELEASE_TIMEOUT = 5.0


class pooled:
    """A connection from ``pool`` (waiting at most ``timeout``; None: as long
    as the caller waits), released with a bound.

    A class rather than an ``asynccontextmanager``: it runs on every request,
    and a generator-based context manager costs a generator and its frame
    per use.

    Raises:
        TimeoutError: (on entry) no connection became free within ``timeout``.
    """

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: ConnectionPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        if self._timeout is None:  # the caller's own timeout bounds the wait
            self._conn = await self._pool.acquire()
        else:
            async with asyncio.timeout(self._timeout):
                self._conn = await self._pool.acquire()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn, timeout=RELEASE_TIMEOUT)


async def connect(
    dsn: str, *, timeout: float, application_name: str | None = None
) -> asyncpg.Connection:
    """One plain connection (monitoring, catalogs), not from a pool.

    Raises:
        asyncpg errors, unmapped: callers map them with their context.
    """
    settings = {"application_name": application_name} if application_name else None
    return await asyncpg.connect(dsn, timeout=timeout, server_settings=settings)


async def create_pool(
    dsn: str, *, size: int, max_statement_timeout: float, application_name: str = "querybus"
) -> ConnectionPool:
    """A pool of exactly ``size`` connections, set up by :func:`init_connection`.

    Raises:
        OperationalError: the server cannot be reached or refuses the login.
    """
    settings = {
        "application_name": application_name,
        "statement_timeout": str(int(max_statement_timeout * 1000)),
    }

    async def open_one() -> asyncpg.Connection:
        conn = await asyncpg.connect(dsn, server_settings=settings)
        try:
            await init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    pool = ConnectionPool(open_one, size)
    try:
        await pool.open()
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc
    return pool


class _Shape(NamedTuple):
    """What a prepared statement's description says, as the hot path needs it."""

    columns: list[Column]
    #: (position, type name) of the integer parameters (see _check_integers).
    integers: tuple[tuple[int, str], ...]


# A prepared statement's shape, by the statement object (kept alive with it,
# so its id cannot be reused meanwhile). asyncpg re-prepares a statement whose
# description changed (DDL) as a new object, so an entry is never stale.
# Rebuilding the column list and scanning the parameter types cost a few
# percent of a point query's CPU when done per request.
_SHAPES: dict[int, tuple[Any, _Shape]] = {}
_SHAPES_MAX = 1024


def _shape(stmt: Any) -> _Shape:
    cached = _SHAPES.get(id(stmt))
    if cached is not None and cached[0] is stmt:
        return cached[1]
    shape = _Shape(
        columns=[Column(a.name, a.type.name) for a in stmt._get_attributes()],
        integers=tuple(
            (n, kind.name)
            for n, kind in enumerate(stmt._get_parameters())
            if kind.name in _INTEGER_TYPES
        ),
    )
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()  # bounded: statements of every connection end up here
    _SHAPES[id(stmt)] = (stmt, shape)
    return shape


async def run_on_connection(
    conn: asyncpg.Connection,
    job: Job,
    *,
    session_timeout: float | None = None,
    idempotency: IdempotencyStore | None = None,
    reset: bool = False,
) -> Outcome:
    """Run one job's statement on ``conn``.

    Args:
        conn: a connection set up by :func:`init_connection`.
        job: the validated request, its parameters, statement and deadline.
        session_timeout: the connection's current ``statement_timeout`` in
            seconds, if known; a clearly shorter deadline gets its own SET first.
        idempotency: the durable store; when given and the request has an
            idempotency key, the statement runs in one transaction with its
            key (or is not run at all when the key is already stored). The
            caller decides whether the statement needs it (reads do not).
        reset: reset (and check) the session afterwards even when the
            statement looks harmless (adapters that let callers run DDL: a
            trigger or default they created could change the session).

    Raises:
        QueryError: the database refused the statement (precise subclass by SQLSTATE).
        OperationalError: the connection failed.
        DeadlineExceededError: no time was left to start it.
    """
    started = time.perf_counter()
    request = job.request
    dirty = reset or not job.statement.session_safe
    # A caller's identity (its role and claims) or a row limit needs a
    # transaction around the statement: see querybus.database.roles.
    guarded = job.identity is not None or job.max_rows is not None
    try:
        timeout_ms = job.deadline.statement_timeout(session_timeout)
        if timeout_ms is not None:
            dirty = True  # the SET below must not outlive this request
            await conn.execute(f"SET statement_timeout = {timeout_ms}")
        key = request.idem
        if idempotency is not None and key is not None:
            scope = None if job.identity is None else job.identity.scope
            try:
                outcome = await idempotency.run(
                    conn,
                    key if scope is None else idempotency.scoped_key(scope, key),
                    (
                        lambda: run_guarded(
                            conn, job, lambda: run_statement(conn, job), in_transaction=True
                        )
                    )
                    if guarded
                    else (lambda: run_statement(conn, job)),
                    request=request_digest(request.sql, request.params, request.many, scope),
                    deadline=job.deadline,
                )
            except asyncpg.ActiveSQLTransactionError:
                if guarded:
                    raise  # never run it outside the caller's role
                # VACUUM, CREATE INDEX CONCURRENTLY…: refused inside a transaction
                # block before doing anything. They run as before, without a
                # durable record (the adapter's in-memory cache still applies).
                outcome = await run_statement(conn, job)
        elif guarded:
            outcome = await run_guarded(conn, job, lambda: run_statement(conn, job))
        else:
            outcome = await run_statement(conn, job)
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc, conn) from exc
    except RoleEscapeError as exc:
        # Rolled back already; a connection whose role was changed under us
        # is not trusted again, whatever a reset would say.
        dirty = False
        conn.terminate()
        raise PermissionDeniedError(str(exc)) from None
    except PermissionDeniedError:
        dirty = True  # a row limit: the transaction was rolled back mid-way
        raise
    finally:
        if dirty:
            await reset_session(conn)
    outcome.execute_seconds = time.perf_counter() - started
    return outcome


async def run_statement(conn: asyncpg.Connection, job: Job) -> Outcome:
    """Only the job's statement: in autocommit, or inside the caller's
    transaction when ``conn`` is in one (``executemany`` then joins it instead
    of opening its own). No session handling and no error mapping: that is
    :func:`run_on_connection`'s job.

    Raises:
        asyncpg.PostgresError and the other asyncpg errors, unmapped.
        DeadlineExceededError: no time was left to start it.
    """
    sql, params = job.request.sql, job.params
    # asyncpg's statement cache makes this free after the first time:
    # Parse/Describe is done once per connection.
    # A timeout for asyncpg's waits unless the caller's own ends them (then
    # asyncpg's timer per call would be a second one for the same deadline).
    left = job.deadline.left()  # raises when nothing is left
    stmt = await conn._get_statement(sql, None if job.caller_bounds else left)
    shape = _shape(stmt)
    if job.request.many:
        for row in params:
            _check_integers(shape, row)
        if conn.is_in_transaction():
            await conn.executemany(sql, params, timeout=job.deadline.left())
        else:
            async with conn.transaction():
                await conn.executemany(sql, params, timeout=job.deadline.left())
        return Outcome(command=f"EXECUTEMANY {len(params)}", rowcount=len(params))
    _check_integers(shape, params)
    # With a row limit, one row more than allowed is enough to refuse the
    # result (inside the guarded transaction, which then rolls back).
    limit = 0 if job.max_rows is None else job.max_rows + 1
    rows, status, _ = await conn._execute(
        sql, params, limit, None if job.caller_bounds else job.deadline.left(), return_status=True
    )
    # When the statement's description changed since it was prepared (DDL:
    # a column added to a ``SELECT *``), asyncpg prepares it again and runs
    # the new one: describe the rows with that one, not the one checked
    # above. A cache hit, no round trip.
    ran = await conn._get_statement(sql, None)
    if ran is not stmt:
        shape = _shape(ran)
    command = status.decode() if isinstance(status, bytes) else str(status or "")
    return Outcome(
        command=command,
        columns=shape.columns,
        rows=[list(r) for r in rows],
        rowcount=_rowcount(command, len(rows)),
    )


_INTEGER_TYPES = frozenset({"int2", "int4", "int8", "oid", "_int2", "_int4", "_int8", "_oid"})


def _check_integers(shape: _Shape, params: Sequence[Any]) -> None:
    """Refuse a non-integer value for an integer parameter.

    asyncpg converts anything with ``__int__`` for an integer parameter, so
    1.5 would be stored as 1, ``Decimal("5.5")`` as 5 and a UUID as a huge
    number: the data would silently differ from what the caller sent.
    PostgreSQL itself (and psycopg2, which sends text) refuses them.

    Raises:
        asyncpg.DataError: mapped to ``22023`` like asyncpg's own client-side checks.
    """
    for n, kind in shape.integers:
        if n < len(params) and not _all_integers(params[n]):
            raise ClientDataError(
                f"parameter ${n + 1} is {kind}: expected an integer, got {type(params[n]).__name__}"
            )


def _all_integers(value: Any) -> bool:
    if value is None or type(value) is int:
        return True
    if type(value) is list:
        return all(_all_integers(v) for v in value)
    return False


async def prepare_idempotency(conn: asyncpg.Connection, store: IdempotencyStore) -> None:
    """Create ``store``'s table on ``conn``'s server if needed (see
    :meth:`IdempotencyStore.prepare`).

    Raises:
        QueryError: the table cannot be created (e.g. no CREATE privilege).
        OperationalError: the connection failed.
    """
    try:
        await store.prepare(conn)
    except DATABASE_ERRORS as exc:
        raise map_database_error(exc) from exc


def _rowcount(command: str, returned: int) -> int:
    # "INSERT 0 3", "UPDATE 2", "SELECT 5", "DELETE 0", "COPY 7" end with a count.
    tail = command.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else returned
