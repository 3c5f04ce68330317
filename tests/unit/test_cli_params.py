"""Command-line parameters are typed the way a user expects, and never changed.

Issue 7, defect 10: ``querybus query 'SELECT $1' 02134`` sent the integer 2134.
A number is only a number when it reads back exactly as typed; anything else
is text, and ``--param-type N=TYPE`` says otherwise explicitly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from querybus.cli.common import (
    PARAM_TYPES,
    build_params,
    convert_param,
    jsonable,
    parse_param,
    parse_param_types,
)
from querybus.cli.main import app


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("41", 41),
        ("-3", -3),
        ("0", 0),
        ("4.5", 4.5),
        ("-0.25", -0.25),
        ("0.1", 0.1),
        ("1e+30", 1e30),
        ("12345678901234567890", 12345678901234567890),
        ("true", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("null", None),
        ("NULL", None),
        ("'41'", "41"),
        ('"41"', "41"),
        ("'true'", "true"),
        ("'null'", "null"),
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


@pytest.mark.parametrize(
    "text",
    [
        # Leading zeros: zip codes, account numbers, ids.
        "02134",
        "007",
        "00",
        "-01",
        "0.50",
        "00.5",
        # Forms int()/float() accept but that do not print back the same.
        "+5",
        "-0",
        "1_000",
        " 42",
        "42 ",
        "1e3",
        "1E3",
        "1.50",
        "1.0e2",
        ".5",
        "5.",
        "1_0.5",
        "١٢",  # Arabic-Indic digits: int() reads them, str() does not write them
        "1٢",
        # Words float() reads as numbers.
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        # Words that looked like null or bool before.
        "None",
        "none",
        "yes",
        "t",
        # A value with '::' in it is text like any other: there is no suffix syntax.
        "a::int",
        "02134::int",
        "41::text",
    ],
)
def test_values_that_would_not_read_back_are_sent_as_text(text: str) -> None:
    got = parse_param(text)
    assert got == text
    assert type(got) is str


@pytest.mark.parametrize(
    ("type_name", "text", "expected"),
    [
        ("int", "02134", 2134),
        ("integer", "+5", 5),
        ("bigint", "-0", 0),
        ("text", "41", "41"),
        ("str", "true", "true"),
        ("varchar", "null", "null"),
        ("TEXT", "'quoted'", "'quoted'"),
        ("text", "[1,2]", "[1,2]"),
        ("text", "", ""),
        ("float", "1e3", 1000.0),
        ("float8", "02.50", 2.5),
        ("numeric", "1.50", Decimal("1.50")),
        ("decimal", "0001", Decimal("1")),
        ("bool", "yes", True),
        ("boolean", "F", False),
        ("bool", "1", True),
        ("json", '"abc"', '"abc"'),
        ("jsonb", "5", "5"),
        ("json", '{"a": 1}', '{"a": 1}'),
        ("date", "2026-11-27", dt.date(2026, 11, 27)),
        ("time", "12:30:00", dt.time(12, 30)),
        (
            "timestamptz",
            "2026-11-27T12:00:00+00:00",
            dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
        ),
        ("uuid", "00000000-0000-0000-0000-000000000001", uuid.UUID(int=1)),
        ("bytea", "\\xdead", b"\xde\xad"),
        ("bytes", "beef", b"\xbe\xef"),
    ],
)
def test_convert_param(type_name: str, text: str, expected: Any) -> None:
    got = convert_param(text, type_name)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("type_name", "text"),
    [
        ("int", "abc"),
        ("int", "1.5"),
        ("float", "x"),
        ("numeric", "1,5"),
        ("bool", "maybe"),
        ("json", "{not json"),
        ("date", "27/11/2026"),
        ("uuid", "not-a-uuid"),
        ("bytea", "xyz"),
    ],
)
def test_convert_param_refuses_what_is_not_of_the_type(type_name: str, text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not a valid"):
        convert_param(text, type_name)


def test_every_type_name_maps_to_a_converter() -> None:
    sample = {
        "date": "2026-01-01",
        "time": "12:00",
        "timestamp": "2026-01-01T12:00",
        "uuid": str(uuid.UUID(int=7)),
        "bytea": "01",
    }
    for alias, canonical in PARAM_TYPES.items():
        convert_param(sample.get(canonical, "1"), alias)


def test_parse_param_types() -> None:
    assert parse_param_types(["1=int", "$3=TEXT", " 2 = jsonb"], 3) == {
        0: "int",
        2: "text",
        1: "json",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("int", "use N=TYPE"),
        ("x=int", "use N=TYPE"),
        ("-1=int", "use N=TYPE"),
        ("1=integer2", "unknown type"),
        ("0=int", "no parameter"),
        ("3=int", "no parameter"),
    ],
)
def test_parse_param_types_refuses_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        parse_param_types([spec], 2)


def test_parse_param_types_refuses_a_parameter_typed_twice() -> None:
    with pytest.raises(typer.BadParameter, match="already"):
        parse_param_types(["1=int", "$1=text"], 1)


def test_build_params_mixes_typed_inferred_and_raw() -> None:
    assert build_params(["02134", "41", "x::int"], ["1=int"]) == [2134, 41, "x::int"]
    assert build_params(["02134", "41", "true"], ["1=int"], raw=True) == [2134, "41", "true"]
    assert build_params(["41"], ["1=text"]) == ["41"]
    assert build_params([]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "2=int", "5"], "no parameter $2"),
        (["-t", "1=int", "abc"], "not a valid int"),
        (["--param-type", "1=money", "5"], "unknown type"),
    ],
)
def test_query_command_refuses_bad_param_types_before_connecting(
    args: list[str], message: str
) -> None:
    # Exit 2 (usage) before any connection: the bus address below does not exist.
    result = CliRunner().invoke(
        app,
        ["query", "SELECT $1", *args],
        env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "QUERYBUS_REGISTRY": "", "COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_jsonable_makes_every_value_printable() -> None:
    assert jsonable(Decimal("1.5")) == "1.5"
    assert jsonable(uuid.UUID(int=0)) == "00000000-0000-0000-0000-000000000000"
    assert jsonable(dt.date(2020, 1, 2)) == "2020-01-02"
    assert jsonable(dt.timedelta(seconds=90)) == 90.0
    assert jsonable(b"\x00") == "AA=="
    assert jsonable({"a": [Decimal("1")]}) == {"a": ["1"]}
    assert jsonable("text") == "text"
