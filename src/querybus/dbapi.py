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
(``paramstyle = "pyformat"``); they become ``$1…`` before sending, and ``%``
means what it means to psycopg2: with parameters ``%%`` is one ``%`` (also
inside quotes), without parameters the query is sent as written
(:func:`convert_placeholders`).
Errors carry psycopg2's ``pgcode``/``pgerror`` and chain the querybus error.
"""

from __future__ import annotations

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
    """Rewrite psycopg2's placeholders as PostgreSQL's ``$1…``, reading ``%`` as psycopg2 does.

    psycopg2 merges parameters into the query with Python's ``%`` formatting
    and never looks at SQL quoting, so the same text must mean the same here,
    or the data silently differs (``'100%%'`` is stored as ``100%`` by psycopg2):

    * ``params`` is None: the query is used as it is; ``%`` means nothing.
    * Otherwise (a sequence or a mapping, even an empty one) every ``%``
      starts a directive, wherever it is, also inside string literals, quoted
      identifiers, dollar quotes and comments: ``%%`` is one ``%``, ``%s`` is
      the next parameter of a sequence, ``%(name)s`` the parameter ``name`` of
      a mapping (one ``$n`` per name, however often it appears). A ``%``
      followed by anything else is an error.
    * A query without placeholders ignores the parameters it is given, as
      psycopg2 does; with ``%s`` placeholders, their count must match.

    Where psycopg2 raises ``KeyError``, ``IndexError``, ``TypeError`` or
    ``ValueError`` for a placeholder that does not fit its parameters, this
    raises :class:`ProgrammingError` (PEP 249's class for such mistakes).
    psycopg2 takes a string of parameters as a sequence of characters; this
    refuses it, as it is always a forgotten comma: ``("x")`` for ``("x",)``.

    Args:
        sql: the query, with psycopg2 placeholders.
        params: the parameters, or None for none.

    Returns:
        The query with ``$n`` placeholders and the values in ``$n`` order.

    Raises:
        ProgrammingError: placeholders and parameters do not match, formats
            are mixed, or a ``%`` starts no valid directive.
    """
    if params is None:
        return sql, []
    if isinstance(params, (str, bytes, bytearray)) or not isinstance(params, (Sequence, Mapping)):
        raise ProgrammingError(
            f"parameters must be a sequence or a mapping, not {type(params).__name__}"
        )
    out: list[str] = []
    values: list[Any] = []
    names: dict[str, int] = {}
    kind: str | None = None  # "named" or "positional", fixed by the first placeholder
    used = 0
    i, n = 0, len(sql)
    while (j := sql.find("%", i)) >= 0:
        out.append(sql[i:j])
        directive = sql[j + 1 : j + 2]
        if directive == "%":
            out.append("%")
            i = j + 2
            continue
        if kind is not None and kind != ("named" if directive == "(" else "positional"):
            raise ProgrammingError("argument formats can't be mixed")
        if directive == "(":
            kind = "named"
            close = sql.find(")", j + 2)
            if close < 0 or "%" in sql[j + 2 : close]:
                raise ProgrammingError(f"incomplete placeholder at index {j}: '%(' without ')'")
            name = sql[j + 2 : close]
            if "(" in name:
                # psycopg2 itself would look up one name and format with another.
                raise ProgrammingError(f"parameter name {name!r} contains '('")
            _check_conversion(sql, close + 1)
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
            kind = "positional"
            _check_conversion(sql, j + 1)
            if isinstance(params, Mapping):
                raise ProgrammingError("%s placeholders need a sequence of parameters")
            if used >= len(params):
                raise ProgrammingError(
                    f"not enough parameters for the placeholders ({len(params)} given)"
                )
            values.append(params[used])
            used += 1
            out.append(f"${used}")
            i = j + 2
    out.append(sql[i:n])
    if kind == "positional" and used != len(params):
        raise ProgrammingError(
            f"not all arguments converted: {len(params)} parameters for {used} placeholders"
        )
    return "".join(out), values


def _check_conversion(sql: str, at: int) -> None:
    # Only %s exists in psycopg2 (its formatter rejects every other conversion).
    if at >= len(sql):
        raise ProgrammingError("incomplete format: the query ends with '%' (write '%%' for a %)")
    if sql[at] != "s":
        raise ProgrammingError(
            f"unsupported format character {sql[at]!r} (0x{ord(sql[at]):x}) at index {at} "
            "(write '%%' for a %)"
        )


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
        sql, values = convert_placeholders(operation, parameters)
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
        if any(other != sql for other, _ in batches):
            # One statement runs with every parameter set; psycopg2 would run
            # different texts here (some parameter sets being None).
            raise ProgrammingError("the parameter sets make different statements")
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

    ``options`` are :class:`~querybus.QueryClient`'s keyword arguments
    (``timeout``, ``token``, ``token_provider``, …), passed through.

    Raises:
        OperationalError: the bus cannot be reached.
    """
    client = SyncQueryClient(bus, **options)
    try:
        client.start()
    except qb.QueryBusError as exc:
        raise _translate(exc) from exc
    return Connection(client)
