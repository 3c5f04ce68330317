"""Command-line parameters are typed the way a user expects."""

from __future__ import annotations

from typing import Any

import pytest

from querybus.cli.common import jsonable, parse_param


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("41", 41),
        ("-3", -3),
        ("0", 0),
        ("4.5", 4.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("true", True),
        ("TRUE", True),
        ("false", False),
        ("null", None),
        ("NULL", None),
        ("'41'", "41"),
        ('"41"', "41"),
        ("'true'", "true"),
        ('{"a":1}', {"a": 1}),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[1,2,3]", [1, 2, 3]),
        ("hello", "hello"),
        ("hello world", "hello world"),
        ("", ""),
        ("{not json", "{not json"),
        ("2026-11-27", "2026-11-27"),
    ],
)
def test_parse_param(text: str, expected: Any) -> None:
    got = parse_param(text)
    assert got == expected
    assert type(got) is type(expected)


def test_jsonable_makes_every_value_printable() -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal

    assert jsonable(Decimal("1.5")) == "1.5"
    assert jsonable(uuid.UUID(int=0)) == "00000000-0000-0000-0000-000000000000"
    assert jsonable(dt.date(2020, 1, 2)) == "2020-01-02"
    assert jsonable(dt.timedelta(seconds=90)) == 90.0
    assert jsonable(b"\x00") == "AA=="
    assert jsonable({"a": [Decimal("1")]}) == {"a": ["1"]}
    assert jsonable("text") == "text"
