"""The execution contract: a :class:`Job` in, an :class:`Outcome` out.

The adapter builds one :class:`Job` per request — the request, its decoded
parameters, the :class:`~querybus.sql.Statement` (one parse), one
:class:`Deadline`, and room for the caller's identity and a transaction — and
passes it down whole: ``executor.run(job)``. Nothing below re-parses the SQL
or computes the time left on its own.

Implementations: :class:`querybus.database.executor.PostgresExecutor` (one pool
on one server), :class:`querybus.routing.executor.RoutingExecutor` (a primary
and replicas, chosen per statement) and
:class:`querybus.adapter.sqlite.SqliteExecutor` (embedded mode). The adapter
service holds exactly one and does not know which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from querybus.errors import DeadlineExceededError
from querybus.protocol.messages import Column, QueryRequest, RouteInfo, TxOptions
from querybus.sql import Statement, analyze

__all__ = ["Deadline", "Executor", "Identity", "Job", "Outcome", "PoolStats", "Transactions"]


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a request must be done, on this host's monotonic clock.

    Built once per request (:meth:`from_wall` converts the caller's wall-clock
    deadline, the only place that does); everything below asks it for the
    time left instead of computing it.

    Attributes:
        at: ``time.monotonic()`` at which the request is out of time.
    """

    at: float

    @classmethod
    def from_wall(cls, wall: float, *, cap: float | None = None) -> Deadline:
        """The deadline at wall-clock time ``wall`` (seconds since the epoch),
        at most ``cap`` seconds from now."""
        seconds = wall - time.time()
        if cap is not None:
            seconds = min(seconds, cap)
        return cls(time.monotonic() + seconds)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds)

    def capped(self, seconds: float | None) -> Deadline:
        """This deadline, or ``seconds`` from now if that is sooner (a role's
        cap on statement time)."""
        if seconds is None:
            return self
        return Deadline(min(self.at, time.monotonic() + seconds))

    def remaining(self) -> float:
        """Seconds left (zero or negative once it has passed)."""
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def left(self) -> float:
        """Seconds left, for a timeout.

        Raises:
            DeadlineExceededError: none are: whatever was about to start must not.
        """
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(
                f"the request's deadline passed {-left:.3f} s ago; what was left of it did not run"
            )
        return left

    def statement_timeout(self, session_timeout: float | None) -> int | None:
        """Milliseconds to ``SET statement_timeout`` to before running, or None
        when the session's own (``session_timeout`` seconds) is close enough.

        Sessions start with the longest allowed timeout; a request whose time
        left is clearly shorter (under 90 %) gets its own, so the database never
        runs a statement more than 10 % past its caller's deadline (asyncpg's
        client-side timeout cancels it at the deadline in every case).

        Raises:
            DeadlineExceededError: no time is left.
        """
        left = self.left()
        if session_timeout is not None and left >= session_timeout * 0.9:
            return None
        return max(1, int(left * 1000))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a request, once its token is verified: the database runs the
    statement as ``role`` with ``claims`` readable in SQL
    (``current_setting('request.jwt.claims', true)``), PostgREST's convention.

    Attributes:
        subject: the token's ``sub`` claim (rate limits and audit records are
            per subject); ``"anonymous"`` for a request without a token.
        role: the database role the statement runs as (from the allowlist).
        claims: the token's claims as one JSON document, exactly what SQL reads.
        anonymous: the request had no token and runs as the anonymous role.
    """

    subject: str
    role: str
    claims: str = "{}"
    anonymous: bool = False

    def __repr__(self) -> str:
        # Claims may carry personal data; a repr lands in logs.
        return f"Identity(subject={self.subject!r}, role={self.role!r}, anonymous={self.anonymous})"

    @property
    def scope(self) -> str:
        """What must match for two requests to share an idempotent reply."""
        return f"{self.role}\x00{self.subject}"


@dataclass(slots=True)
class Job:
    """One request on its way down: built once by the adapter, passed whole.

    Attributes:
        request: the decoded request.
        params: decoded parameters (a list of lists when ``request.many``).
        statement: what the SQL is (one parse, cached).
        deadline: when it must be done.
        identity: who sent it, verified; the statement runs as its role. None
            when the adapter does not check identities (it runs as the login).
        max_rows: the most rows the caller's role may receive; a statement
            returning more is rolled back and refused
            (:class:`~querybus.errors.PermissionDeniedError`).
        transaction: the interactive transaction it runs in (its id), if any.
        caller_bounds: the caller's own timeout cancels the job at its
            deadline (direct mode's plain statements, run in the caller's
            task): the pool wait and the statement set no timers of their
            own. The deadline still sets the server's statement timeout.
    """

    request: QueryRequest
    params: Sequence[Any]
    statement: Statement
    deadline: Deadline
    identity: Identity | None = None
    max_rows: int | None = None
    transaction: str | None = None
    caller_bounds: bool = False

    @classmethod
    def of(
        cls, request: QueryRequest, params: Sequence[Any], *, deadline: Deadline | None = None
    ) -> Job:
        """A job for ``request`` (its own deadline unless ``deadline`` is given)."""
        return cls(
            request=request,
            params=params,
            statement=analyze(request.sql),
            deadline=deadline or Deadline.from_wall(request.deadline),
        )


class PoolStats(NamedTuple):
    """A connection pool's state at one moment (for metrics)."""

    #: connections the pool holds when complete
    size: int
    #: lent to a statement or a transaction now
    in_use: int
    #: open and free
    idle: int
    #: callers waiting for a free connection
    waiting: int

    @property
    def missing(self) -> int:
        """Slots without an open connection (it broke; reopened when needed)."""
        return max(0, self.size - self.in_use - self.idle)


@dataclass(slots=True)
class Outcome:
    """What a statement produced, in Python values (the service encodes them).

    Attributes:
        command: the database's command tag, e.g. ``"SELECT 3"`` or ``"INSERT 0 1"``.
        columns: result columns with their type names (empty for statements without rows).
        rows: result rows, as lists of Python values.
        rowcount: rows returned or affected.
        lsn: commit LSN of a write on PostgreSQL (for read-your-writes), else None.
        route: which target served it and why, when a router chose.
        execute_seconds: time spent on the database.
        route_seconds: time spent choosing a target.
    """

    command: str = ""
    columns: list[Column] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    rowcount: int = 0
    lsn: str | None = None
    route: RouteInfo | None = None
    execute_seconds: float = 0.0
    route_seconds: float = 0.0


class Transactions(Protocol):
    """Interactive transactions and batches on an executor's primary
    (:class:`querybus.database.transactions.TransactionManager`; the design is
    in ``docs/transactions.md``).

    Every method that names a transaction raises
    :class:`~querybus.errors.TransactionLostError` when this executor does not
    hold it (any more), and :class:`~querybus.errors.PermissionDeniedError`
    when ``identity`` is not the one that began it.
    """

    @property
    def idle_timeout(self) -> float:
        """Seconds without a request after which a transaction is rolled back."""
        ...

    @property
    def max_lifetime(self) -> float:
        """Seconds after BEGIN after which a transaction is rolled back."""
        ...

    #: Called with (id, context, reason) when a transaction is rolled back
    #: behind its caller's back (idle, too old); must not block.
    on_lost: Callable[[str, Any, str], None] | None

    def configure(self, *, idle_timeout: float, max_lifetime: float, max_open: int) -> None:
        """Set the limits (before the executor starts)."""
        ...

    async def begin(
        self,
        options: TxOptions | None,
        identity: Identity | None,
        deadline: Deadline,
        context: Any = None,
    ) -> str:
        """Open a transaction (``context``: the caller's reply address, kept
        for the notice when it is lost); return its id.

        Raises:
            TransactionBusyError: as many are open as allowed.
            RequestRejectedError: the options are not valid.
        """
        ...

    async def run(self, tx: str, job: Job) -> Outcome:
        """Run one statement in the transaction (one at a time, in order)."""
        ...

    async def commit(self, tx: str, identity: Identity | None, deadline: Deadline) -> str | None:
        """Record the outcome and commit; return the commit LSN when known."""
        ...

    async def rollback(self, tx: str, identity: Identity | None, deadline: Deadline) -> None: ...

    async def savepoint(
        self, tx: str, op: str, name: str, identity: Identity | None, deadline: Deadline
    ) -> None:
        """``op``: ``savepoint``, ``release`` or ``rollback_to``."""
        ...

    def holds(self, tx: str) -> bool:
        """Whether the transaction is open here (not lost, not ended)."""
        ...

    def ping(self, tx: str, identity: Identity | None) -> None:
        """Return at once (without waiting for a running statement) when the
        transaction is open here; raise otherwise."""
        ...

    async def status(self, tx: str, deadline: Deadline) -> str:
        """``committed``, ``rolled_back``, or ``open`` (still open somewhere)."""
        ...

    async def batch(self, jobs: Sequence[Job], deadline: Deadline) -> list[Outcome]:
        """Run ``jobs`` in order in one transaction, all or nothing."""
        ...

    async def close_all(self, reason: str) -> list[tuple[str, Any]]:
        """Roll back every open transaction; return their ids and contexts."""
        ...


class Executor(Protocol):
    """Runs jobs whose request already passed validation.

    The executor must not run past ``job.deadline`` (on PostgreSQL it sets
    ``statement_timeout`` from it).

    Errors: a database refusal is raised as the matching
    :class:`~querybus.errors.QueryError` subclass (SQLSTATE kept); an
    unreachable database as :class:`~querybus.errors.OperationalError`
    (retriable); nothing else escapes.
    """

    name: str

    @property
    def transactions(self) -> Transactions | None:
        """Interactive transactions and batches, or None when this executor
        has none (the embedded mode's SQLite)."""
        ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def run(self, job: Job) -> Outcome: ...

    async def ping(self, timeout: float) -> None:
        """Raise unless the database answers ``SELECT 1`` within ``timeout`` seconds."""
        ...

    def pool_stats(self) -> dict[str, PoolStats]:
        """Each connection pool's state now, by target (``postgres``;
        ``primary`` and ``replica:<name>`` with routing); empty without pools.
        Cheap: read at every metrics scrape."""
        ...
