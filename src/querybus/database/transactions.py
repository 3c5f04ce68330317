"""Interactive transactions and batches on one PostgreSQL server (the primary).

A :class:`TransactionManager` holds the open transactions of one adapter, by
id: each has one pooled connection for its whole life, the
:class:`~querybus.execution.Identity` that began it, a lock (its statements
run one at a time, in arrival order), and its created / last-used times.
The life of one transaction (the full story, with the failure cases, is
``docs/transactions.md``)::

    BEGIN ISOLATION LEVEL … [READ ONLY] [DEFERRABLE];
    SELECT set_config('application_name', 'querybus-tx:<id>', true)   -- the marker
           [, set_config('role', <role>, true), set_config('request.jwt.claims', …, true)];
    <statement>; [SELECT <still the caller's role and claims>]         -- each statement
    …
    [SELECT <check>; RESET ROLE;] INSERT INTO querybus_tx_outcomes (tx) VALUES (<id>); COMMIT;

COMMIT is never ambiguous: the outcome row commits with the transaction or
not at all. :meth:`TransactionManager.status` (any adapter) first waits until
no session carries the transaction's marker — the marker is transaction-local,
so it disappears exactly when the transaction ended, or its backend did — and
only then reads the outcome table: a COMMIT that a dying adapter already sent
is finished (or rolled back) before the answer is given.

Limits: at most ``max_open`` open transactions (beyond it BEGIN gets
:class:`~querybus.errors.TransactionBusyError`); a reaper rolls back those
idle longer than ``idle_timeout`` or older than ``max_lifetime``; the ids of
recently ended ones are remembered (bounded) so that a late request learns
why its transaction is gone (:class:`~querybus.errors.TransactionLostError`).

Errors are PostgreSQL's: after a failed statement the transaction is aborted
and the server answers 25P02 to everything but ROLLBACK (and ROLLBACK TO a
savepoint); nothing here hides that. A COMMIT of an aborted transaction rolls
it back and raises that 25P02.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from querybus.cancellation import stop_task
from querybus.database.errors import DATABASE_ERRORS, map_database_error
from querybus.database.idempotency import _quote_name
from querybus.database.postgres import run_statement
from querybus.database.replication import commit_lsn
from querybus.database.roles import (
    RoleEscapeError,
    check_identity,
    check_sql,
    enter_sql,
    escaped,
    run_guarded,
)
from querybus.database.session import reset_session
from querybus.errors import (
    ConfigurationError,
    PermissionDeniedError,
    RequestRejectedError,
    TransactionBusyError,
    TransactionLostError,
)
from querybus.execution import Deadline, Identity, Job, Outcome
from querybus.protocol.messages import TxOptions

__all__ = ["TRANSACTION_MARK", "TransactionManager", "TransactionSettings"]

log = logging.getLogger("querybus.database.transactions")

#: ``application_name`` of a session while it holds transaction ``<id>``
#: (``querybus-tx:<id>``), set transaction-locally so that it ends with it.
TRANSACTION_MARK = "querybus-tx:"

_ISOLATION = {
    "read_uncommitted": "READ UNCOMMITTED",  # PostgreSQL runs it as READ COMMITTED
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}
_SAVEPOINT_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TX_ID = re.compile(r"^[0-9a-f]{32}$")
_SAVEPOINT_SQL = {
    "savepoint": "SAVEPOINT {}",
    "release": "RELEASE SAVEPOINT {}",
    "rollback_to": "ROLLBACK TO SAVEPOINT {}",
}
#: How often STATUS looks again whether the transaction's session is still there.
_STATUS_POLL = 0.05
#: Time a rollback (or a release) may take when a transaction is abandoned.
_CLEANUP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """Limits and bookkeeping of interactive transactions.

    Attributes:
        idle_timeout: seconds without a request after which a transaction is
            rolled back (``QUERYBUS_TX_IDLE_TIMEOUT``).
        max_lifetime: seconds after BEGIN after which it is rolled back, idle
            or not (``QUERYBUS_TX_MAX_LIFETIME``).
        max_open: most open transactions (each holds a pooled connection).
        outcomes_table: where committed transactions are recorded.
        outcome_ttl: seconds an outcome is kept (STATUS of an older
            transaction answers ``rolled_back``).
        cleanup_interval: seconds between deletions of expired outcomes.
        remember_ended: how many ended transaction ids are remembered, to tell
            a late request why its transaction is gone.
    """

    idle_timeout: float = 30.0
    max_lifetime: float = 300.0
    max_open: int = 5
    outcomes_table: str = "querybus_tx_outcomes"
    outcome_ttl: float = 24 * 3600.0
    cleanup_interval: float = 600.0
    remember_ended: int = 10_000

    def __post_init__(self) -> None:
        if not (self.idle_timeout > 0 and self.max_lifetime > 0):
            raise ConfigurationError("transaction timeouts must be positive")
        if self.max_open < 1:
            raise ConfigurationError(f"max open transactions must be ≥ 1, got {self.max_open}")
        _quote_name(self.outcomes_table)


def begin_sql(options: TxOptions | None) -> str:
    """``BEGIN`` with the isolation level and access mode of ``options``.

    Raises:
        RequestRejectedError: an unknown isolation level.
    """
    if options is None:
        return "BEGIN"
    parts = ["BEGIN"]
    if options.isolation is not None:
        level = _ISOLATION.get(options.isolation.lower().replace(" ", "_"))
        if level is None:
            raise RequestRejectedError(
                f"unknown isolation level {options.isolation!r}; use one of {', '.join(_ISOLATION)}"
            )
        parts.append(f"ISOLATION LEVEL {level}")
    if options.readonly:
        parts.append("READ ONLY")
    if options.deferrable:
        # Only meaningful with SERIALIZABLE READ ONLY; PostgreSQL ignores it
        # otherwise, and so do we (psycopg2's set_session passes it as given).
        parts.append("DEFERRABLE")
    return " ".join(parts)


@dataclass(eq=False, slots=True)
class _Open:
    """One open transaction."""

    id: str
    conn: Any
    release: contextlib.AsyncExitStack
    identity: Identity | None
    context: Any
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: A statement may have left session state (reset the connection at the end).
    dirty: bool = False
    closed: bool = False
    #: The connection was terminated (it went back to the pool, closed): not
    #: to be touched again.
    terminated: bool = False

    def terminate(self) -> None:
        if not self.terminated:
            self.terminated = True
            self.conn.terminate()


def _same_caller(a: Identity | None, b: Identity | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.subject == b.subject and a.role == b.role


class TransactionManager:
    """The open transactions of one executor, on its primary.

    Connections are asyncpg connections (typed ``Any``), taken from
    ``connection(timeout)`` — the executor's pool (the primary's, with routing)
    — and held until the transaction ends.

    Args:
        connection: an async context manager factory yielding a pooled
            connection within ``timeout`` seconds.
        settings: the limits (the adapter sets them with :meth:`configure`).
        want_lsn: report the commit LSN (read-your-writes through replicas).

    Attributes:
        on_lost: called with (id, context, reason) when a transaction is
            rolled back behind its caller's back (idle, too old); must not block.
    """

    def __init__(
        self,
        connection: Callable[[float], AbstractAsyncContextManager[Any]],
        settings: TransactionSettings | None = None,
        *,
        want_lsn: bool = False,
    ) -> None:
        self._connection = connection
        self.settings = settings or TransactionSettings()
        self._want_lsn = want_lsn
        self._open: dict[str, _Open] = {}
        self._beginning = 0
        self._ended: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._reaper: asyncio.Task[None] | None = None
        self._cleanup: asyncio.Task[None] | None = None
        self.on_lost: Callable[[str, Any, str], None] | None = None
        t = _quote_name(self.settings.outcomes_table)
        self._t = t

    # -- settings and lifecycle ---------------------------------------------

    @property
    def idle_timeout(self) -> float:
        return self.settings.idle_timeout

    @property
    def max_lifetime(self) -> float:
        return self.settings.max_lifetime

    @property
    def open_count(self) -> int:
        return len(self._open)

    def configure(self, *, idle_timeout: float, max_lifetime: float, max_open: int) -> None:
        s = self.settings
        self.settings = TransactionSettings(
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            max_open=max_open,
            outcomes_table=s.outcomes_table,
            outcome_ttl=s.outcome_ttl,
            cleanup_interval=s.cleanup_interval,
            remember_ended=s.remember_ended,
        )
        self._t = _quote_name(self.settings.outcomes_table)

    async def prepare(self, conn: Any) -> None:
        """Create the outcomes table when missing (like the idempotency table).

        Raises:
            QueryError: it cannot be created.
        """
        t = self._t
        try:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", t):
                return
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('querybus_tx_outcomes'))")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} ("
                    "tx text PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT now())"
                )
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS "
                    f"{_quote_name(self.settings.outcomes_table + '_committed_at')} "
                    f"ON {t} (committed_at)"
                )
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc, conn) from exc

    def start(self) -> None:
        """Start the reaper and the periodic purge of old outcomes."""
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_loop(), name="querybus-tx-reaper")
            self._cleanup = asyncio.create_task(self._purge_loop(), name="querybus-tx-purge")

    async def stop(self) -> None:
        """Stop the background tasks and roll back what is still open."""
        for task in (self._reaper, self._cleanup):
            if task is not None:
                await stop_task(task)
        self._reaper = self._cleanup = None
        await self.close_all("the adapter stopped")

    # -- lookups ---------------------------------------------------------------

    def _forget(self, tx: _Open, why: str) -> None:
        tx.closed = True
        if self._open.get(tx.id) is tx:
            del self._open[tx.id]
        self._ended[tx.id] = why
        self._ended.move_to_end(tx.id)
        while len(self._ended) > self.settings.remember_ended:
            self._ended.popitem(last=False)

    def _lost(self, tx_id: str) -> TransactionLostError:
        why = self._ended.get(tx_id)
        if why is None:
            return TransactionLostError(
                f"transaction {tx_id} is not open on this adapter (it ended long ago, "
                "or this adapter restarted): nothing of it was committed unless its "
                "COMMIT succeeded"
            )
        return TransactionLostError(f"transaction {tx_id} is gone: {why}")

    def _get(self, tx_id: str, identity: Identity | None) -> _Open:
        tx = self._open.get(tx_id)
        if tx is None:
            raise self._lost(tx_id)
        if not _same_caller(tx.identity, identity):
            raise PermissionDeniedError(
                f"transaction {tx_id} belongs to another caller (subject and role must be "
                "those of its BEGIN)"
            )
        return tx

    @contextlib.asynccontextmanager
    async def _using(self, tx_id: str, identity: Identity | None) -> AsyncIterator[_Open]:
        """The transaction, locked for one request (statements one at a time)."""
        tx = self._get(tx_id, identity)
        async with tx.lock:
            if tx.closed:  # ended (reaped, failed) while this request waited
                raise self._lost(tx_id)
            if time.monotonic() - tx.created > self.settings.max_lifetime:
                await self._discard(tx, "it passed its maximum lifetime", notify=False)
                raise self._lost(tx_id)
            try:
                yield tx
            finally:
                tx.last_used = time.monotonic()

    # -- the operations ------------------------------------------------------

    async def begin(
        self,
        options: TxOptions | None,
        identity: Identity | None,
        deadline: Deadline,
        context: Any = None,
    ) -> str:
        sql = begin_sql(options)
        if len(self._open) + self._beginning >= self.settings.max_open:
            raise TransactionBusyError(
                f"this adapter holds {len(self._open)} open transactions and is beginning "
                f"{self._beginning}; its limit is {self.settings.max_open}: try again shortly"
            )
        tx_id = uuid.uuid4().hex
        mark = (
            f"SELECT pg_catalog.set_config('application_name', '{TRANSACTION_MARK}{tx_id}', true)"
        )
        self._beginning += 1
        stack = contextlib.AsyncExitStack()
        try:
            try:
                conn = await stack.enter_async_context(self._connection(deadline.left()))
            except TimeoutError:
                raise TransactionBusyError(
                    "no database connection became free for a new transaction"
                ) from None
            try:
                await conn.execute(f"{enter_sql(identity, sql)}; {mark}", timeout=deadline.left())
            except BaseException as exc:
                await _rollback(conn)
                await stack.aclose()
                if isinstance(exc, DATABASE_ERRORS):
                    raise map_database_error(exc, conn) from exc
                raise
        finally:
            self._beginning -= 1
        self._open[tx_id] = _Open(tx_id, conn, stack, identity, context)
        log.debug("transaction %s begun (%s)", tx_id, sql)
        return tx_id

    async def run(self, tx: str, job: Job) -> Outcome:
        async with self._using(tx, job.identity) as open_:
            started = time.perf_counter()
            conn = open_.conn
            open_.dirty |= not job.statement.session_safe
            try:
                outcome = await run_statement(conn, job)
                if job.max_rows is not None and len(outcome.rows) > job.max_rows:
                    # Its effects cannot be taken back alone: the whole
                    # transaction goes, so no caller sees rows beyond its limit.
                    await self._discard(open_, "a statement exceeded the role's row limit")
                    raise PermissionDeniedError(
                        f"the statement returned more than {job.max_rows} rows, the most the "
                        "role may receive; the transaction was rolled back"
                    )
                if open_.identity is not None:
                    await check_identity(conn, open_.identity, job.deadline.left())
            except RoleEscapeError as exc:
                await self._discard(open_, "a statement left the caller's role", terminate=True)
                raise PermissionDeniedError(str(exc)) from None
            except DATABASE_ERRORS as exc:
                if conn.is_closed():
                    await self._discard(open_, f"its database connection broke ({exc})")
                    raise TransactionLostError(
                        f"transaction {tx}: its database connection broke; it was rolled back"
                    ) from exc
                raise map_database_error(exc, conn) from exc
            outcome.execute_seconds = time.perf_counter() - started
            return outcome

    async def commit(self, tx: str, identity: Identity | None, deadline: Deadline) -> str | None:
        if tx not in self._open and await self._committed(tx, deadline):
            return None  # a COMMIT sent again after its reply was lost
        if not _TX_ID.match(tx):
            raise self._lost(tx)
        async with self._using(tx, identity) as open_:
            conn = open_.conn
            steps = []
            if open_.identity is not None:
                # The caller's role may not write the outcomes table: the
                # adapter's login records it, after the last check.
                steps += [check_sql(open_.identity), "RESET ROLE"]
            steps += [f"INSERT INTO {self._t} (tx) VALUES ('{tx}')", "COMMIT"]
            try:
                await conn.execute("; ".join(steps), timeout=deadline.left())
            except DATABASE_ERRORS as exc:
                if isinstance(exc, asyncpg.PostgresError) and not conn.is_closed():
                    # Refused before or by COMMIT (an aborted transaction: 25P02,
                    # a serialization failure, a deferred constraint): rolled back.
                    if escaped(exc):
                        await self._discard(open_, "it left the caller's role", terminate=True)
                        raise PermissionDeniedError(
                            "the transaction changed its role or claims: rolled back"
                        ) from None
                    await self._discard(open_, "its COMMIT failed; it was rolled back")
                    raise map_database_error(exc, conn) from exc
                # Timed out or the connection broke mid-COMMIT: only the
                # outcome table knows. Ask it once the session is gone.
                await self._discard(open_, "its COMMIT was interrupted", terminate=True)
                state = await self.status(tx, Deadline.after(max(5.0, deadline.remaining())))
                if state == "committed":
                    return None
                raise TransactionLostError(
                    f"transaction {tx}: its COMMIT was interrupted ({exc}); it is {state}"
                ) from exc
            self._forget(open_, "it committed")
            lsn = None
            if self._want_lsn:
                with contextlib.suppress(Exception):
                    lsn = await commit_lsn(conn)
            await self._release(open_)
            return lsn

    async def rollback(self, tx: str, identity: Identity | None, deadline: Deadline) -> None:
        if tx not in self._open:
            # Rolling back what is gone is what the caller wanted; a committed
            # one is not rolled back, and saying so matters.
            if _TX_ID.match(tx) and await self._committed(tx, deadline):
                raise RequestRejectedError(f"transaction {tx} already committed")
            return
        async with self._using(tx, identity) as open_:
            await self._discard(open_, "it was rolled back", notify=False)

    async def savepoint(
        self, tx: str, op: str, name: str, identity: Identity | None, deadline: Deadline
    ) -> None:
        template = _SAVEPOINT_SQL.get(op)
        if template is None or not _SAVEPOINT_NAME.match(name):
            raise RequestRejectedError(
                f"bad savepoint operation {op!r} or name {name!r} (lower-case letters, "
                "digits and '_')"
            )
        async with self._using(tx, identity) as open_:
            try:
                await open_.conn.execute(template.format(name), timeout=deadline.left())
            except DATABASE_ERRORS as exc:
                raise map_database_error(exc, open_.conn) from exc

    def holds(self, tx: str) -> bool:
        open_ = self._open.get(tx)
        return open_ is not None and not open_.closed

    def ping(self, tx: str, identity: Identity | None) -> None:
        open_ = self._get(tx, identity)
        if open_.closed:
            raise self._lost(tx)

    async def status(self, tx: str, deadline: Deadline) -> str:
        if not _TX_ID.match(tx):
            # Never an id this code made: "rolled back" would be a made-up answer.
            raise RequestRejectedError(f"{tx[:80]!r} is not a transaction id")
        open_ = self._open.get(tx)
        if open_ is not None:
            with contextlib.suppress(TimeoutError):
                # A COMMIT running here: its outcome, not "open", is the answer.
                async with asyncio.timeout(max(0.0, deadline.remaining())), open_.lock:
                    pass
            if tx in self._open:
                return "open"
        try:
            async with self._connection(deadline.left()) as conn:
                # The marker is transaction-local: while a session shows it the
                # transaction (or a COMMIT already sent to it) is not finished.
                while await conn.fetchval(
                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity "
                    "WHERE application_name = $1)",
                    TRANSACTION_MARK + tx,
                    timeout=deadline.left(),
                ):
                    if deadline.remaining() < _STATUS_POLL * 2:
                        return "open"
                    await asyncio.sleep(_STATUS_POLL)
                committed = await conn.fetchval(
                    f"SELECT true FROM {self._t} WHERE tx = $1", tx, timeout=deadline.left()
                )
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc
        return "committed" if committed else "rolled_back"

    async def batch(self, jobs: Sequence[Job], deadline: Deadline) -> list[Outcome]:
        if not jobs:
            return []
        outcomes: list[Outcome] = []
        head = jobs[0]
        dirty = not all(job.statement.session_safe for job in jobs)
        started = time.perf_counter()
        async with self._connection(deadline.left()) as conn:

            async def run_all() -> Outcome:
                for job in jobs:
                    outcome = await run_statement(conn, job)
                    if job.max_rows is not None and len(outcome.rows) > job.max_rows:
                        raise PermissionDeniedError(
                            f"statement {len(outcomes) + 1} of the batch returned more than "
                            f"{job.max_rows} rows, the most the role may receive; nothing "
                            "was committed"
                        )
                    outcomes.append(outcome)
                return Outcome()

            try:
                # The role guard of single requests, around all the statements.
                await run_guarded(
                    conn, Job(head.request, (), head.statement, deadline, head.identity), run_all
                )
                lsn = await commit_lsn(conn) if self._want_lsn else None
            except DATABASE_ERRORS as exc:
                raise map_database_error(exc, conn) from exc
            except RoleEscapeError as exc:
                dirty = False
                conn.terminate()
                raise PermissionDeniedError(str(exc)) from None
            finally:
                if dirty and not conn.is_closed():
                    await reset_session(conn)
        elapsed = time.perf_counter() - started
        if outcomes:
            outcomes[-1].lsn = lsn
            outcomes[0].execute_seconds = elapsed
        return outcomes

    async def close_all(self, reason: str) -> list[tuple[str, Any]]:
        closed = []
        for open_ in list(self._open.values()):
            try:
                async with asyncio.timeout(_CLEANUP_TIMEOUT):
                    await open_.lock.acquire()
            except TimeoutError:
                open_.terminate()  # a statement still running: cut it
            else:
                open_.lock.release()
            await self._discard(open_, reason, notify=False)
            closed.append((open_.id, open_.context))
        return closed

    # -- ending ------------------------------------------------------------

    async def _discard(
        self, open_: _Open, why: str, *, terminate: bool = False, notify: bool = True
    ) -> None:
        """Roll back and return the connection; remember why (and tell the
        caller through ``on_lost`` when ``notify``)."""
        if open_.closed:
            return
        self._forget(open_, why)
        if terminate:
            open_.terminate()
        elif not open_.terminated:
            await _rollback(open_.conn)
        await self._release(open_)
        log.info("transaction %s rolled back: %s", open_.id, why)
        if notify and self.on_lost is not None:
            try:
                self.on_lost(open_.id, open_.context, why)
            except Exception:  # a broken notice must not keep the connection
                log.exception("notifying the loss of transaction %s failed", open_.id)

    async def _release(self, open_: _Open) -> None:
        conn = open_.conn
        if open_.dirty and not open_.terminated and not conn.is_closed():
            await reset_session(conn)
        try:
            await open_.release.aclose()
        except Exception as exc:  # a broken connection: the pool already dropped it
            log.debug("releasing the connection of transaction %s: %r", open_.id, exc)

    async def _committed(self, tx: str, deadline: Deadline) -> bool:
        if not _TX_ID.match(tx):
            return False
        try:
            async with self._connection(deadline.left()) as conn:
                return bool(
                    await conn.fetchval(
                        f"SELECT true FROM {self._t} WHERE tx = $1", tx, timeout=deadline.left()
                    )
                )
        except DATABASE_ERRORS as exc:
            raise map_database_error(exc) from exc

    # -- background --------------------------------------------------------

    async def _reap_loop(self) -> None:
        while True:
            s = self.settings
            await asyncio.sleep(max(0.02, min(1.0, s.idle_timeout / 4)))
            now = time.monotonic()
            for open_ in list(self._open.values()):
                if open_.lock.locked():
                    continue  # a statement is running; its own deadline bounds it
                if now - open_.last_used > s.idle_timeout:
                    why = f"it was idle for more than {s.idle_timeout:g} s (idle timeout)"
                elif now - open_.created > s.max_lifetime:
                    why = f"it was open for more than {s.max_lifetime:g} s (maximum lifetime)"
                else:
                    continue
                try:
                    async with open_.lock:  # free now: taken without waiting
                        await self._discard(open_, why)
                except Exception:  # the reaper must outlive any one failure
                    log.exception("reaping transaction %s failed", open_.id)

    async def _purge_loop(self) -> None:
        while True:
            try:
                async with self._connection(60.0) as conn:
                    await conn.execute(
                        f"DELETE FROM {self._t} WHERE committed_at < "
                        "now() - make_interval(secs => $1::float8)",
                        self.settings.outcome_ttl,
                        timeout=60.0,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again
                log.warning("deleting expired transaction outcomes failed: %s", exc)
            await asyncio.sleep(self.settings.cleanup_interval)


async def _rollback(conn: Any) -> None:
    """Roll back; a connection that cannot is closed rather than reused."""
    if conn.is_closed():
        return
    try:
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK", timeout=_CLEANUP_TIMEOUT)
    except DATABASE_ERRORS:
        conn.terminate()
