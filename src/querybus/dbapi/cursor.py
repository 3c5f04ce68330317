"""The PEP 249 cursor: client-side, like psycopg2's unnamed cursors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from querybus.client.result import Result
from querybus.dbapi.errors import InterfaceError, NotSupportedError, ProgrammingError
from querybus.dbapi.placeholders import Params, _check_adaptable, convert_placeholders, mogrify
from querybus.dbapi.types import Column, TypeCode

if TYPE_CHECKING:
    from querybus.dbapi.connection import Connection


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
