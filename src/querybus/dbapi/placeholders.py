"""psycopg2's placeholders and adaptation: ``%s``/``%(name)s`` to ``$n``, and :func:`mogrify`.

:func:`convert_placeholders` reads ``%`` exactly as psycopg2's formatting does
and adapts values as psycopg2 does (a tuple is a list of values, a list an
array, None NULL); :func:`mogrify` writes the query as psycopg2 would have sent
it, values as SQL literals; :func:`_check_adaptable` refuses, before sending,
a value the wire cannot carry.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from querybus import errors as qb
from querybus.dbapi.errors import ProgrammingError
from querybus.protocol.values import encode_value

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
