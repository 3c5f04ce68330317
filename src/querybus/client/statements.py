"""asyncpg's convenience methods, once, over a ``request`` method.

:class:`~querybus.QueryClient` and :class:`~querybus.client.Transaction`
take :class:`Statements`; :class:`~querybus.SyncQueryClient` and
:class:`~querybus.client.sync.SyncTransaction` take :class:`SyncStatements`.
Each class provides ``request(sql, params, *, many=False, timeout=None, **opts)``
returning a :class:`~querybus.client.result.Result`; extra keyword arguments
(routing options, idempotency keys) pass through to it unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from querybus.client.result import Result, Row

__all__ = ["Statements", "SyncStatements"]


class _Requests(Protocol):
    @property
    def request(self) -> Callable[..., Awaitable[Result]]: ...


class _SyncRequests(Protocol):
    @property
    def request(self) -> Callable[..., Result]: ...


class Statements:
    """``execute``, ``fetch``, ``fetchrow``, ``fetchval`` and ``executemany``
    of an async class with a ``request`` method."""

    __slots__ = ()

    async def execute(
        self: _Requests, sql: str, *args: Any, timeout: float | None = None, **opts: Any
    ) -> str:
        """Run a statement; return its command tag (``"UPDATE 3"``)."""
        return (await self.request(sql, args, timeout=timeout, **opts)).command

    async def fetch(
        self: _Requests, sql: str, *args: Any, timeout: float | None = None, **opts: Any
    ) -> list[Row]:
        """Run a query; return all its rows."""
        return (await self.request(sql, args, timeout=timeout, **opts)).rows

    async def fetchrow(
        self: _Requests, sql: str, *args: Any, timeout: float | None = None, **opts: Any
    ) -> Row | None:
        """Run a query; return its first row, or None."""
        rows = (await self.request(sql, args, timeout=timeout, **opts)).rows
        return rows[0] if rows else None

    async def fetchval(
        self: _Requests,
        sql: str,
        *args: Any,
        column: int = 0,
        timeout: float | None = None,
        **opts: Any,
    ) -> Any:
        """Run a query; return one value of its first row, or None."""
        rows = (await self.request(sql, args, timeout=timeout, **opts)).rows
        return rows[0][column] if rows else None

    async def executemany(
        self: _Requests,
        sql: str,
        args: Iterable[Sequence[Any]],
        *,
        timeout: float | None = None,
        **opts: Any,
    ) -> None:
        """Run a statement once per parameter list, atomically (one transaction)."""
        await self.request(sql, list(args), many=True, timeout=timeout, **opts)


class SyncStatements:
    """The same five methods, blocking, over a blocking ``request`` method."""

    __slots__ = ()

    def execute(self: _SyncRequests, sql: str, *args: Any, **options: Any) -> str:
        """Run a statement; return its command tag."""
        return self.request(sql, args, **options).command

    def fetch(self: _SyncRequests, sql: str, *args: Any, **options: Any) -> list[Row]:
        """Run a query; return all its rows."""
        return self.request(sql, args, **options).rows

    def fetchrow(self: _SyncRequests, sql: str, *args: Any, **options: Any) -> Row | None:
        """Run a query; return its first row, or None."""
        rows = self.request(sql, args, **options).rows
        return rows[0] if rows else None

    def fetchval(self: _SyncRequests, sql: str, *args: Any, column: int = 0, **options: Any) -> Any:
        """Run a query; return one value of its first row, or None."""
        rows = self.request(sql, args, **options).rows
        return rows[0][column] if rows else None

    def executemany(
        self: _SyncRequests, sql: str, args: Iterable[Sequence[Any]], **options: Any
    ) -> None:
        """Run a statement once per parameter list, atomically."""
        self.request(sql, list(args), many=True, **options)
