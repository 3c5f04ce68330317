"""A DB-API 2.0 (PEP 249) module over querybus, for code written for psycopg2.

Migrating is usually a change of import and of ``connect()``::

    import querybus.dbapi as psycopg2          # was: import psycopg2
    conn = psycopg2.connect("127.0.0.1:9092")  # was: psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT * FROM agents WHERE id = %s", (42,))
    rows = cur.fetchall()

What differs, honestly: every statement commits on its own (the bus carries
single statements, not sessions), so ``commit()`` does nothing and
``rollback()`` raises :class:`NotSupportedError`; use ``executemany`` for an
atomic batch. Placeholders are psycopg2's ``%s`` and ``%(name)s``
(``paramstyle = "pyformat"``); they become ``$1…`` before sending.
Errors carry psycopg2's ``pgcode``/``pgerror`` and chain the querybus error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from querybus import errors as qb
from querybus.client.result import Result
from querybus.client.sync import SyncQueryClient
from querybus.config import BusSettings

__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "apilevel",
    "connect",
    "convert_placeholders",
    "paramstyle",
    "threadsafety",
]

apilevel = "2.0"
threadsafety = 2  # threads may share the module and connections
paramstyle = "pyformat"

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


class Warning(Exception):
    pass


class Error(Exception):
    """Base of the PEP 249 errors. ``pgcode`` is the SQLSTATE, as in psycopg2."""

    def __init__(self, message: str = "", *, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode
        self.pgerror = message


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


def _translate(exc: qb.QueryBusError) -> Error:
    sqlstate = getattr(exc, "sqlstate", None)
    cls: type[Error]
    if isinstance(exc, qb.IntegrityConstraintViolationError):
        cls = IntegrityError
    elif isinstance(exc, qb.DataError):
        cls = DataError
    elif isinstance(exc, qb.FeatureNotSupportedError):
        cls = NotSupportedError
    elif isinstance(exc, (qb.SQLSyntaxError, qb.RequestRejectedError)):
        cls = ProgrammingError
    elif isinstance(
        exc, (qb.OperationalError, qb.TransportError, qb.RoutingError, qb.TransactionRollbackError)
    ):
        cls = OperationalError
    elif isinstance(exc, qb.InterfaceError):
        cls = InterfaceError
    elif isinstance(exc, qb.QueryError):
        cls = DatabaseError
    else:
        cls = InternalError
    return cls(str(exc), pgcode=sqlstate)


def convert_placeholders(
    sql: str, params: Sequence[Any] | Mapping[str, Any] | None
) -> tuple[str, list[Any]]:
    """Rewrite psycopg2 placeholders (``%s``, ``%(name)s``, ``%%``) as ``$n``.

    Quoted strings, quoted identifiers, dollar-quoted bodies and comments are
    left alone.

    Raises:
        ProgrammingError: placeholders and parameters do not match.
    """
    out: list[str] = []
    values: list[Any] = []
    names: dict[str, int] = {}
    positional = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j])
            i = j
        elif c == "$" and (m := _DOLLAR_TAG.match(sql, i)) is not None:
            # $tag$ … $tag$ (not $1, which starts with a digit and never matches)
            j = sql.find(m.group(0), m.end())
            j = n if j < 0 else j + len(m.group(0))
            out.append(sql[i:j])
            i = j
        elif c == "%" and i + 1 < n:
            nxt = sql[i + 1]
            if nxt == "%":
                out.append("%")
                i += 2
            elif nxt == "s":
                if not isinstance(params, Sequence) or isinstance(params, str):
                    raise ProgrammingError("%s placeholders need a sequence of parameters")
                if positional >= len(params):
                    raise ProgrammingError("not enough parameters for the placeholders")
                values.append(params[positional])
                positional += 1
                out.append(f"${len(values)}")
                i += 2
            elif nxt == "(":
                close = sql.find(")s", i)
                if close < 0:
                    raise ProgrammingError(f"unterminated placeholder at {i}")
                name = sql[i + 2 : close]
                if not isinstance(params, Mapping):
                    raise ProgrammingError("%(name)s placeholders need a mapping of parameters")
                if name not in params:
                    raise ProgrammingError(f"no parameter named {name!r}")
                if name not in names:
                    values.append(params[name])
                    names[name] = len(values)
                out.append(f"${names[name]}")
                i = close + 2
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    if isinstance(params, Sequence) and not isinstance(params, str) and positional != len(params):
        raise ProgrammingError(f"{len(params)} parameters for {positional} placeholders")
    return "".join(out), values


class Cursor:
    """A PEP 249 cursor. Results are fetched whole with each ``execute``."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._result: Result | None = None
        self._pos = 0
        self.rowcount = -1
        self.closed = False

    @property
    def description(self) -> list[tuple[str, str, None, None, None, None, None]] | None:
        if self._result is None or not self._result.columns:
            return None
        return [(c.name, c.type, None, None, None, None, None) for c in self._result.columns]

    def _client(self) -> SyncQueryClient:
        if self.closed:
            raise InterfaceError("the cursor is closed")
        return self.connection._require()

    def execute(
        self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> None:
        sql, values = (
            convert_placeholders(operation, parameters)
            if parameters is not None
            else (operation, [])
        )
        try:
            self._result = self._client().request(sql, values)
        except qb.QueryBusError as exc:
            raise _translate(exc) from exc
        self._pos = 0
        self.rowcount = self._result.rowcount

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any] | Mapping[str, Any]]
    ) -> None:
        batches = [convert_placeholders(operation, p) for p in seq_of_parameters]
        if not batches:
            return
        sql = batches[0][0]
        try:
            self._client().executemany(sql, [values for _, values in batches])
        except qb.QueryBusError as exc:
            raise _translate(exc) from exc
        self._result = None
        self.rowcount = len(batches)

    def _rows(self) -> list[Any]:
        if self._result is None:
            raise ProgrammingError("no result: execute a query first")
        return self._result.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._rows()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return tuple(rows[self._pos - 1])

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        rows = self._rows()
        size = self.arraysize if size is None else size
        chunk = rows[self._pos : self._pos + size]
        self._pos += len(chunk)
        return [tuple(r) for r in chunk]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows()
        chunk = rows[self._pos :]
        self._pos = len(rows)
        return [tuple(r) for r in chunk]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Connection:
    """A PEP 249 connection: one :class:`SyncQueryClient`. Always autocommit."""

    autocommit = True

    def __init__(self, client: SyncQueryClient) -> None:
        self._client: SyncQueryClient | None = client

    def _require(self) -> SyncQueryClient:
        if self._client is None:
            raise InterfaceError("the connection is closed")
        return self._client

    def cursor(self) -> Cursor:
        self._require()
        return Cursor(self)

    def commit(self) -> None:
        """Nothing to do: each statement already committed when it returned."""
        self._require()

    def rollback(self) -> None:
        raise NotSupportedError(
            "querybus runs each statement in its own transaction; there is nothing to roll back "
            "(use executemany for an atomic batch)"
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def closed(self) -> bool:
        return self._client is None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(bus: str | BusSettings = "127.0.0.1:9092", **options: Any) -> Connection:
    """Open a connection: a started blocking client on ``bus``.

    Raises:
        OperationalError: the bus cannot be reached.
    """
    client = SyncQueryClient(bus, **options)
    try:
        client.start()
    except qb.QueryBusError as exc:
        raise _translate(exc) from exc
    return Connection(client)
