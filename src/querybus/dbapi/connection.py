"""The PEP 249 connection, with psycopg2's transactions; psycopg2.extensions' constants.

A :class:`Connection` runs statements on one :class:`SyncQueryClient`: in an
interactive querybus transaction opened by the first statement, or on their
own with ``autocommit``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from querybus import errors as qb
from querybus.client.result import Result
from querybus.client.sync import SyncQueryClient
from querybus.dbapi.cursor import Cursor
from querybus.dbapi.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    _BaseError,
    _translate,
)

# psycopg2.extensions' constants, under the same names and values.
ISOLATION_LEVEL_AUTOCOMMIT = 0
ISOLATION_LEVEL_READ_UNCOMMITTED = 4
ISOLATION_LEVEL_READ_COMMITTED = 1
ISOLATION_LEVEL_REPEATABLE_READ = 2
ISOLATION_LEVEL_SERIALIZABLE = 3
ISOLATION_LEVEL_DEFAULT = None

TRANSACTION_STATUS_IDLE = 0
TRANSACTION_STATUS_INTRANS = 2
TRANSACTION_STATUS_INERROR = 3


class _Transaction(Protocol):
    """What the connection uses of :class:`querybus.client.sync.SyncTransaction`."""

    def request(self, sql: str, params: Sequence[Any] = (), **options: Any) -> Result: ...

    def executemany(self, sql: str, args: Any, **options: Any) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


_ISOLATION_NAMES = {
    "read uncommitted": ISOLATION_LEVEL_READ_UNCOMMITTED,
    "read committed": ISOLATION_LEVEL_READ_COMMITTED,
    "repeatable read": ISOLATION_LEVEL_REPEATABLE_READ,
    "serializable": ISOLATION_LEVEL_SERIALIZABLE,
}
# PostgreSQL runs READ UNCOMMITTED as READ COMMITTED.
_ISOLATION_WIRE = {
    ISOLATION_LEVEL_READ_UNCOMMITTED: "read_committed",
    ISOLATION_LEVEL_READ_COMMITTED: "read_committed",
    ISOLATION_LEVEL_REPEATABLE_READ: "repeatable_read",
    ISOLATION_LEVEL_SERIALIZABLE: "serializable",
}

_UNSET: Any = object()


def _isolation(value: Any) -> int | None:
    """psycopg2's reading of an isolation level: a constant 1 to 4, a name, None or "DEFAULT"."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower().replace("_", " ")
        if key == "default":
            return None
        if key in _ISOLATION_NAMES:
            return _ISOLATION_NAMES[key]
        raise ValueError(f"bad value for isolation_level: {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 4:
            raise ValueError("isolation_level must be between 1 and 4")
        return value
    raise TypeError(f"bad isolation_level type: {type(value).__name__}")


def _tristate(value: Any, what: str) -> bool | None:
    if value is None or (isinstance(value, str) and value.upper() == "DEFAULT"):
        return None
    if isinstance(value, bool):
        return value
    raise ValueError(f"bad value for {what}: {value!r}")


class Connection:
    """A PEP 249 connection over one :class:`SyncQueryClient`, with psycopg2's transactions.

    The first statement opens a transaction (``BEGIN``, with the connection's
    isolation level and access mode) unless :attr:`autocommit` is True; it
    lasts until :meth:`commit` or :meth:`rollback`. After a failed statement
    the transaction is aborted, as in PostgreSQL: the next statements raise
    ``InternalError`` (25P02) until ``rollback()``. When the adapter holding
    the transaction is lost (or the transaction outlived its idle or maximum
    lifetime), the statement raises :class:`OperationalError` and so does every
    later one until ``rollback()``: nothing of it committed.
    """

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(
        self, client: SyncQueryClient, *, cursor_factory: Callable[..., Cursor] | None = None
    ) -> None:
        self._client: SyncQueryClient | None = client
        self.cursor_factory: Callable[..., Cursor] = cursor_factory or Cursor
        self._autocommit = False
        self._isolation: int | None = None
        self._readonly: bool | None = None
        self._deferrable: bool | None = None
        self._tx: _Transaction | None = None
        self._failed = False  # a statement of the open transaction failed
        self._lost: str | None = None  # the open transaction is gone (why)
        self._lock = threading.RLock()

    # -- state --

    def _require(self) -> SyncQueryClient:
        if self._client is None:
            raise InterfaceError("connection already closed")
        return self._client

    @property
    def closed(self) -> bool:
        return self._client is None

    def _in_transaction(self) -> bool:
        return self._tx is not None or self._lost is not None

    def get_transaction_status(self) -> int:
        """``TRANSACTION_STATUS_IDLE``, ``…_INTRANS`` or ``…_INERROR``, as psycopg2's."""
        if not self._in_transaction():
            return TRANSACTION_STATUS_IDLE
        if self._failed or self._lost is not None:
            return TRANSACTION_STATUS_INERROR
        return TRANSACTION_STATUS_INTRANS

    def _check_idle(self) -> None:
        self._require()
        if self._in_transaction():
            raise ProgrammingError("set_session cannot be used inside a transaction")

    @property
    def autocommit(self) -> bool:
        """False (the default): statements run in a transaction until commit or
        rollback. True: each statement commits on its own."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        with self._lock:
            self._check_idle()
            self._autocommit = bool(value)

    @property
    def isolation_level(self) -> int | None:
        """The next transactions' isolation level (``ISOLATION_LEVEL_*``; None: the server's)."""
        return self._isolation

    @isolation_level.setter
    def isolation_level(self, value: int | str | None) -> None:
        self.set_session(isolation_level=value if value is not None else "DEFAULT")

    @property
    def readonly(self) -> bool | None:
        return self._readonly

    @readonly.setter
    def readonly(self, value: bool | str | None) -> None:
        self.set_session(readonly=value if value is not None else "DEFAULT")

    @property
    def deferrable(self) -> bool | None:
        return self._deferrable

    @deferrable.setter
    def deferrable(self, value: bool | str | None) -> None:
        self.set_session(deferrable=value if value is not None else "DEFAULT")

    def set_session(
        self,
        isolation_level: Any = _UNSET,
        readonly: Any = _UNSET,
        deferrable: Any = _UNSET,
        autocommit: Any = _UNSET,
    ) -> None:
        """Set how the next transactions run, as psycopg2's ``set_session``.

        An argument left out (or None, as in psycopg2) keeps its setting;
        ``"DEFAULT"`` returns it to the server's default. Not inside a
        transaction.

        Raises:
            ProgrammingError: a transaction is open.
            ValueError: a value psycopg2 refuses too.
        """
        with self._lock:
            self._check_idle()
            isolation = self._isolation
            if isolation_level is not _UNSET and isolation_level is not None:
                isolation = _isolation(isolation_level)
            ro = self._readonly
            if readonly is not _UNSET and readonly is not None:
                ro = _tristate(readonly, "readonly")
            de = self._deferrable
            if deferrable is not _UNSET and deferrable is not None:
                de = _tristate(deferrable, "deferrable")
            self._isolation, self._readonly, self._deferrable = isolation, ro, de
            if autocommit is not _UNSET and autocommit is not None:
                self._autocommit = bool(autocommit)

    def set_isolation_level(self, level: int | None) -> None:
        """psycopg2's older call: ends (rolls back) an open transaction first;
        ``ISOLATION_LEVEL_AUTOCOMMIT`` (0) turns autocommit on, any other level
        turns it off and sets the level."""
        with self._lock:
            self.rollback()
            if level == ISOLATION_LEVEL_AUTOCOMMIT:
                self._autocommit = True
                return
            self._isolation = _isolation(level)
            self._autocommit = False

    # -- cursors and statements --

    def cursor(
        self, name: str | None = None, cursor_factory: Callable[..., Cursor] | None = None
    ) -> Cursor:
        """A new cursor. Named (server-side) cursors are not supported.

        Raises:
            InterfaceError: the connection is closed.
            NotSupportedError: ``name`` was given.
        """
        self._require()
        if name is not None:
            raise NotSupportedError(
                "named (server-side) cursors are not supported: results travel whole"
            )
        return (cursor_factory or self.cursor_factory)(self)

    def _target(self, client: SyncQueryClient) -> SyncQueryClient | _Transaction:
        """Where the next statement runs: the client (autocommit) or the transaction,
        opened now when there is none."""
        if self._autocommit:
            return client
        if self._lost is not None:
            raise OperationalError(
                f"the transaction was lost ({self._lost}); nothing of it committed: "
                "call rollback() and run it again"
            )
        if self._tx is None:
            # psycopg2's implicit BEGIN, without a round trip of its own: it
            # travels with this statement.
            self._tx = client.transaction(
                isolation=None if self._isolation is None else _ISOLATION_WIRE[self._isolation],
                readonly=bool(self._readonly),
                deferrable=bool(self._deferrable),
            ).defer()
            self._failed = False
        return self._tx

    def _run(self, cursor: Cursor, sql: str, values: list[Any]) -> Result:
        with self._lock:
            client = self._require()
            try:
                return self._target(client).request(sql, values)
            except qb.QueryBusError as exc:
                raise self._failure(exc, cursor) from exc

    def _run_many(self, cursor: Cursor, sql: str, values: list[list[Any]]) -> None:
        with self._lock:
            client = self._require()
            try:
                self._target(client).executemany(sql, values)
            except qb.QueryBusError as exc:
                raise self._failure(exc, cursor) from exc

    def _failure(self, exc: qb.QueryBusError, cursor: Cursor) -> _BaseError:
        if self._tx is not None:
            if isinstance(exc, qb.TransactionLostError):
                self._tx, self._lost = None, str(exc) or "transaction lost"
            else:
                self._failed = True
        return _translate(exc, cursor)

    # -- transactions --

    def commit(self) -> None:
        """Commit the open transaction; nothing to do when none is open.

        After a failed statement the transaction rolls back instead, without
        an error (PostgreSQL's answer to COMMIT of an aborted transaction,
        which psycopg2 passes on).

        Raises:
            InterfaceError: the connection is closed.
            OperationalError: the transaction was lost: nothing of it committed.
            Error: the commit failed (e.g. a deferred constraint: IntegrityError).
        """
        with self._lock:
            self._require()
            tx, lost, failed = self._tx, self._lost, self._failed
            self._tx, self._lost, self._failed = None, None, False
            if lost is not None:
                raise OperationalError(
                    f"the transaction was lost ({lost}); nothing of it committed"
                )
            if tx is None:
                return
            try:
                if failed:
                    # PostgreSQL answers COMMIT of an aborted transaction by
                    # rolling it back, without an error; psycopg2 passes that on.
                    tx.rollback()
                else:
                    tx.commit()
            except qb.TransactionLostError as exc:
                if failed:
                    return  # gone is rolled back, which is what was asked
                raise _translate(exc) from exc
            except qb.QueryBusError as exc:
                raise _translate(exc) from exc

    def rollback(self) -> None:
        """Roll back the open transaction; nothing to do when none is open.

        Raises:
            InterfaceError: the connection is closed.
        """
        with self._lock:
            self._require()
            tx = self._tx
            self._tx, self._lost, self._failed = None, None, False
            if tx is None:
                return
            try:
                tx.rollback()
            except qb.TransactionLostError:
                pass  # gone is rolled back: nothing of it committed
            except qb.QueryBusError as exc:
                raise _translate(exc) from exc

    def close(self) -> None:
        """Roll back an open transaction and close. Closing twice does nothing (as psycopg2)."""
        with self._lock:
            if self._client is None:
                return
            try:
                self.rollback()
            except _BaseError:
                # The adapter rolls back a transaction whose caller went away.
                pass
            finally:
                client, self._client = self._client, None
                client.close()

    def __del__(self) -> None:
        # A connection dropped without close() is closed, as psycopg2's is
        # (its transaction rolled back), so that its client's thread and
        # consumer do not live on. Not from the client's own loop thread,
        # which cannot wait for itself.
        client = self.__dict__.get("_client")
        if client is None or threading.current_thread() is getattr(client, "_thread", None):
            return
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Connection:
        self._require()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """psycopg2 ≥ 2.9: commit on success, roll back on an exception; stay open."""
        if self.closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
