"""ConnectionPool: a fixed set of asyncpg connections, lent without tasks or timers.

asyncpg's own pool cost about a seventh of a direct-mode point query's CPU
(py-spy, concurrency 32): each release runs in a task of its own
(``asyncio.shield``) under a timer, re-arms an inactivity timer that the next
acquire cancels, resets the connection, and each acquire builds a proxy whose
every method call is forwarded. None of that is needed here: requests never
leave session state behind (``run_on_connection`` resets the session when they
might), the pool keeps exactly ``size`` connections, and the callers bound
their waits with their own deadlines. So this pool is a deque of idle
connections and a deque of waiters; lending and returning a connection are
plain function calls, and only a connection returned in an unusual state (a
cancelled statement's cancellation still under way, a transaction left open)
costs a wait, bounded.

A connection that broke is dropped on return; its slot is opened again by the
next caller that needs it (and that caller gets the connection error when the
server is still down), as asyncpg's pool does. So is a connection older than
:data:`MAX_CONNECTION_AGE` (closed gracefully in the background): long-lived
server sessions grow their caches, and settings changed with ``ALTER ROLE …
SET`` reach new sessions only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

from querybus.execution import PoolStats

__all__ = ["MAX_CONNECTION_AGE", "ConnectionPool"]

#: Seconds after which a connection is replaced when it is next returned
#: (each one 0 to 10 % sooner, so that connections opened together are not all
#: replaced at once).
MAX_CONNECTION_AGE = 3600.0
#: How long closing a replaced connection may take before it is terminated.
_CLOSE_TIMEOUT = 5.0


class ConnectionPool:
    """``size`` connections opened by ``connect``, lent first come, first served.

    Args:
        connect: opens one ready-to-use connection (login, settings, codecs);
            raises asyncpg's errors or OSError when it cannot.
        size: how many connections the pool holds.
        max_age: seconds after which a connection is replaced when returned
            (None: never).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        size: int,
        *,
        max_age: float | None = MAX_CONNECTION_AGE,
    ) -> None:
        if size < 1:
            raise ValueError("a pool holds at least one connection")
        self._raw_connect = connect
        self.size = size
        self._max_age = max_age
        # When each open connection is to be replaced (monotonic clock).
        self._expires: dict[asyncpg.Connection, float] = {}
        # Replaced connections being closed in the background, by their task.
        self._retiring: dict[asyncio.Task[None], asyncpg.Connection] = {}
        self._idle: deque[asyncpg.Connection] = deque()
        self._lent: set[asyncpg.Connection] = set()
        # Slots without a connection (it broke, or opening it failed).
        self._empty = 0
        # Callers waiting for a connection; each future gets one, or None for
        # an empty slot the caller then opens itself.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closing = False
        self._drained: asyncio.Event | None = None

    async def open(self) -> None:
        """Open every connection (concurrently).

        Raises:
            asyncpg errors or OSError: one could not be opened (then none
            stays open, nor when the call is cancelled midway).
        """
        tasks = [asyncio.ensure_future(self._connect()) for _ in range(self.size)]
        try:
            opened = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # the others, now or once they are done
                task.add_done_callback(_terminate_result)
                task.cancel()
            raise
        self._idle.extend(opened)

    async def _connect(self) -> asyncpg.Connection:
        conn = await self._raw_connect()
        if self._max_age is not None:
            self._expires[conn] = time.monotonic() + self._max_age * (1 - 0.1 * random.random())
        return conn

    def stats(self) -> PoolStats:
        """How many connections are lent, idle, and how many callers wait, now."""
        return PoolStats(
            size=self.size, in_use=len(self._lent), idle=len(self._idle), waiting=len(self._waiters)
        )

    def connections(self) -> list[asyncpg.Connection]:
        """Every connection the pool holds now, idle or lent (for checks and tests)."""
        return [*self._idle, *self._lent]

    async def acquire(self) -> asyncpg.Connection:
        """A connection, once one is free; no limit of its own on the wait
        (bound it with the caller's deadline: a cancelled wait takes nothing).

        Raises:
            asyncpg.InterfaceError: the pool is closing.
            asyncpg errors or OSError: an empty slot could not be opened.
        """
        if self._closing:
            raise asyncpg.InterfaceError("the connection pool is closing")
        while self._idle:
            conn = self._idle.popleft()
            if not conn.is_closed():
                self._lent.add(conn)
                return conn
            self._expires.pop(conn, None)
            self._empty += 1
        if self._empty:
            self._empty -= 1
            return await self._open_slot()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed over just as we were cancelled: pass it on.
                self._hand(waiter.result())
            else:
                with contextlib.suppress(ValueError):  # already taken out (closing)
                    self._waiters.remove(waiter)
            raise
        if conn is None or conn.is_closed():
            if conn is not None:
                self._expires.pop(conn, None)
            return await self._open_slot()
        self._lent.add(conn)
        return conn

    async def _open_slot(self) -> asyncpg.Connection:
        try:
            conn = await self._connect()
        except BaseException:
            self._hand(None)  # the slot stays empty, for the next caller to try
            raise
        if self._closing:
            self._expires.pop(conn, None)
            conn.terminate()
            raise asyncpg.InterfaceError("the connection pool is closing")
        self._lent.add(conn)
        return conn

    def _hand(self, conn: asyncpg.Connection | None) -> None:
        """Give ``conn`` (None: an empty slot) to the first caller still
        waiting, or keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            self._empty += 1
        else:
            self._idle.append(conn)

    async def release(self, conn: asyncpg.Connection, *, timeout: float) -> None:
        """Take ``conn`` back (a second release of it does nothing).

        A connection still cancelling a statement waits (at most ``timeout``
        seconds) for the server to acknowledge, and one left in a transaction
        is rolled back; past ``timeout``, or on any error or cancellation
        meanwhile, the connection is closed instead and its slot reopened
        later.
        """
        if conn not in self._lent:
            return
        try:
            if not conn.is_closed() and (
                conn.is_in_transaction() or conn._protocol._is_cancelling()
            ):
                await _settle(conn, timeout)
        finally:
            self._lent.discard(conn)
            if conn.is_closed():
                self._expires.pop(conn, None)
                self._hand(None)
            elif self._expires.get(conn, _NEVER) <= time.monotonic():
                self._expires.pop(conn)
                self._retire(conn)
                self._hand(None)
            else:
                self._hand(conn)
            if self._drained is not None and not self._lent:
                self._drained.set()

    def _retire(self, conn: asyncpg.Connection) -> None:
        """Close ``conn`` gracefully in the background (its slot is empty now)."""

        async def close() -> None:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await conn.close()
            except BaseException:  # slow, failed, or the loop is ending: at once then
                conn.terminate()

        task = asyncio.ensure_future(close())
        self._retiring[task] = conn
        task.add_done_callback(self._retiring.pop)

    def _fail_waiters(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the connection pool is closing"))

    async def close(self) -> None:
        """Refuse new callers, wait for every lent connection to come back
        (no limit: bound it, then :meth:`terminate`), and close them all."""
        self._closing = True
        self._fail_waiters()
        if self._lent:
            if self._drained is None:
                self._drained = asyncio.Event()
            await self._drained.wait()
        idle, self._idle = list(self._idle), deque()
        try:
            await asyncio.gather(*(conn.close() for conn in idle), *self._retiring)
        finally:
            for conn in [*idle, *self._retiring.values()]:  # no-op for those closed above
                conn.terminate()

    def terminate(self) -> None:
        """Close every connection at once, lent or not, without waiting."""
        self._closing = True
        self._fail_waiters()
        for conn in [*self.connections(), *self._retiring.values()]:
            conn.terminate()
        self._idle.clear()


async def _settle(conn: asyncpg.Connection, timeout: float) -> None:
    """Make ``conn`` fit to lend again, or close it (nothing is lost: its
    slot is reopened when needed). Re-raises only a cancellation."""
    try:
        async with asyncio.timeout(timeout):
            # asyncpg's internals, as its own pool uses them on release.
            await conn._protocol._wait_for_cancellation()
            if conn.is_in_transaction():
                await conn._reset()  # ROLLBACK; listeners dropped
    except Exception:
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise


_NEVER = float("inf")


def _terminate_result(task: asyncio.Future[asyncpg.Connection]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().terminate()
