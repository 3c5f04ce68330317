"""The executor contract: what runs one validated request on a database.

Implementations: :class:`querybus.adapter.postgres.PostgresExecutor` (one pool
on one server), :class:`querybus.routing.executor.RoutingExecutor` (a primary
and replicas, chosen per statement) and
:class:`querybus.adapter.sqlite.SqliteExecutor` (embedded mode). The adapter
service holds exactly one and does not know which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from querybus.protocol.messages import Column, QueryRequest, RouteInfo

__all__ = ["Executor", "Outcome"]


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


class Executor(Protocol):
    """Runs requests that already passed validation.

    ``params`` are the decoded Python values (a list of lists when
    ``request.many``). ``timeout`` is the time left before the request's
    deadline: the executor must not run past it (on PostgreSQL it sets
    ``statement_timeout`` accordingly).

    Errors: a database refusal is raised as the matching
    :class:`~querybus.errors.QueryError` subclass (SQLSTATE kept); an
    unreachable database as :class:`~querybus.errors.OperationalError`
    (retriable); nothing else escapes.
    """

    name: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def run(
        self, request: QueryRequest, params: Sequence[Any], *, timeout: float
    ) -> Outcome: ...

    async def ping(self, timeout: float) -> None:
        """Raise unless the database answers ``SELECT 1`` within ``timeout`` seconds."""
        ...
