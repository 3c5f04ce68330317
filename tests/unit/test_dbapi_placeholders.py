"""querybus.dbapi reads ``%`` exactly as psycopg2 does.

psycopg2 formats the query with Python's ``%`` operator (restricted to ``%s``)
when parameters are given and sends it untouched when they are None; it never
looks at SQL quoting. Any other reading silently changes data: ``'100%%'`` with
parameters is stored as ``100%`` by psycopg2.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

import querybus.dbapi as dbapi
from querybus.dbapi import ProgrammingError, convert_placeholders


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        # %% is one % once there are parameters, whatever kind they are.
        ("INSERT INTO t VALUES (%s, '100%%')", (1,), ("INSERT INTO t VALUES ($1, '100%')", [1])),
        (
            "INSERT INTO t VALUES (%(id)s, '100%%')",
            {"id": 1},
            ("INSERT INTO t VALUES ($1, '100%')", [1]),
        ),
        ("SELECT '100%%'", (), ("SELECT '100%'", [])),
        ("SELECT '100%%'", {}, ("SELECT '100%'", [])),
        ("SELECT '100%%'", [], ("SELECT '100%'", [])),
        # Without parameters nothing is interpreted: psycopg2 sends the text as written.
        ("SELECT '100%%', '%s', 50%", None, ("SELECT '100%%', '%s', 50%", [])),
        ("SELECT %(a)s", None, ("SELECT %(a)s", [])),
        # %%s is a % followed by an s, not a placeholder.
        ("SELECT '%%s', %s", ("x",), ("SELECT '%s', $1", ["x"])),
        ("SELECT '%%%s'", ("x",), ("SELECT '%$1'", ["x"])),
        ("SELECT '%%(a)s', %(a)s", {"a": 1}, ("SELECT '%(a)s', $1", [1])),
        # Quotes, dollar quotes and comments are not special: psycopg2 substitutes there too.
        (
            "SELECT 'a%%b', \"c%%d\", $$e%%f$$, $q$%%$q$ -- 5%%\n",
            (),
            ("SELECT 'a%b', \"c%d\", $$e%f$$, $q$%$q$ -- 5%\n", []),
        ),
        ("SELECT x LIKE '%%' || %s || '%%'", ("ab",), ("SELECT x LIKE '%' || $1 || '%'", ["ab"])),
        # A name is one parameter however often it appears; order of first appearance.
        (
            "SELECT %(b)s, %(a)s, %(b)s",
            {"a": 1, "b": 2, "unused": 3},
            ("SELECT $1, $2, $1", [2, 1]),
        ),
        ("VALUES (%s, %s)", (1, None), ("VALUES ($1, $2)", [1, None])),
        # No placeholders at all: psycopg2 ignores the parameters it was given.
        ("SELECT 1", (1, 2), ("SELECT 1", [])),
        ("SELECT 100%%", (1,), ("SELECT 100%", [])),
        ("", (), ("", [])),
    ],
)
def test_conversion(sql: str, params: Any, expected: tuple[str, list[Any]]) -> None:
    assert convert_placeholders(sql, params) == expected


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        # A % followed by anything but %, s or (name)s (psycopg2: ValueError).
        ("SELECT '50%'", (), "unsupported format character"),
        ("SELECT '50% off'", {}, "unsupported format character"),
        ("SELECT %d", (1,), "unsupported format character 'd'"),
        ("SELECT %(a)d", {"a": 1}, "unsupported format character 'd'"),
        ("SELECT 100%", (), "incomplete format"),
        ("SELECT %(a)", {"a": 1}, "incomplete format"),
        ("SELECT %(a", {"a": 1}, "without ')'"),
        ("SELECT %(a%%)s", {"a": 1}, "without ')'"),
        # Mixing named and positional placeholders (psycopg2: ProgrammingError).
        ("SELECT %s, %(a)s", (1,), "can't be mixed"),
        ("SELECT %(a)s, %s", {"a": 1}, "can't be mixed"),
        ("SELECT %(a)s, '50%'", {"a": 1}, "can't be mixed"),
        # Placeholders that do not fit the parameters.
        ("VALUES (%s, %s)", (1,), "not enough parameters"),
        ("VALUES (%s)", (), "not enough parameters"),
        ("VALUES (%s)", (1, 2), "not all arguments converted"),
        ("VALUES (%(missing)s)", {"a": 1}, "no parameter named 'missing'"),
        ("VALUES (%s)", {"a": 1}, "need a sequence"),
        ("VALUES (%(a)s)", (1,), "need a mapping"),
        # A string is not a sequence of parameters here: always a forgotten comma.
        ("VALUES (%s)", "x", "sequence or a mapping"),
        ("VALUES (%s)", b"x", "sequence or a mapping"),
        ("VALUES (%s)", {1, 2}, "sequence or a mapping"),
    ],
)
def test_mismatches_are_programming_errors(sql: str, params: Any, message: str) -> None:
    with pytest.raises(ProgrammingError, match=re.escape(message)):
        convert_placeholders(sql, params)


def _psycopg2_positional(sql: str, count: int) -> str:
    """What psycopg2 sends for ``sql`` with ``count`` positional parameters,
    each parameter shown as its ``$n`` marker (raises where psycopg2 raises).

    psycopg2 sends the text untouched when it holds no ``%``, formats it with
    an empty tuple when it holds only ``%%`` pairs, and otherwise formats it
    with all the parameters (Python's ``%``: too few or too many raise).
    """
    if "%" not in sql:
        return sql
    if "%" not in sql.replace("%%", ""):
        return sql % ()
    return sql % tuple(f"${i + 1}" for i in range(count))


def test_positional_conversion_matches_pythons_formatting_on_generated_queries() -> None:
    # No character of this alphabet is a flag, width or conversion Python accepts
    # besides s, so Python's formatter accepts exactly what psycopg2 accepts.
    alphabet = ["%", "%", "%", "s", "(", ")", "'", "$", "b", "x", "\n"]
    rng = random.Random(11)
    outcomes = {"converted": 0, "refused": 0}
    for _ in range(5000):
        sql = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        count = rng.randint(0, 3)
        params = [f"p{i}" for i in range(count)]
        try:
            expected: str | None = _psycopg2_positional(sql, count)
        except (TypeError, ValueError):
            expected = None
        if expected is None:
            with pytest.raises(ProgrammingError):
                convert_placeholders(sql, params)
            outcomes["refused"] += 1
            continue
        converted, values = convert_placeholders(sql, params)
        assert converted == expected, (sql, params)
        used = expected.count("$") - sql.count("$")
        assert values == params[:used], (sql, params)
        outcomes["converted"] += 1
    # Both outcomes are well exercised.
    assert min(outcomes.values()) > 500, outcomes


def test_executemany_converts_every_parameter_set() -> None:
    # The module-level function is what Cursor.executemany uses per set.
    sets = [{"id": 1, "note": "a"}, {"note": "b", "id": 2}]
    converted = [convert_placeholders("VALUES (%(id)s, %(note)s, '5%%')", p) for p in sets]
    assert converted == [
        ("VALUES ($1, $2, '5%')", [1, "a"]),
        ("VALUES ($1, $2, '5%')", [2, "b"]),
    ]


def test_paramstyle_is_psycopg2s() -> None:
    assert dbapi.paramstyle == "pyformat"
