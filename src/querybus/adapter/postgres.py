"""PostgreSQL execution on asyncpg. The only asyncpg importer besides the router's targets.

One request = one statement in autocommit (or, for ``executemany``, one
transaction). A write with an idempotency key runs in one transaction with
its key in the durable store (:mod:`querybus.adapter.idempotency`).

Nothing a request does to its session may leak into the next one, but
resetting every connection on release (asyncpg's default) costs a full round
trip per request. So the pool does not reset; instead, after a
statement that might have left session state behind (anything but a plain
SELECT/INSERT/UPDATE/DELETE calling known built-ins: see
``StatementInfo.session_safe``; every statement when ``reset_every_request``),
and after we shortened ``statement_timeout``, the executor sends
:data:`RESET_SESSION`: it undoes every kind of session state PostgreSQL has
(role and session authorization, which ``RESET ALL`` leaves alone; settings;
cursors; LISTEN; advisory locks; prepared statements; temporary tables;
sequence state) and then *checks* the result in the same round trip. A
connection that fails the check is closed, never handed to the next request.
Session control is also refused upstream, by parse tree
(:mod:`querybus.adapter.policy`).

Logins: :func:`check_login` refuses a login role that is a superuser, may
create roles, or may run server programs or read/write server files, unless
the operator explicitly allows it.

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
    ConfigurationError,
    InterfaceError,
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
    "RESET_SESSION",
    "PostgresExecutor",
    "check_login",
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


def map_database_error(exc: BaseException, conn: asyncpg.Connection | None = None) -> QueryBusError:
    """The querybus error for an asyncpg (or socket) exception.

    Server errors keep their SQLSTATE, detail and hint; we never match on the
    message text, which the server may localize. asyncpg's client-side
    errors on a connection that is still open (a wrong number of parameters,
    a value it cannot encode) are the caller's: ``22023``, never retriable and
    never a reason to ban a server. Only a connection that failed is an
    ``OperationalError`` (08006).

    Args:
        exc: what asyncpg (or the socket) raised.
        conn: the connection it was raised on, when known: an
            ``InterfaceError`` on a connection that is still open is the
            caller's mistake, not an outage.
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
    if isinstance(exc, _ClientDataError) or (
        isinstance(exc, asyncpg.InterfaceError) and conn is not None and not conn.is_closed()
    ):
        # asyncpg's client-side errors: a parameter it cannot encode (a str
        # for an int4 column, …), the wrong number of parameters. Raised before
        # anything is sent; the connection is fine. The caller's fault:
        # invalid_parameter_value.
        return query_error_class("22023")(f"invalid parameters: {exc}", sqlstate="22023")
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
    reset: bool = False,
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
        reset: reset (and check) the session afterwards even when the
            statement looks harmless (adapters that let callers run DDL: a
            trigger or default they created could change the session).

    Raises:
        QueryError: the database refused the statement (precise subclass by SQLSTATE).
        OperationalError: the connection failed.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    dirty = reset or not analyze(request.sql).session_safe
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
        raise map_database_error(exc, conn) from exc
    finally:
        if dirty:
            await reset_session(conn)
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
    # asyncpg's statement cache makes this free after the first time:
    # Parse/Describe is done once per connection.
    stmt = await conn._get_statement(request.sql, timeout)
    if request.many:
        for row in params:
            _check_integers(stmt, row)
        if conn.is_in_transaction():
            await conn.executemany(request.sql, params, timeout=timeout)
        else:
            async with conn.transaction():
                await conn.executemany(request.sql, params, timeout=timeout)
        return Outcome(command=f"EXECUTEMANY {len(params)}", rowcount=len(params))
    _check_integers(stmt, params)
    rows, status, _ = await conn._execute(request.sql, params, 0, timeout, return_status=True)
    command = status.decode() if isinstance(status, bytes) else str(status or "")
    return Outcome(
        command=command,
        columns=_columns(stmt),
        rows=[list(r) for r in rows],
        rowcount=_rowcount(command, len(rows)),
    )


_INTEGER_TYPES = frozenset({"int2", "int4", "int8", "oid", "_int2", "_int4", "_int8", "_oid"})


def _check_integers(stmt: Any, params: Sequence[Any]) -> None:
    """Refuse a non-integer value for an integer parameter.

    asyncpg converts anything with ``__int__`` for an integer parameter, so
    1.5 would be stored as 1, ``Decimal("5.5")`` as 5 and a UUID as a huge
    number: the data would silently differ from what the caller sent.
    PostgreSQL itself (and psycopg2, which sends text) refuses them.

    Raises:
        asyncpg.DataError: mapped to ``22023`` like asyncpg's own client-side checks.
    """
    for n, (kind, value) in enumerate(zip(stmt._get_parameters(), params, strict=False), 1):
        if kind.name in _INTEGER_TYPES and not _all_integers(value):
            raise _ClientDataError(
                f"parameter ${n} is {kind.name}: expected an integer, got {type(value).__name__}"
            )


def _all_integers(value: Any) -> bool:
    if value is None or type(value) is int:
        return True
    if type(value) is list:
        return all(_all_integers(v) for v in value)
    return False


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


#: Undoes every kind of state a statement can leave in a session, then checks
#: it in the same round trip (one simple-protocol query). ``RESET ALL`` leaves
#: the role and the session authorization alone, hence the first two lines.
#: The check fails (and the connection is closed) if the role is still not
#: the login's, a setting still differs from the session's start values, or
#: a holdable cursor or temporary table survived. (LISTEN is not checked
#: here: the lines run as one implicit transaction, and UNLISTEN takes effect
#: when it commits.)
RESET_SESSION = """
SET SESSION AUTHORIZATION DEFAULT;
RESET ROLE;
RESET ALL;
CLOSE ALL;
UNLISTEN *;
SELECT pg_advisory_unlock_all();
DISCARD TEMP;
DISCARD SEQUENCES;
DO $querybus_reset$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT p.name FROM pg_prepared_statements p WHERE p.from_sql LOOP
        EXECUTE format('DEALLOCATE %I', name);
    END LOOP;
    IF current_user <> session_user
       OR EXISTS (SELECT FROM pg_settings WHERE source = 'session')
       OR EXISTS (SELECT FROM pg_cursors WHERE is_holdable)
       OR EXISTS (SELECT FROM pg_class WHERE relnamespace = pg_my_temp_schema())
    THEN
        RAISE EXCEPTION 'querybus: the session could not be reset';
    END IF;
END
$querybus_reset$;
"""


async def reset_session(conn: asyncpg.Connection) -> None:
    """Undo whatever the statement may have left in the session (and check
    it); a connection that cannot be reset is closed rather than handed to
    the next request."""
    try:
        if conn.is_in_transaction():  # nothing we run leaves one open; be sure
            await conn.execute("ROLLBACK", timeout=5.0)
        await conn.execute(RESET_SESSION, timeout=5.0)
    except _DATABASE_ERRORS:
        conn.terminate()


_LOGIN_RIGHTS = """
SELECT r.rolsuper, r.rolcreaterole,
       array(SELECT m FROM unnest($1::text[]) AS m WHERE pg_has_role(session_user, m, 'MEMBER'))
  FROM pg_catalog.pg_roles r WHERE r.rolname = session_user
"""
_SERVER_ACCESS_ROLES = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
]


async def check_login(conn: asyncpg.Connection, *, allow_superuser: bool = False) -> None:
    """Refuse a login that lets a caller's SQL act on the database host.

    A superuser (or a member of ``pg_execute_server_program``,
    ``pg_read_server_files``, ``pg_write_server_files``) can run programs and
    read or write files as the server's OS user; a role with ``CREATEROLE``
    can grant itself those memberships. Adapters run callers' SQL, so they
    must log in as an ordinary role (``infra/postgres/adapter_role.sql``).

    Raises:
        ConfigurationError: the login has one of those rights and
            ``allow_superuser`` is False.
        OperationalError: the connection failed.
    """
    try:
        row = await conn.fetchrow(_LOGIN_RIGHTS, _SERVER_ACCESS_ROLES)
        user = await conn.fetchval("SELECT session_user")
    except _DATABASE_ERRORS as exc:
        raise map_database_error(exc, conn) from exc
    if row is None:
        return
    rights = [name for name, held in (("SUPERUSER", row[0]), ("CREATEROLE", row[1])) if held]
    rights += [f"member of {m}" for m in row[2]]
    if not rights or allow_superuser:
        return
    raise ConfigurationError(
        f"the database login {user!r} has {', '.join(rights)}: callers' SQL could run "
        "programs or read and write files on the database host. Log in as an ordinary role "
        "(see infra/postgres/adapter_role.sql), or pass --allow-superuser "
        "(QUERYBUS_ALLOW_SUPERUSER=1) if you really mean it."
    )


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
        allow_superuser: start even when the login is a superuser (see
            :func:`check_login`).
        reset_every_request: reset and check the session after every
            request, not only after those that may leave state behind (for
            adapters whose callers may run DDL).
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        max_statement_timeout: float = 30.0,
        idempotency: IdempotencySettings | None = None,
        allow_superuser: bool = False,
        reset_every_request: bool = False,
    ) -> None:
        self._dsn = dsn
        self._allow_superuser = allow_superuser
        self._reset_every_request = reset_every_request
        self._pool_size = pool_size
        self._max_statement_timeout = max_statement_timeout
        self._pool: asyncpg.Pool | None = None
        settings = idempotency or IdempotencySettings()
        self.idempotency = IdempotencyStore(settings) if settings.enabled else None

    async def start(self) -> None:
        """Open the pool, check the login and prepare the idempotency table.

        Raises:
            OperationalError: the server cannot be reached.
            ConfigurationError: the login is a superuser (see :func:`check_login`).
            QueryError: the idempotency table cannot be created.
        """
        self._pool = await create_pool(
            self._dsn, size=self._pool_size, max_statement_timeout=self._max_statement_timeout
        )
        try:
            async with self._pool.acquire(timeout=self._max_statement_timeout) as conn:
                await check_login(conn, allow_superuser=self._allow_superuser)
                if self.idempotency is not None:
                    await prepare_idempotency(conn, self.idempotency)
        except BaseException:
            await self.stop()
            raise
        if self.idempotency is not None:
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
            raise InterfaceError("the executor is not started")
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
                    reset=self._reset_every_request,
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
