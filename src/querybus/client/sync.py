"""A blocking facade over :class:`QueryClient`, for code that is not async.

The async client runs on an event loop in a background thread that this
object owns; every method submits a coroutine there and waits for it. One
``SyncQueryClient`` may be shared by many threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from querybus.client.client import QueryClient
from querybus.client.result import Result
from querybus.client.statements import SyncStatements
from querybus.client.transaction import (
    RETRY_IN_TRANSACTION,
    Savepoint,
    Transaction,
    TransactionState,
    retry_delay,
)
from querybus.config import BusSettings, ClientSettings
from querybus.errors import InterfaceError

__all__ = ["SyncQueryClient", "SyncSavepoint", "SyncTransaction"]

T = TypeVar("T")


class SyncQueryClient(SyncStatements):
    """Blocking version of :class:`QueryClient`; same arguments, same methods.

    A ``token_provider`` is called on the background loop's thread: a slow
    synchronous one holds up every request meanwhile (an async one does not).

    Usage::

        with SyncQueryClient("127.0.0.1:9092") as db:
            rows = db.fetch("SELECT * FROM agents WHERE id = $1", 42)
    """

    def __init__(
        self, bus: str | BusSettings | ClientSettings = "127.0.0.1:9092", **options: Any
    ) -> None:
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

    def query(self, query: str, params: Sequence[Any] | None = None, **options: Any) -> Result:
        return self._call(self.client.query(query, params, **options))

    # -- transactions ---------------------------------------------------------

    def transaction(
        self,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> SyncTransaction:
        """An interactive transaction: ``with db.transaction() as tx:`` begins
        it, commits on a clean exit, rolls back on an exception."""
        tx = self.client.transaction(
            isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
        )
        return SyncTransaction(self, tx)

    def begin(
        self,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> SyncTransaction:
        """Begin a transaction now; end it with ``commit()`` or ``rollback()``."""
        tx = self.transaction(
            isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
        )
        tx.start()
        return tx

    def run_in_transaction(
        self,
        fn: Callable[[SyncTransaction], T],
        *,
        retries: int = 3,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> T:
        """:meth:`QueryClient.run_in_transaction` with a synchronous ``fn``
        (run in the calling thread)."""
        attempt = 0
        while True:
            try:
                with self.transaction(
                    isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
                ) as tx:
                    return fn(tx)
            except RETRY_IN_TRANSACTION:
                if attempt >= retries:
                    raise
                attempt += 1
                time.sleep(retry_delay(attempt))

    def batch(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Result]:
        """Run ``statements`` atomically in one request; one result each."""
        return self._call(self.client.batch(statements, timeout=timeout))

    def transaction_status(self, tx_id: str, *, timeout: float | None = None) -> str:
        """The recorded outcome of transaction ``tx_id`` (see QueryClient)."""
        return self._call(self.client.transaction_status(tx_id, timeout=timeout))


class SyncTransaction(SyncStatements):
    """Blocking version of :class:`~querybus.client.Transaction`: same methods."""

    def __init__(self, owner: SyncQueryClient, tx: Transaction) -> None:
        self._owner = owner
        self._tx = tx

    def __repr__(self) -> str:
        return repr(self._tx).replace("<Transaction", "<SyncTransaction", 1)

    @property
    def id(self) -> str:
        return self._tx.id

    @property
    def state(self) -> TransactionState:
        return self._tx.state

    @property
    def transaction_async(self) -> Transaction:
        """The underlying async transaction (runs on the client's loop)."""
        return self._tx

    def start(self) -> SyncTransaction:
        """BEGIN now (a round trip)."""
        self._owner._call(self._tx.start())
        return self

    def defer(self) -> SyncTransaction:
        """Open it without a round trip: BEGIN travels with the first statement."""
        self._tx.defer()
        return self

    def __enter__(self) -> SyncTransaction:
        return self.defer()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._call(self._tx.__aexit__(exc_type, exc, tb))

    def commit(self) -> None:
        self._owner._call(self._tx.commit())

    def rollback(self) -> None:
        self._owner._call(self._tx.rollback())

    def transaction(self) -> SyncSavepoint:
        """A nested transaction (savepoint), as a context manager."""
        return SyncSavepoint(self._owner, self._tx.transaction())

    def request(self, sql: str, params: Sequence[Any] = (), **options: Any) -> Result:
        return self._owner._call(self._tx.request(sql, params, **options))


class SyncSavepoint:
    """Blocking version of :class:`~querybus.client.transaction.Savepoint`."""

    def __init__(self, owner: SyncQueryClient, savepoint: Savepoint) -> None:
        self._owner = owner
        self._savepoint = savepoint

    @property
    def name(self) -> str:
        return self._savepoint.name

    def __enter__(self) -> SyncSavepoint:
        self._owner._call(self._savepoint.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._call(self._savepoint.__aexit__(exc_type, exc, tb))

    def release(self) -> None:
        self._owner._call(self._savepoint.release())

    def rollback(self) -> None:
        self._owner._call(self._savepoint.rollback())
