"""Interactive transactions of a :class:`~querybus.client.QueryClient`.

A :class:`Transaction` is begun through the request topic (any adapter of the
group); the reply names the adapter that holds it and that adapter's inbox
topic, where every later request of the transaction goes, one at a time.
Opened with ``async with`` (or :meth:`Transaction.defer`), BEGIN costs no
round trip of its own: it travels with the first statement.

While a request of the transaction waits for its reply, the holding adapter
is pinged every ``client.tx_probe_interval`` seconds (2 s); a ping without an
answer within ``client.tx_ping_timeout`` (3 s) means the adapter is gone and
the call raises :class:`~querybus.errors.TransactionLostError` then, not at
its full timeout. An adapter that rolls the transaction back on its own
(stopping, idle timeout, maximum lifetime) sends a notice; the transaction is
then lost and its next call raises at once. A COMMIT whose reply does not
arrive is settled by asking any adapter for the recorded outcome (STATUS).
The whole design: ``docs/transactions.md``.

In direct mode (and when begun during a fallback to direct) the transaction
is held by this process's own pool instead, with the same limits and
outcomes; it never moves between the bus and direct.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from querybus.client.result import Result
from querybus.client.statements import Statements
from querybus.errors import (
    InterfaceError,
    QueryBusError,
    QueryError,
    RequestTimeoutError,
    SerializationFailureError,
    TransactionBusyError,
    TransactionLostError,
)
from querybus.protocol import (
    OperationType,
    QueryRequest,
    QueryResult,
    TxInfo,
    TxOp,
    TxOptions,
    encode_row,
)
from querybus.sqlstates import DeadlockDetectedError

if TYPE_CHECKING:
    from querybus.client.backend import Backend
    from querybus.client.client import QueryClient

__all__ = [
    "RETRY_IN_TRANSACTION",
    "Savepoint",
    "Transaction",
    "TransactionState",
    "retry_delay",
]

#: What ``run_in_transaction`` runs the whole function again for.
RETRY_IN_TRANSACTION: tuple[type[QueryBusError], ...] = (
    SerializationFailureError,
    DeadlockDetectedError,
    TransactionLostError,
    TransactionBusyError,
)


def retry_delay(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: jittered, growing, at
    most about half a second (conflicting transactions must not retry in step)."""
    return random.uniform(0.0, min(0.5, 0.02 * 2**attempt))


class TransactionState(enum.StrEnum):
    """Where a transaction is in its life."""

    NEW = "new"  # not begun yet
    OPEN = "open"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    LOST = "lost"  # rolled back behind the caller's back (adapter gone, timeouts)


class Transaction(Statements):
    """One interactive transaction; every statement runs on the same
    PostgreSQL connection, held by one adapter.

    Usage::

        async with client.transaction(isolation="serializable") as tx:
            await tx.execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", 10, 1)
            await tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", 10, 2)

    or ``tx = await client.begin()`` … ``await tx.commit()``. Calls of one
    transaction run one at a time, in the order they are made.
    """

    def __init__(
        self,
        client: QueryClient,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise InterfaceError("timeout must be positive")
        self._client = client
        self._options = TxOptions(isolation=isolation, readonly=readonly, deferrable=deferrable)
        self._timeout = timeout
        self._state = TransactionState.NEW
        self._info: TxInfo | None = None
        # Where it began (the bus, or direct): every later request goes there.
        self._backend: Backend | None = None
        self._lock = asyncio.Lock()
        self._current: str | None = None  # correlation id of the request waiting
        self._why_lost = ""
        self._savepoints = 0
        # Open, but BEGIN not sent yet: it travels with the first statement.
        self._deferred = False

    def __repr__(self) -> str:
        return f"<Transaction {self.id or '(not begun)'} {self._state.value}>"

    @property
    def id(self) -> str:
        """The transaction's id ("" before it began, and while deferred
        until its first statement)."""
        return "" if self._info is None else self._info.id

    @property
    def state(self) -> TransactionState:
        """``new``, ``open``, ``committed``, ``rolled_back`` or ``lost``."""
        return self._state

    @property
    def info(self) -> TxInfo | None:
        """Where it lives (the adapter, its inbox, the limits), once begun."""
        return self._info

    def _timeout_of(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        return self._client.timeout if self._timeout is None else self._timeout

    # -- life ----------------------------------------------------------------

    async def start(self) -> Transaction:
        """BEGIN (through the request topic: any adapter).

        Raises:
            InterfaceError: it was begun already.
            TransactionBusyError: the adapter holds as many as it allows.
        """
        if self._state is not TransactionState.NEW:
            raise InterfaceError(f"the transaction is {self._state.value}; begin it only once")
        await self._begin_alone()
        return self

    async def _begin_alone(self) -> None:
        """BEGIN without a statement; where it lives from the reply on."""
        timeout = self._timeout_of(None)
        request = self._client._new_request(timeout=timeout, txop=TxOp.BEGIN, txopts=self._options)
        reply, _, backend = await self._client._call(request, timeout=timeout)
        if reply.tx is None:
            raise InterfaceError("the adapter's reply to BEGIN names no transaction")
        self._opened(reply.tx, backend)

    def defer(self) -> Transaction:
        """Open it without a round trip: BEGIN travels with the first
        statement (or goes alone before a savepoint). PostgreSQL takes the
        snapshot at the first statement anyway, so only the moment a full
        adapter says :class:`~querybus.errors.TransactionBusyError` moves: to
        the first statement. Committing or rolling back before any statement
        sends nothing.

        Raises:
            InterfaceError: it was begun already.
        """
        if self._state is not TransactionState.NEW:
            raise InterfaceError(f"the transaction is {self._state.value}; begin it only once")
        self._deferred = True
        self._state = TransactionState.OPEN
        return self

    def _opened(self, info: TxInfo, backend: Backend) -> None:
        """The reply that began it: where it lives from now on."""
        self._backend = backend
        self._info = info
        self._deferred = False
        self._state = TransactionState.OPEN
        self._client._transactions[info.id] = self

    async def __aenter__(self) -> Transaction:
        return self.defer()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is not TransactionState.OPEN:
            return
        if exc_type is None:
            await self.commit()
            return
        # The caller's exception says more; the adapter rolls back anyway.
        with contextlib.suppress(QueryBusError):
            await self.rollback()

    async def commit(self) -> None:
        """COMMIT. Its outcome is never left unknown: when its reply does not
        come, the recorded outcome is asked for (STATUS) and returned or raised.

        Raises:
            QueryError: PostgreSQL refused the COMMIT (e.g. 40001 under
                serializable, 25P02 after a failed statement): rolled back.
            TransactionLostError: it was rolled back (adapter gone, timeouts).
            InterfaceError: it is not open.
        """
        if self._state is TransactionState.COMMITTED:
            return
        if self._deferred and self._state is TransactionState.OPEN:
            self._end(TransactionState.COMMITTED)  # nothing was begun
            return
        try:
            await self._send(TxOp.COMMIT)
        except (TransactionLostError, RequestTimeoutError) as exc:
            state = await self._settle()
            if state == "committed":
                self._end(TransactionState.COMMITTED)
                return
            self._end(TransactionState.LOST)
            raise TransactionLostError(
                f"transaction {self.id} did not commit ({exc}); it is {state}"
            ) from exc
        except QueryError:
            self._end(TransactionState.ROLLED_BACK)
            raise
        self._end(TransactionState.COMMITTED)

    async def _settle(self) -> str:
        """The recorded outcome, asked through the request topic (of the
        backend it began on)."""
        timeout = self._timeout_of(None)
        request = self._client._new_request(timeout=timeout, tx=self.id, txop=TxOp.STATUS)
        reply, _ = await self._client._roundtrip(request, timeout=timeout, backend=self._backend)
        return reply.state or "rolled_back"

    async def rollback(self) -> None:
        """ROLLBACK. A transaction already lost or rolled back stays so (no error).

        Raises:
            InterfaceError: it committed, or never began.
        """
        if self._state in (TransactionState.ROLLED_BACK, TransactionState.LOST):
            return
        if self._state is not TransactionState.OPEN:
            raise InterfaceError(f"cannot roll back a transaction that is {self._state.value}")
        if self._deferred:
            self._end(TransactionState.ROLLED_BACK)  # nothing was begun
            return
        try:
            await self._send(TxOp.ROLLBACK)
        except TransactionLostError:
            self._end(TransactionState.LOST)
            return
        except RequestTimeoutError:
            # The adapter rolls it back itself once it is idle long enough.
            self._end(TransactionState.LOST)
            raise
        self._end(TransactionState.ROLLED_BACK)

    def _end(self, state: TransactionState) -> None:
        self._state = state
        self._client._transactions.pop(self.id, None)

    def _lost(self, reason: str) -> None:
        """The adapter's notice: it was rolled back behind our back."""
        if self._state is not TransactionState.OPEN:
            return
        self._state = TransactionState.LOST
        self._why_lost = reason
        if self._current is not None and self._backend is not None:
            self._backend.fail_waiting(self._current, TransactionLostError(reason))

    def transaction(self) -> Savepoint:
        """A nested transaction (a savepoint): ``async with tx.transaction():``
        releases it on a clean exit and rolls back to it on an exception,
        keeping the outer transaction's work."""
        self._savepoints += 1
        return Savepoint(self, f"qb_sp_{self._savepoints}")

    # -- statements ------------------------------------------------------------

    async def request(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        operation_type: OperationType | str | None = None,
        many: bool = False,
        timeout: float | None = None,
    ) -> Result:
        """Run one statement in the transaction and return its :class:`Result`.

        Raises:
            TransactionLostError: the transaction is gone (at once when known).
            QueryError: the database refused it; the transaction is then
                aborted (25P02 for every statement until a rollback).
            InterfaceError: the transaction is not open.
        """
        try:
            wire = [encode_row(p) for p in params] if many else encode_row(params)
        except TypeError as exc:
            raise InterfaceError(f"parameters must be a sequence: {exc}") from exc
        reply, elapsed = await self._send(
            None,
            sql=sql,
            params=wire,
            many=many,
            op=self._client._coerce_operation(operation_type),
            timeout=timeout,
        )
        return self._client._result(reply, elapsed, self._backend)

    # -- the wire ----------------------------------------------------------------

    def _check_open(self) -> TxInfo:
        if self._state is TransactionState.LOST:
            raise TransactionLostError(
                f"transaction {self.id} was lost: {self._why_lost or 'rolled back'}; "
                "run it again in a new transaction"
            )
        if self._state is not TransactionState.OPEN or self._info is None:
            raise InterfaceError(f"the transaction is {self._state.value}, not open")
        return self._info

    async def _begin_with(self, request: QueryRequest, timeout: float) -> tuple[QueryResult, float]:
        """Send the first statement with BEGIN (through the request topic).
        A failure after BEGIN still opens it (aborted, as PostgreSQL leaves a
        transaction after a failed statement); a refusal before it does not."""
        request = msgspec.structs.replace(request, tx=None, txop=TxOp.BEGIN, txopts=self._options)
        try:
            reply, elapsed, _ = await self._client._call(
                request, timeout=timeout, on_tx=self._opened
            )
        except (TransactionLostError, RequestTimeoutError) as exc:
            if self._deferred:
                # Perhaps begun, perhaps not, but never to be found again:
                # the statements after it must not run in another one.
                self._deferred = False
                self._why_lost = str(exc)
                self._end(TransactionState.LOST)
            raise
        if reply.tx is None:
            raise InterfaceError("the adapter's reply to BEGIN names no transaction")
        if reply.command == "BEGIN":
            # An adapter from before BEGIN carried a statement: it began the
            # transaction and ignored the statement. Send it on its own.
            info = self._check_open()
            request = msgspec.structs.replace(
                request, id=self._client._next_id(), tx=info.id, txop=None, txopts=None
            )
            return await self._to_holder(request, info, timeout)
        return reply, elapsed

    async def _to_holder(
        self, request: QueryRequest, info: TxInfo, timeout: float
    ) -> tuple[QueryResult, float]:
        """``request`` to the inbox of the adapter holding the transaction,
        watched by pings while its reply is awaited."""
        return await self._client._roundtrip(
            request,
            timeout=timeout,
            topic=info.inbox,
            partition=info.partition,
            watch=self._watch,
            backend=self._backend,
        )

    async def _send(
        self,
        txop: TxOp | None,
        *,
        sql: str = "",
        params: list[Any] | None = None,
        many: bool = False,
        op: OperationType | None = None,
        savepoint: str | None = None,
        timeout: float | None = None,
    ) -> tuple[QueryResult, float]:
        """One request to the holding adapter's inbox, after the previous one
        (the first statement of a deferred one: with BEGIN, to any adapter)."""
        if self._deferred and self._state is TransactionState.OPEN:
            async with self._lock:
                if self._deferred:
                    timeout = self._timeout_of(timeout)
                    if txop is None:
                        request = self._client._new_request(
                            sql, params, timeout=timeout, op=op, many=many
                        )
                        return await self._begin_with(request, timeout)
                    # A savepoint first: BEGIN alone, then the savepoint
                    # (still deferred when BEGIN fails: nothing began).
                    await self._begin_alone()
        self._check_open()
        async with self._lock:
            info = self._check_open()
            timeout = self._timeout_of(timeout)
            request = self._client._new_request(
                sql,
                params,
                timeout=timeout,
                op=op,
                many=many,
                tx=info.id,
                txop=txop,
                savepoint=savepoint,
            )
            self._current = request.id
            try:
                return await self._to_holder(request, info, timeout)
            except TransactionLostError as exc:
                if txop is not TxOp.COMMIT:  # a COMMIT settles it by STATUS
                    self._why_lost = self._why_lost or str(exc)
                    self._end(TransactionState.LOST)
                raise
            finally:
                self._current = None

    async def _watch(self) -> None:
        """Ping the holding adapter while a reply is awaited; raise
        TransactionLostError when it does not answer (or no longer holds it)."""
        client = self._client
        while True:
            await asyncio.sleep(client.tx_probe_interval)
            info = self._check_open()
            request = client._new_request(
                timeout=client.tx_ping_timeout, tx=info.id, txop=TxOp.PING
            )
            try:
                await client._roundtrip(
                    request,
                    timeout=client.tx_ping_timeout,
                    topic=info.inbox,
                    partition=info.partition,
                    backend=self._backend,
                )
            except RequestTimeoutError:
                raise TransactionLostError(
                    f"transaction {info.id}: adapter {info.adapter} did not answer a ping "
                    f"within {client.tx_ping_timeout:g} s (it stopped or died); the "
                    "transaction was rolled back with its connection"
                ) from None
            except TransactionLostError:
                raise
            except QueryBusError:
                continue  # it answered (even a refusal): alive, keep waiting


class Savepoint:
    """A nested transaction: ``SAVEPOINT`` on enter, ``RELEASE`` on a clean
    exit, ``ROLLBACK TO`` on an exception (the outer transaction goes on)."""

    def __init__(self, tx: Transaction, name: str) -> None:
        self.tx = tx
        self.name = name

    async def __aenter__(self) -> Savepoint:
        await self.tx._send(TxOp.SAVEPOINT, savepoint=self.name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.release()
            return
        if self.tx.state is TransactionState.OPEN:
            with contextlib.suppress(QueryBusError):  # the caller's exception says more
                await self.rollback()

    async def release(self) -> None:
        """``RELEASE SAVEPOINT``: keep what was done since it."""
        await self.tx._send(TxOp.RELEASE, savepoint=self.name)

    async def rollback(self) -> None:
        """``ROLLBACK TO SAVEPOINT``: undo what was done since it (also after
        a failed statement: the transaction is usable again)."""
        await self.tx._send(TxOp.ROLLBACK_TO, savepoint=self.name)
