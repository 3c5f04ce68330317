"""A DB-API 2.0 (PEP 249) module over querybus, with psycopg2's semantics.

Migrating is usually a change of import and of ``connect()``::

    import querybus.dbapi as psycopg2          # was: import psycopg2
    conn = psycopg2.connect("127.0.0.1:9092")  # was: psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:           # commit on success, roll back on error
        cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (10, 1))
        cur.execute("SELECT * FROM agents WHERE id IN %s", ((1, 2, 3),))
        rows = cur.fetchall()

Transactions are psycopg2's: the first statement of a connection opens a
transaction (an interactive querybus transaction, held by one adapter on one
PostgreSQL connection) unless ``conn.autocommit`` is True; ``commit()`` and
``rollback()`` end it; ``with conn:`` commits or rolls back and leaves the
connection open; ``close()`` rolls back what was not committed.

Placeholders are psycopg2's ``%s`` and ``%(name)s`` (``paramstyle =
"pyformat"``), read exactly as psycopg2 reads them (:func:`convert_placeholders`),
and adapted as psycopg2 adapts: a tuple is a list of values (``IN %s``), a list
is an array, None is NULL. They become ``$1…`` before sending; :meth:`Cursor.mogrify`
shows the query as psycopg2 would have sent it.

What deliberately differs from psycopg2 is listed in ``docs/migration.md``.

The package's modules: :mod:`~querybus.dbapi.errors` (the exceptions and
their SQLSTATE classes), :mod:`~querybus.dbapi.types` (type objects, type
codes, constructors), :mod:`~querybus.dbapi.placeholders` (``%s`` to ``$n``,
adaptation, ``mogrify``), :mod:`~querybus.dbapi.cursor` and
:mod:`~querybus.dbapi.connection` (with psycopg2.extensions' constants); this
module is the PEP 249 module surface and :func:`connect`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from querybus import errors as qb
from querybus.client.sync import SyncQueryClient
from querybus.config import BusSettings, ClientSettings
from querybus.dbapi.connection import (
    ISOLATION_LEVEL_AUTOCOMMIT,
    ISOLATION_LEVEL_DEFAULT,
    ISOLATION_LEVEL_READ_COMMITTED,
    ISOLATION_LEVEL_READ_UNCOMMITTED,
    ISOLATION_LEVEL_REPEATABLE_READ,
    ISOLATION_LEVEL_SERIALIZABLE,
    TRANSACTION_STATUS_IDLE,
    TRANSACTION_STATUS_INERROR,
    TRANSACTION_STATUS_INTRANS,
    Connection,
)
from querybus.dbapi.cursor import Cursor
from querybus.dbapi.errors import (
    DatabaseError,
    DataError,
    Diagnostics,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    QueryCanceledError,
    TransactionRollbackError,
    Warning,
    _translate,
)

# Not in __all__ but importable from here, as before the split: Params, DBAPITypeObject.
from querybus.dbapi.placeholders import Params as Params
from querybus.dbapi.placeholders import convert_placeholders, mogrify
from querybus.dbapi.types import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Column,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    TypeCode,
)
from querybus.dbapi.types import DBAPITypeObject as DBAPITypeObject

__all__ = [
    "BINARY",
    "DATETIME",
    "ISOLATION_LEVEL_AUTOCOMMIT",
    "ISOLATION_LEVEL_DEFAULT",
    "ISOLATION_LEVEL_READ_COMMITTED",
    "ISOLATION_LEVEL_READ_UNCOMMITTED",
    "ISOLATION_LEVEL_REPEATABLE_READ",
    "ISOLATION_LEVEL_SERIALIZABLE",
    "NUMBER",
    "ROWID",
    "STRING",
    "TRANSACTION_STATUS_IDLE",
    "TRANSACTION_STATUS_INERROR",
    "TRANSACTION_STATUS_INTRANS",
    "Binary",
    "Column",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Diagnostics",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "QueryCanceledError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "TransactionRollbackError",
    "TypeCode",
    "Warning",
    "apilevel",
    "connect",
    "convert_placeholders",
    "mogrify",
    "paramstyle",
    "threadsafety",
]

apilevel = "2.0"
threadsafety = 2  # threads may share the module and connections (a connection serializes them)
paramstyle = "pyformat"


def connect(
    bus: str | BusSettings | ClientSettings = "127.0.0.1:9092",
    *,
    cursor_factory: Callable[..., Cursor] | None = None,
    **options: Any,
) -> Connection:
    """Open a connection: a started blocking client on ``bus``.

    ``options`` are :class:`~querybus.QueryClient`'s keyword arguments
    (``timeout``, ``token``, ``token_provider``, ``mode``, ``fallback``,
    ``dsn``, …), passed through. ``connect(ClientSettings.from_env())``
    follows ``QUERYBUS_MODE`` and ``QUERYBUS_FALLBACK``: ``mode="direct"``
    runs every call on a pool of the caller's own (the migration's rollback
    plan; ``docs/migration.md``).

    Raises:
        OperationalError: the bus cannot be reached.
        InterfaceError: the settings are wrong (e.g. direct mode without
            ``querybus[adapter]`` installed).
    """
    try:
        client = SyncQueryClient(bus, **options)
    except qb.QueryBusError as exc:
        raise _translate(exc) from exc
    try:
        client.start()
    except qb.QueryBusError as exc:
        raise _translate(exc) from exc
    return Connection(client, cursor_factory=cursor_factory)
