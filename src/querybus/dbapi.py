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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from querybus import errors as qb
from querybus.client.result import Result
from querybus.client.sync import SyncQueryClient
from querybus.config import BusSettings
from querybus.protocol.values import encode_value

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


# -- exceptions ----------------------------------------------------------------------


class Warning(Exception):
    pass


class Diagnostics:
    """psycopg2's ``Error.diag``: the fields of the server's error report."""

    def __init__(
        self,
        sqlstate: str | None = None,
        message_primary: str | None = None,
        message_detail: str | None = None,
        message_hint: str | None = None,
    ) -> None:
        self.sqlstate = sqlstate
        self.message_primary = message_primary
        self.message_detail = message_detail
        self.message_hint = message_hint


class Error(Exception):
    """Base of the PEP 249 errors.

    As in psycopg2: ``pgcode`` is the SQLSTATE, ``pgerror`` the server's
    report (``"ERROR:  …\\nDETAIL:  …\\n"``), ``diag`` its fields, ``cursor``
    the cursor that ran the statement. The querybus error is chained
    (``__cause__``).
    """

    def __init__(
        self,
        message: str = "",
        *,
        pgcode: str | None = None,
        pgerror: str | None = None,
        diag: Diagnostics | None = None,
    ) -> None:
        super().__init__(message)
        self.pgcode = pgcode
        self.pgerror = message if pgerror is None else pgerror
        self.diag = diag or Diagnostics(pgcode, message or None)
        self.cursor: Cursor | None = None


_BaseError = Error


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


class TransactionRollbackError(OperationalError):
    """SQLSTATE class 40 (serialization failure, deadlock): run the transaction again.
    psycopg2.extensions.TransactionRollbackError."""


class QueryCanceledError(OperationalError):
    """SQLSTATE 57014 (statement timeout, cancel). psycopg2.extensions.QueryCanceledError."""


# psycopg2's mapping of SQLSTATE classes (the first two characters) to exceptions.
_BY_CLASS: dict[str, type[Error]] = {
    "0A": NotSupportedError,
    "08": OperationalError,  # connection exceptions (psycopg2 raises these from libpq)
    "20": ProgrammingError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": OperationalError,
    "27": OperationalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": OperationalError,
    "38": InternalError,
    "39": InternalError,
    "3B": InternalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": TransactionRollbackError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": InternalError,
    "HV": OperationalError,
    "P0": InternalError,
    "XX": InternalError,
}


def _error_class(exc: qb.QueryBusError) -> type[Error]:
    if isinstance(exc, qb.QueryError):
        code = exc.sqlstate or ""
        if code == "57014":
            return QueryCanceledError
        return _BY_CLASS.get(code[:2], DatabaseError)
    if isinstance(exc, (qb.RateLimitedError, qb.DeadlineExceededError)):
        return OperationalError  # refused for now, not for what it is
    if isinstance(exc, qb.RequestRejectedError):
        return ProgrammingError  # validation, permissions, size: the request itself
    if isinstance(exc, (qb.InterfaceError, qb.ConfigurationError)):
        return InterfaceError
    if isinstance(
        exc,
        (
            qb.TransportError,
            qb.RoutingError,
            qb.RegistryError,
            qb.TransactionLostError,
            qb.TransactionBusyError,
            qb.ResultTooLargeError,
        ),
    ):
        return OperationalError
    return InternalError


def _translate(exc: qb.QueryBusError, cursor: Cursor | None = None) -> Error:
    """The PEP 249 exception for a querybus error, classed by SQLSTATE as psycopg2 does."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, qb.QueryError):
        message = exc.message
        detail, hint = exc.detail, exc.hint
        report = f"ERROR:  {message}\n"
        if detail:
            report += f"DETAIL:  {detail}\n"
        if hint:
            report += f"HINT:  {hint}\n"
        err = _error_class(exc)(
            message,
            pgcode=sqlstate,
            pgerror=report,
            diag=Diagnostics(sqlstate, message, detail, hint),
        )
    else:
        err = _error_class(exc)(str(exc), pgcode=sqlstate)
    err.cursor = cursor
    return err


# -- types -------------------------------------------------------------------------

#: PostgreSQL's OIDs of the built-in types, by type name as the adapter reports it
#: (asyncpg's: ``int4[]`` for an array), for ``TypeCode.oid``.
_OIDS: dict[str, int] = {
    "bool": 16,
    "bytea": 17,
    "char": 18,
    "name": 19,
    "int8": 20,
    "int2": 21,
    "int4": 23,
    "regproc": 24,
    "text": 25,
    "oid": 26,
    "xid": 28,
    "json": 114,
    "xml": 142,
    "point": 600,
    "cidr": 650,
    "float4": 700,
    "float8": 701,
    "unknown": 705,
    "money": 790,
    "macaddr": 829,
    "inet": 869,
    "bpchar": 1042,
    "varchar": 1043,
    "date": 1082,
    "time": 1083,
    "timestamp": 1114,
    "timestamptz": 1184,
    "interval": 1186,
    "timetz": 1266,
    "bit": 1560,
    "varbit": 1562,
    "numeric": 1700,
    "uuid": 2950,
    "jsonb": 3802,
    "bool[]": 1000,
    "bytea[]": 1001,
    "char[]": 1002,
    "name[]": 1003,
    "int2[]": 1005,
    "int4[]": 1007,
    "text[]": 1009,
    "bpchar[]": 1014,
    "varchar[]": 1015,
    "int8[]": 1016,
    "float4[]": 1021,
    "float8[]": 1022,
    "oid[]": 1028,
    "timestamp[]": 1115,
    "date[]": 1182,
    "time[]": 1183,
    "timestamptz[]": 1185,
    "interval[]": 1187,
    "numeric[]": 1231,
    "timetz[]": 1270,
    "uuid[]": 2951,
    "json[]": 199,
    "jsonb[]": 3807,
}


class TypeCode(str):
    """``description[i][1]``: PostgreSQL's type name (``"int4"``, ``"varchar"``…).

    A ``str``, so it prints and compares as the name; it also compares equal
    to the type objects (``type_code == NUMBER``). psycopg2 gives the type's
    OID instead: :attr:`oid` has it for the built-in types.
    """

    __slots__ = ()

    @property
    def oid(self) -> int | None:
        """PostgreSQL's OID of the type when it is a built-in one, else None."""
        return _OIDS.get(str(self))


class DBAPITypeObject:
    """A PEP 249 type object: equal to the type codes (names or OIDs) of its types."""

    def __init__(self, name: str, *type_names: str) -> None:
        self.name = name
        self.values = frozenset(type_names)
        self.oids = frozenset(_OIDS[t] for t in type_names if t in _OIDS)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other in self.values
        if isinstance(other, int) and not isinstance(other, bool):
            return other in self.oids
        return self is other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((DBAPITypeObject, self.name))

    def __repr__(self) -> str:
        return f"<DBAPITypeObject {self.name}>"


STRING = DBAPITypeObject("STRING", "text", "varchar", "bpchar", "char", "name")
BINARY = DBAPITypeObject("BINARY", "bytea")
NUMBER = DBAPITypeObject("NUMBER", "int2", "int4", "int8", "float4", "float8", "numeric")
DATETIME = DBAPITypeObject(
    "DATETIME", "date", "time", "timetz", "timestamp", "timestamptz", "interval"
)
ROWID = DBAPITypeObject("ROWID", "oid")

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime


def DateFromTicks(ticks: float) -> _dt.date:
    return _dt.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> _dt.time:
    return _dt.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ticks)


def Binary(data: bytes | bytearray | memoryview | str) -> bytes:
    """A bytea value (``bytes``; psycopg2 returns a wrapper object)."""
    return data.encode() if isinstance(data, str) else bytes(data)


class Column(NamedTuple):
    """One item of ``cursor.description``: PEP 249's seven fields, with names as in psycopg2."""

    name: str
    type_code: TypeCode
    display_size: int | None = None
    internal_size: int | None = None
    precision: int | None = None
    scale: int | None = None
    null_ok: bool | None = None


# -- placeholders and adaptation --------------------------------------------------------

Params = Sequence[Any] | Mapping[str, Any]


def _scan(sql: str, params: Params) -> Iterator[tuple[str, Any]]:
    """Yield ``("text", str)`` and ``("param", key)`` pieces of ``sql`` as
    psycopg2's formatting reads it (``key``: an index for ``%s``, a name for
    ``%(name)s``). See :func:`convert_placeholders` for the rules.

    Raises:
        ProgrammingError: placeholders and parameters do not match.
    """
    if isinstance(params, (str, bytes, bytearray)) or not isinstance(params, (Sequence, Mapping)):
        raise ProgrammingError(
            f"parameters must be a sequence or a mapping, not {type(params).__name__}"
        )
    kind: str | None = None  # "named" or "positional", fixed by the first placeholder
    used = 0
    i, n = 0, len(sql)
    while (j := sql.find("%", i)) >= 0:
        if j > i:
            yield "text", sql[i:j]
        directive = sql[j + 1 : j + 2]
        if directive == "%":
            yield "text", "%"
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
            yield "param", name
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
            yield "param", used
            used += 1
            i = j + 2
    if i < n:
        yield "text", sql[i:n]
    if kind == "positional" and used != len(params):
        raise ProgrammingError(
            f"not all arguments converted: {len(params)} parameters for {used} placeholders"
        )


def _check_conversion(sql: str, at: int) -> None:
    # Only %s exists in psycopg2 (its formatter rejects every other conversion).
    if at >= len(sql):
        raise ProgrammingError("incomplete format: the query ends with '%' (write '%%' for a %)")
    if sql[at] != "s":
        raise ProgrammingError(
            f"unsupported format character {sql[at]!r} (0x{ord(sql[at]):x}) at index {at} "
            "(write '%%' for a %)"
        )


def _get(params: Params, key: Any) -> Any:
    return params[key]


def convert_placeholders(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    """Rewrite psycopg2's placeholders as PostgreSQL's ``$1…``, reading ``%`` as psycopg2 does.

    psycopg2 merges parameters into the query with Python's ``%`` formatting
    and never looks at SQL quoting, so the same text must mean the same here,
    or the data silently differs (``'100%%'`` is stored as ``100%`` by psycopg2):

    * ``params`` is None: the query is used as it is; ``%`` means nothing.
    * Otherwise (a sequence or a mapping, even an empty one) every ``%``
      starts a directive, wherever it is, also inside string literals, quoted
      identifiers, dollar quotes and comments: ``%%`` is one ``%``, ``%s`` is
      the next parameter of a sequence, ``%(name)s`` the parameter ``name`` of
      a mapping (the same ``$n`` however often it appears). A ``%``
      followed by anything else is an error.
    * A query without placeholders ignores the parameters it is given, as
      psycopg2 does; with ``%s`` placeholders, their count must match.
    * Values are adapted as psycopg2 adapts them: a tuple is a parenthesized
      list of values, one placeholder each (``IN %s`` with ``(1, 2)`` is
      ``IN ($1, $2)``; nested tuples nest; ``()`` is ``()``, which PostgreSQL
      refuses, as with psycopg2); a list is an array; None is NULL.

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
    out: list[str] = []
    values: list[Any] = []
    named: dict[str, str] = {}

    def place(value: Any) -> str:
        if isinstance(value, tuple):
            return "(" + ", ".join(place(v) for v in value) + ")"
        values.append(value)
        return f"${len(values)}"

    for what, piece in _scan(sql, params):
        if what == "text":
            out.append(piece)
        elif isinstance(piece, str):
            if piece not in named:
                named[piece] = place(_get(params, piece))
            out.append(named[piece])
        else:
            out.append(place(_get(params, piece)))
    return "".join(out), values


def mogrify(sql: str, params: Params | None = None) -> bytes:
    """The query as psycopg2 would send it: parameters merged as SQL literals, UTF-8.

    querybus never sends this text (values travel apart from the query, as
    ``$n`` parameters); it is for logs and debugging, as ``cursor.query`` is.

    Raises:
        ProgrammingError: placeholders and parameters do not match, or a value
            has no SQL literal form ("can't adapt type").
        ValueError: a string holds a NUL character (as in psycopg2).
    """
    if params is None:
        return sql.encode()
    out: list[str] = []
    for what, piece in _scan(sql, params):
        out.append(piece if what == "text" else _literal(_get(params, piece)))
    return "".join(out).encode()


def _quote(text: str) -> str:
    if "\x00" in text:
        raise ValueError("A string literal cannot contain NUL (0x00) characters.")
    return "'" + text.replace("'", "''") + "'"


def _number(text: str) -> str:
    # A space before a minus, as psycopg2 writes it: "x -%s" with -1 is not a comment.
    return f" {text}" if text.startswith("-") else text


def _literal(value: Any) -> str:
    """``value`` as a PostgreSQL literal, written the way psycopg2 writes it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _number(str(int(value)))
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::float"
        if math.isinf(value):
            return "'Infinity'::float" if value > 0 else "'-Infinity'::float"
        return _number(repr(value))
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return "'NaN'::numeric"
        if value.is_infinite():
            return "'Infinity'::numeric" if value > 0 else "'-Infinity'::numeric"
        return _number(str(value))
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"'\\x{bytes(value).hex()}'::bytea"
    if isinstance(value, _dt.datetime):
        kind = "timestamp" if value.tzinfo is None else "timestamptz"
        return f"'{value.isoformat()}'::{kind}"
    if isinstance(value, _dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, _dt.time):
        kind = "time" if value.tzinfo is None else "timetz"
        return f"'{value.isoformat()}'::{kind}"
    if isinstance(value, _dt.timedelta):
        seconds = value.seconds + value.microseconds / 1e6
        return f"'{value.days} days {seconds:.6f} seconds'::interval"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, list):
        if not value:
            return "'{}'"
        return "ARRAY[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return _quote(json.dumps(value))
    raise ProgrammingError(f"can't adapt type '{type(value).__name__}'")


def _check_adaptable(values: Sequence[Any]) -> None:
    # psycopg2 refuses a value it cannot adapt with ProgrammingError before
    # sending; the wire encoder would raise querybus's ProtocolError instead.
    for value in values:
        if type(value) not in _NATIVE:
            try:
                encode_value(value)
            except qb.ProtocolError:
                raise ProgrammingError(f"can't adapt type '{type(value).__name__}'") from None


_NATIVE = frozenset({str, int, bool, float, type(None)})


def _rowcount(result: Result) -> int:
    # psycopg2's rowcount is the command tag's count (SELECT n, INSERT 0 n,
    # UPDATE n…) and -1 for a statement whose tag has none (DDL, SET…).
    tag = result.command.rsplit(" ", 1)[-1]
    if tag.isdigit():
        return result.rowcount
    return len(result.rows) if result.columns else -1


def _lastrowid(result: Result) -> int:
    # psycopg2 gives the OID of the INSERT's tag (``INSERT oid rows``): 0
    # unless the table has OIDs, which PostgreSQL 12 and later never do.
    parts = result.command.split()
    if len(parts) == 3 and parts[0] == "INSERT" and parts[1].isdigit():
        return int(parts[1])
    return 0


# -- cursors ------------------------------------------------------------------------


class Cursor:
    """A PEP 249 cursor, client-side like psycopg2's unnamed cursors: each
    ``execute`` brings the whole result.

    Attributes:
        arraysize: rows per ``fetchmany()`` by default.
        rowcount: rows returned or affected by the last statement; -1 before
            any, and after a statement without a count (DDL).
        lastrowid: the OID in the last INSERT's command tag: 0 on
            PostgreSQL 12+, as psycopg2 gives (use ``RETURNING id``).
        statusmessage: the last statement's command tag (``"UPDATE 3"``).
        rownumber: the index of the next row ``fetchone()`` returns.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self.rowcount = -1
        self.lastrowid = 0
        self.statusmessage: str | None = None
        self.rownumber = 0
        self.name: str | None = None
        self._result: Result | None = None
        self._description: list[Column] | None = None
        self._query: tuple[str, Params | None] | None = None
        self._closed = False

    # -- state --

    @property
    def closed(self) -> bool:
        """True once the cursor or its connection is closed."""
        return self._closed or self.connection.closed

    @property
    def description(self) -> list[Column] | None:
        """One :class:`Column` per result column, or None after a statement without rows."""
        return self._description

    @property
    def query(self) -> bytes | None:
        """The last query as psycopg2 would have sent it (see :func:`mogrify`)."""
        if self._query is None:
            return None
        return mogrify(*self._query)

    def _check(self) -> Connection:
        if self.closed:
            raise InterfaceError("cursor already closed")
        return self.connection

    def _reset(self) -> None:
        self._result = None
        self._description = None
        self.rowcount = -1
        self.rownumber = 0
        self.statusmessage = None

    # -- running statements --

    def execute(self, query: str | bytes, vars: Params | None = None) -> None:
        """Run one statement (in the connection's transaction unless autocommit).

        Raises:
            ProgrammingError: placeholders do not fit the parameters, a value
                cannot be adapted, or the database refused the statement's SQL.
            Error: the PEP 249 class of the database's or the bus's error.
        """
        conn = self._check()
        sql = query.decode() if isinstance(query, bytes) else query
        self._reset()
        self._query = (sql, vars)
        text, values = convert_placeholders(sql, vars)
        _check_adaptable(values)
        result = conn._run(self, text, values)
        self._result = result
        if result.columns:
            self._description = [Column(c.name, TypeCode(c.type)) for c in result.columns]
        self.rowcount = _rowcount(result)
        self.lastrowid = _lastrowid(result)
        self.statusmessage = result.command

    def executemany(self, query: str | bytes, vars_list: Sequence[Params]) -> None:
        """Run one statement once per parameter set (in the connection's
        transaction unless autocommit, where the whole batch is one
        transaction). Results are discarded, as psycopg2 does; ``rowcount``
        is the number of parameter sets.
        """
        conn = self._check()
        sql = query.decode() if isinstance(query, bytes) else query
        self._reset()
        batches = [convert_placeholders(sql, p) for p in vars_list]
        for _, values in batches:
            _check_adaptable(values)
        self._query = (sql, vars_list[-1]) if batches else None
        if not batches:
            return
        first = batches[0][0]
        if all(text == first for text, _ in batches):
            conn._run_many(self, first, [values for _, values in batches])
        else:
            # Tuples of different lengths make different statements: one by one.
            for text, values in batches:
                conn._run(self, text, values)
        self.rowcount = len(batches)

    def callproc(self, procname: str, parameters: Params | None = None) -> Params | None:
        """Call a function as psycopg2 does: ``SELECT * FROM procname(…)``;
        its rows are the result set. A mapping passes named arguments
        (``name := value``). Returns ``parameters`` unchanged.
        """
        self._check()
        if parameters is None:
            self.execute(f"SELECT * FROM {procname}()")
        elif isinstance(parameters, Mapping):
            args = ", ".join(
                f"{_identifier(name)} := %({name})s" for name in parameters if isinstance(name, str)
            )
            self.execute(f"SELECT * FROM {procname}({args})", parameters)
        else:
            marks = ", ".join(["%s"] * len(parameters))
            self.execute(f"SELECT * FROM {procname}({marks})", parameters)
        return parameters

    def mogrify(self, query: str | bytes, vars: Params | None = None) -> bytes:
        """The query with its parameters merged in, as psycopg2 returns it (see :func:`mogrify`)."""
        self._check()
        return mogrify(query.decode() if isinstance(query, bytes) else query, vars)

    # -- fetching --

    def _rows(self) -> list[Any]:
        if self.closed:
            raise InterfaceError("cursor already closed")
        if self._result is None or self._description is None:
            self.rowcount = -1  # psycopg2 forgets the count when a fetch fails so
            raise ProgrammingError("no results to fetch")
        return self._result.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._rows()
        if self.rownumber >= len(rows):
            return None
        self.rownumber += 1
        return tuple(rows[self.rownumber - 1])

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        rows = self._rows()
        size = self.arraysize if size is None else size
        chunk = rows[self.rownumber : self.rownumber + size]
        self.rownumber += len(chunk)
        return [tuple(r) for r in chunk]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows()
        chunk = rows[self.rownumber :]
        self.rownumber = len(rows)
        return [tuple(r) for r in chunk]

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Move in the result, as psycopg2's client-side cursors do."""
        rows = self._rows()
        if mode == "relative":
            target = self.rownumber + value
        elif mode == "absolute":
            target = value
        else:
            raise ProgrammingError("scroll mode must be 'relative' or 'absolute'")
        if not 0 <= target < len(rows):
            raise ProgrammingError("scroll destination out of bounds")
        self.rownumber = target

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def nextset(self) -> bool | None:
        raise NotSupportedError("not supported by PostgreSQL")

    def setinputsizes(self, sizes: Any) -> None:
        """Does nothing (PEP 249 allows it)."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """Does nothing (PEP 249 allows it)."""

    def copy_from(self, *args: Any, **kwargs: Any) -> None:
        raise NotSupportedError("COPY does not travel on the bus; use executemany")

    copy_to = copy_expert = copy_from

    def close(self) -> None:
        """Close the cursor (its connection and transaction stay as they are). Idempotent."""
        self._closed = True
        self._result = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- connections ----------------------------------------------------------------------


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
            self._tx = client.begin(
                isolation=None if self._isolation is None else _ISOLATION_WIRE[self._isolation],
                readonly=bool(self._readonly),
                deferrable=bool(self._deferrable),
            )
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


def connect(
    bus: str | BusSettings = "127.0.0.1:9092",
    *,
    cursor_factory: Callable[..., Cursor] | None = None,
    **options: Any,
) -> Connection:
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
    return Connection(client, cursor_factory=cursor_factory)
