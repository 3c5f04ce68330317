"""Database targets: the primary and the replicas, each with its pool and state.

The connections themselves are the database layer's (:mod:`querybus.database`,
the only asyncpg importer); every asyncpg or socket exception is mapped to a
querybus error through :func:`querybus.database.errors.map_database_error`.

Each target has two ways in: a pool for requests, and one separate
*monitor* connection for lag sampling and health checks, so that a pool
saturated by load cannot starve the monitor (which would then see stale
samples and wrongly take the replica out of rotation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from querybus.cancellation import wait_for
from querybus.database.errors import BROKEN_CONNECTION, DATABASE_ERRORS, map_database_error
from querybus.database.pool import ConnectionPool
from querybus.database.postgres import RELEASE_TIMEOUT, connect, create_pool
from querybus.database.replication import REPLICA_STATUS, parse_lsn
from querybus.errors import (
    ConfigurationError,
    OperationalError,
    QueryCanceledError,
    TargetBusyError,
)
from querybus.execution import PoolStats
from querybus.routing.lag import LagSample

__all__ = [
    "ReplicaConfig",
    "Target",
    "dsn_name",
    "host_port",
    "is_target_failure",
    "replica_dsn",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


async def _created(creating: Awaitable[T], *, close: Callable[[T], object]) -> T:
    """Await the creation of a pool or connection, even if our caller is cancelled.

    Cancelling asyncpg while it connects can leave a socket open (its cleanup
    of a cancelled pool races with connections that finish a moment later).
    So creation is never cancelled: when our caller is, the creation runs to
    its end in the background and what it made is closed at once.
    """
    task = asyncio.ensure_future(creating)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:

        def discard(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                close(done.result())

        task.add_done_callback(discard)
        raise


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """One replica.

    Attributes:
        dsn: where it is (left out of ``repr``: it may hold a password).
        name: its name in replies and metrics (``replica:<name>``); ``host:port`` when empty.
        weight: its share of reads under weighted strategies.
        group: its replica pool; ``RoutingSettings.complex_pool`` names the group
            that serves complex reads.
    """

    dsn: str = field(repr=False)
    name: str = ""
    weight: float = 1.0
    group: str = "default"


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:5432``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dsn_name(dsn: str) -> str:
    """``host:port`` of a DSN (never the password), for naming a target; an
    IPv6 host in brackets, like an endpoint in the registry."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "local"
        return host_port(host, parts.port or 5432)
    except ValueError:
        return "replica"


# Query parameters of a libpq URI that say where the server is or which database.
_WHERE_PARAMS = frozenset({"host", "hostaddr", "port"})
_DATABASE_PARAMS = frozenset({"dbname", "database"})


def replica_dsn(primary_dsn: str, host: str, port: int, *, database: str | None = None) -> str:
    """The DSN of a replica at ``host:port``: ``primary_dsn`` with its host and
    port (and, when given, its database) replaced.

    Everything else — user, password, TLS and other parameters — is kept: a
    registry announces where a replica is, never its credentials, so a
    discovered replica is reached with the primary's.

    Args:
        primary_dsn: a ``postgresql://`` (or ``postgres://``) URI.
        host: host name or address (an IPv6 address without brackets is fine).
        port: TCP port.
        database: database name; ``None`` keeps the primary's.

    Raises:
        ConfigurationError: ``primary_dsn`` is not a URI, or ``host``/``port`` are invalid.
    """
    parts = urlsplit(primary_dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError("the primary's DSN must be a postgresql:// URI")
    host = host.strip().removeprefix("[").removesuffix("]")
    if not host or "/" in host or "@" in host or not 0 < port < 65536:
        raise ConfigurationError(f"not a replica address: {host!r} port {port}")
    userinfo, at, _hosts = parts.netloc.rpartition("@")
    netloc = (userinfo + at) + host_port(host, port)
    drop = _WHERE_PARAMS | (_DATABASE_PARAMS if database is not None else frozenset())
    # Filter the raw pieces (not parse and re-encode): the rest stays byte for byte.
    query = "&".join(
        piece
        for piece in parts.query.split("&")
        if piece and unquote(piece.partition("=")[0]) not in drop
    )
    path = parts.path if database is None else "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


#: SQLSTATEs outside class 08 (connection exception) that say the server
#: itself is going away or refuses connections.
_SERVER_DOWN = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_target_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the *server* failed (retry elsewhere, ban it) rather
    than the statement (the same error would come from any server).

    Only connection failures count: a caller can provoke any other error
    (out of memory, a cancelled statement, bad parameters) on purpose, and
    must not be able to take a healthy server out of rotation that way.
    """
    if not isinstance(exc, OperationalError) or isinstance(exc, QueryCanceledError):
        return False
    sqlstate = exc.sqlstate or ""
    return sqlstate.startswith("08") or sqlstate in _SERVER_DOWN


@dataclass(eq=False)
class Target:
    """A database server the router can send statements to.

    Attributes:
        name: ``"primary"`` or the replica's name.
        dsn: where it is.
        is_primary: the primary (writes) or a replica.
        weight: balancing weight.
        group: replica group (see :class:`ReplicaConfig`).
        outstanding: requests running on it now.
        failures: consecutive failures; drives the ban length.
        banned_until: ``time.monotonic()`` before which it gets no reads.
        sample: the latest lag sample (replicas).
        replayed_lsn: highest replay LSN ever seen (replay only moves forward,
            so this is a safe lower bound at any later time).
        retired: removed from routing (:meth:`RoutingExecutor.remove_replica`):
            it opens no new pool or monitor connection, so a plan or a monitor
            round made just before the removal cannot bring it back to life.
    """

    name: str
    dsn: str
    is_primary: bool = False
    weight: float = 1.0
    group: str = "default"
    pool_size: int = 10
    max_statement_timeout: float = 30.0
    connect_timeout: float = 2.0
    outstanding: int = 0
    failures: int = 0
    banned_until: float = 0.0
    sample: LagSample | None = None
    replayed_lsn: int = 0
    last_error: str = ""
    retired: bool = False
    _pool: ConnectionPool | None = field(default=None, repr=False)
    _monitor: Any = field(default=None, repr=False)
    _monitor_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def label(self) -> str:
        """``"primary"`` or ``"replica:<name>"``: the form replies and metrics use."""
        return "primary" if self.is_primary else f"replica:{self.name}"

    # -- health -----------------------------------------------------------

    def banned(self, now: float | None = None) -> bool:
        """Whether it is temporarily out of rotation."""
        return (time.monotonic() if now is None else now) < self.banned_until

    def mark_failed(self, error: BaseException, *, base: float, maximum: float) -> None:
        """Ban it for ``base * 2**(failures - 1)`` seconds, at most ``maximum``."""
        self.failures += 1
        self.last_error = str(error)
        # The exponent is capped: a server down for long fails thousands of
        # times, and 2**1024 no longer fits a float.
        backoff = base * 2.0 ** min(self.failures - 1, 32)
        self.banned_until = time.monotonic() + min(backoff, maximum)

    def mark_ok(self) -> None:
        """It answered: back in rotation."""
        self.failures = 0
        self.banned_until = 0.0
        self.last_error = ""

    # -- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Create the pool (idempotent).

        Raises:
            OperationalError: the server cannot be reached.
        """
        if self.retired:
            raise OperationalError(f"{self.label} was removed from routing", sqlstate="08006")
        if self._pool is None:
            pool = await _created(
                create_pool(
                    self.dsn,
                    size=self.pool_size,
                    max_statement_timeout=self.max_statement_timeout,
                    application_name=f"querybus-router-{self.label}",
                ),
                close=lambda p: p.terminate(),
            )
            if self.retired or self._pool is not None:
                # Retired, or opened by someone else, while we were connecting.
                pool.terminate()
                if self.retired:
                    raise OperationalError(
                        f"{self.label} was removed from routing", sqlstate="08006"
                    )
                return
            self._pool = pool

    async def retire(self, grace: float) -> None:
        """Leave service: open nothing new, wait up to ``grace`` seconds for the
        statements running on it to finish, then close.

        Call it once the target is out of every routing list.
        """
        self.retired = True
        # The pool's graceful close waits for every lent connection to come
        # back; past the grace it terminates them.
        await self.close(grace=grace)

    async def close(self, *, grace: float = 10.0) -> None:
        """Close the pool (waiting up to ``grace`` seconds for connections in
        use to be released) and the monitor connection.

        Cancellation-safe: a close interrupted midway (a replica removed while
        its caller is being cancelled, say) terminates whatever it had not
        closed yet, since nobody else holds a reference to close it later.
        """
        pool, self._pool = self._pool, None
        monitor = None
        try:
            # Under the lock: a monitor connection being opened right now is
            # either closed here or never assigned (a retired target).
            async with self._monitor_lock:
                monitor, self._monitor = self._monitor, None
            if monitor is not None:
                with contextlib.suppress(Exception):
                    await wait_for(monitor.close(), timeout=5)
            if pool is not None:
                try:
                    await wait_for(pool.close(), timeout=grace)
                except DATABASE_ERRORS:  # includes TimeoutError
                    pool.terminate()
        finally:
            # No-ops once closed; they end a close that was interrupted.
            if monitor is None:  # interrupted before the lock was taken
                monitor, self._monitor = self._monitor, None
            if monitor is not None and not monitor.is_closed():
                monitor.terminate()
            if pool is not None:
                pool.terminate()

    def terminate(self) -> None:
        """Drop the pool and the monitor connection at once, without waiting
        (for a target that must not outlive an interrupted operation)."""
        pool, self._pool = self._pool, None
        monitor, self._monitor = self._monitor, None
        if pool is not None:
            pool.terminate()
        if monitor is not None and not monitor.is_closed():
            monitor.terminate()

    def pool_stats(self) -> PoolStats | None:
        """Its pool's state now; None while it has none open."""
        return None if self._pool is None else self._pool.stats()

    @contextlib.asynccontextmanager
    async def connection(self, wait: float) -> AsyncIterator[Any]:
        """A pooled connection, counted in :attr:`outstanding`.

        A connection that breaks while in use (the server shut down under it)
        surfaces as :class:`OperationalError`, whatever asyncpg raised, so the
        router can ban this target and retry elsewhere.

        Raises:
            TargetBusyError: no pooled connection became free in time (a replica
                waits at most ``connect_timeout``).
            OperationalError: the server is down, or the connection broke while in use.
        """
        self.outstanding += 1
        try:
            if self._pool is None:
                await self.open()
            # The connection goes back to the pool it came from, even if this
            # target is closed (a removed replica) while the statement runs.
            pool = self._pool
            if pool is None:
                raise OperationalError(f"{self.label} is closed", sqlstate="08003")
            # A replica waits at most connect_timeout (another target can serve);
            # the primary, the only place for writes, waits as long as the caller.
            limit = wait if self.is_primary else min(wait, self.connect_timeout)
            try:
                async with asyncio.timeout(limit):
                    conn = await pool.acquire()
            except TimeoutError:
                raise TargetBusyError(
                    f"no free connection to {self.label} within {limit:.3g} s"
                ) from None
            except DATABASE_ERRORS as exc:
                raise map_database_error(exc) from exc
            try:
                yield conn
            except BROKEN_CONNECTION as exc:
                raise OperationalError(
                    f"connection to {self.label} broke: {exc}", sqlstate="08006"
                ) from exc
            finally:
                # Never raises but for a cancellation: a connection that cannot
                # be made fit again is closed (its slot reopened later), and the
                # statement's result (or error) stands.
                await pool.release(conn, timeout=RELEASE_TIMEOUT)
        finally:
            self.outstanding -= 1

    async def ping_pool(self, wait: float) -> None:
        """Raise unless a pooled connection answers ``SELECT 1`` in time.

        Raises:
            OperationalError: it does not.
        """
        async with self.connection(wait) as conn:
            try:
                await conn.fetchval("SELECT 1", timeout=wait)
            except DATABASE_ERRORS as exc:
                raise map_database_error(exc) from exc

    # -- monitoring (own connection) --------------------------------------

    async def _monitor_call(self, query: str, *args: Any, wait: float) -> Any:
        """Run ``query`` on the monitor connection, reconnecting when needed.

        Raises:
            OperationalError: the server cannot be reached.
            QueryError: the server refused the query.
        """
        async with self._monitor_lock:
            if self.retired:
                raise OperationalError(f"{self.label} was removed from routing", sqlstate="08006")
            try:
                if self._monitor is None or self._monitor.is_closed():
                    self._monitor = await _created(
                        connect(
                            self.dsn,
                            timeout=min(wait, self.connect_timeout),
                            application_name="querybus-router-monitor",
                        ),
                        close=lambda conn: conn.terminate(),
                    )
                return await self._monitor.fetchrow(query, *args, timeout=wait)
            except DATABASE_ERRORS as exc:
                # A half-dead connection must not be reused for the next sample.
                if self._monitor is not None:
                    self._monitor.terminate()
                    self._monitor = None
                raise map_database_error(exc) from exc

    async def ping(self, wait: float) -> None:
        """Raise unless the server answers ``SELECT 1`` in time.

        Raises:
            OperationalError: it does not.
        """
        await self._monitor_call("SELECT 1", wait=wait)

    async def current_wal_lsn(self, wait: float) -> int:
        """The primary's ``pg_current_wal_lsn()``.

        Raises:
            OperationalError: the server cannot be reached.
            QueryError: the server refused (e.g. it is in recovery).
        """
        row = await self._monitor_call("SELECT pg_current_wal_lsn()::text", wait=wait)
        return parse_lsn(row[0])

    async def replica_status(self, wait: float) -> tuple[bool, int | None]:
        """``(pg_is_in_recovery(), pg_last_wal_replay_lsn())`` of a replica.

        Raises:
            OperationalError: the server cannot be reached.
            QueryError: the server refused the query.
        """
        row = await self._monitor_call(REPLICA_STATUS, wait=wait)
        in_recovery, lsn = bool(row[0]), row[1]
        replay = parse_lsn(lsn) if lsn else None
        if replay is not None and replay > self.replayed_lsn:
            self.replayed_lsn = replay
        return in_recovery, replay

    async def function_catalog(self, query: str, wait: float) -> dict[str, str]:
        """Function name → worst volatility, read from ``pg_proc``.

        Raises:
            OperationalError: the server cannot be reached.
            QueryError: the server refused the query.
        """
        async with self._monitor_lock:
            try:
                conn = await connect(self.dsn, timeout=min(wait, self.connect_timeout))
                try:
                    rows = await conn.fetch(query, timeout=wait)
                finally:
                    await conn.close()
            except DATABASE_ERRORS as exc:
                raise map_database_error(exc) from exc
        return {str(r[0]): str(r[1]) for r in rows}
