"""A blocking facade over :class:`QueryClient`, for code that is not async.

The async client runs on an event loop in a background thread that this
object owns; every method submits a coroutine there and waits for it. One
``SyncQueryClient`` may be shared by many threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from querybus.client.client import QueryClient
from querybus.client.result import Result, Row
from querybus.config import BusSettings
from querybus.errors import InterfaceError

__all__ = ["SyncQueryClient"]

T = TypeVar("T")


class SyncQueryClient:
    """Blocking version of :class:`QueryClient`; same arguments, same methods.

    A ``token_provider`` is called on the background loop's thread: a slow
    synchronous one holds up every request meanwhile (an async one does not).

    Usage::

        with SyncQueryClient("127.0.0.1:9092") as db:
            rows = db.fetch("SELECT * FROM agents WHERE id = $1", 42)
    """

    def __init__(self, bus: str | BusSettings = "127.0.0.1:9092", **options: Any) -> None:
        self._bus = bus
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: QueryClient | None = None

    def start(self) -> None:
        """Start the background loop and the client.

        Raises:
            InterfaceError: already started.
            TransportError: the bus cannot be reached.
        """
        if self._loop is not None:
            raise InterfaceError("the client is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="querybus-sync", daemon=True)
        self._thread.start()
        self._client = QueryClient(self._bus, **self._options)
        try:
            self._call(self._client.start())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the client and its loop. Safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()

    def __enter__(self) -> SyncQueryClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise InterfaceError("the client is not started")
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result()

    @property
    def client(self) -> QueryClient:
        if self._client is None:
            raise InterfaceError("the client is not started")
        return self._client

    def request(self, sql: str, params: Sequence[Any] = (), **options: Any) -> Result:
        return self._call(self.client.request(sql, params, **options))

    def execute(self, sql: str, *args: Any, **options: Any) -> str:
        return self._call(self.client.execute(sql, *args, **options))

    def fetch(self, sql: str, *args: Any, **options: Any) -> list[Row]:
        return self._call(self.client.fetch(sql, *args, **options))

    def fetchrow(self, sql: str, *args: Any, **options: Any) -> Row | None:
        return self._call(self.client.fetchrow(sql, *args, **options))

    def fetchval(self, sql: str, *args: Any, **options: Any) -> Any:
        return self._call(self.client.fetchval(sql, *args, **options))

    def executemany(self, sql: str, args: Iterable[Sequence[Any]], **options: Any) -> None:
        self._call(self.client.executemany(sql, list(args), **options))

    def query(self, query: str, params: Sequence[Any] | None = None, **options: Any) -> Result:
        return self._call(self.client.query(query, params, **options))
