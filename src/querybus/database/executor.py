"""PostgresExecutor: every request on one PostgreSQL server through one pool.

The executor behind an adapter without replicas (a
:class:`~querybus.routing.executor.RoutingExecutor` handles several servers).
Statements run through :func:`~querybus.database.postgres.run_on_connection`;
a keyed write runs with its key in the durable idempotency store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from querybus.cancellation import wait_for
from querybus.database.errors import DATABASE_ERRORS, map_database_error
from querybus.database.idempotency import IdempotencySettings, IdempotencyStore
from querybus.database.pool import ConnectionPool
from querybus.database.postgres import create_pool, pooled, prepare_idempotency, run_on_connection
from querybus.database.roles import check_roles
from querybus.database.session import check_login
from querybus.database.transactions import TransactionManager, TransactionSettings
from querybus.errors import InterfaceError
from querybus.execution import Job, Outcome, PoolStats

__all__ = ["PostgresExecutor"]

log = logging.getLogger("querybus.database")


class PostgresExecutor:
    """Runs every request on one PostgreSQL server through one pool.

    Args:
        dsn: the server.
        pool_size: connections; the adapter never runs more requests at once.
        max_statement_timeout: the longest any statement may run, seconds.
        idempotency: the durable idempotency store (default: on, table
            ``querybus_idempotency``, keys kept 24 h); see
            :mod:`querybus.database.idempotency`.
        allow_superuser: start even when the login is a superuser (see
            :func:`check_login`).
        transactions: limits of interactive transactions (the adapter sets
            them from its settings; see :mod:`querybus.database.transactions`).
        roles: the roles callers may act as (checked at start: see
            :func:`~querybus.database.roles.check_roles`).
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
        roles: Sequence[str] = (),
        transactions: TransactionSettings | None = None,
    ) -> None:
        self._roles = tuple(roles)
        self._dsn = dsn
        self._allow_superuser = allow_superuser
        self._reset_every_request = reset_every_request
        self._pool_size = pool_size
        self._max_statement_timeout = max_statement_timeout
        self._pool: ConnectionPool | None = None
        settings = idempotency or IdempotencySettings()
        self.idempotency = IdempotencyStore(settings) if settings.enabled else None
        # Interactive transactions and batches hold connections of this pool.
        self.transactions = TransactionManager(
            lambda timeout: pooled(self._require_pool(), timeout), transactions
        )

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
            async with pooled(self._pool, self._max_statement_timeout) as conn:
                await check_login(conn, allow_superuser=self._allow_superuser)
                for warning in await check_roles(conn, self._roles) if self._roles else ():
                    log.warning("%s", warning)
                if self.idempotency is not None:
                    await prepare_idempotency(conn, self.idempotency)
                await self.transactions.prepare(conn)
        except BaseException:
            await self.stop()
            raise
        if self.idempotency is not None:
            pool = self._require_pool()
            self.idempotency.start_cleanup(lambda: pooled(pool, None))
        self.transactions.start()

    async def stop(self) -> None:
        await self.transactions.stop()
        if self.idempotency is not None:
            await self.idempotency.stop_cleanup()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await wait_for(pool.close(), timeout=10)
            except TimeoutError:
                pool.terminate()

    def _require_pool(self) -> ConnectionPool:
        if self._pool is None:
            raise InterfaceError("the executor is not started")
        return self._pool

    async def run(self, job: Job) -> Outcome:
        pool = self._require_pool()
        try:
            left = job.deadline.left()  # raises when nothing is left
            async with pooled(pool, None if job.caller_bounds else left) as conn:
                return await run_on_connection(
                    conn,
                    job,
                    session_timeout=self._max_statement_timeout,
                    idempotency=self.idempotency and self.idempotency.for_job(job),
                    reset=self._reset_every_request,
                )
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc

    def pool_stats(self) -> dict[str, PoolStats]:
        return {} if self._pool is None else {self.name: self._pool.stats()}

    async def ping(self, timeout: float) -> None:
        pool = self._require_pool()
        try:
            async with pooled(pool, timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc
