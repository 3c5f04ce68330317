"""Typed values on the wire: every supported Python type survives JSON unchanged."""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from querybus.errors import ProtocolError
from querybus.protocol import decode_row, decode_rows, decode_value, encode_row, encode_rows
from querybus.protocol import encode_value as enc

PLUS_5_30 = dt.timezone(dt.timedelta(hours=5, minutes=30))


def through_json(value: Any) -> Any:
    """Encode, write as JSON bytes, read back, decode: the whole wire trip."""
    return decode_value(msgspec.json.decode(msgspec.json.encode(enc(value))))


VALUES: list[Any] = [
    0,
    -1,
    2**63 - 1,
    -(2**63),
    10**30,
    1.5,
    -0.0,
    1e-300,
    "",
    "héllo ✓ 🚀",
    "$dec looks like a tag but is a string",
    True,
    False,
    None,
    b"",
    b"\x00\x01\xff",
    Decimal("12345678901234567890.000000001"),
    Decimal("-0.1"),
    Decimal("Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    dt.date(2026, 11, 27),
    dt.date(1, 1, 1),
    dt.time(0, 0),
    dt.time(23, 59, 59, 999999),
    dt.time(12, 0, tzinfo=PLUS_5_30),
    dt.datetime(2026, 11, 27, 12, 0, 0, 1),
    dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 27, 12, 0, tzinfo=PLUS_5_30),
    dt.timedelta(0),
    dt.timedelta(days=3, seconds=7200, microseconds=5),
    dt.timedelta(seconds=-1),
    dt.timedelta(days=-10_000, microseconds=1),
    {"a": 1, "b": [1, 2, {"c": None}], "$dec": "not a tag inside json"},
    {},
    [1, 2, 3],
    [],
    ["a", None, "b"],
    [[1, 2], [3, 4]],
    [Decimal("1.5"), uuid.UUID(int=1), dt.date(2020, 1, 1)],
    [{"a": 1}, {"b": [2]}],
]


@pytest.mark.parametrize(
    "value", VALUES, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(VALUES)]
)
def test_value_round_trips_with_its_type(value: Any) -> None:
    got = through_json(value)
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, dt.datetime | dt.time):
        assert got.tzinfo == value.tzinfo
    if isinstance(value, list):
        assert [type(x) for x in got] == [type(x) for x in value]


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_floats_round_trip(value: float) -> None:
    assert through_json(value) == value


def test_nan_round_trips() -> None:
    got = through_json(math.nan)
    assert isinstance(got, float)
    assert math.isnan(got)
    dec = through_json(Decimal("NaN"))
    assert isinstance(dec, Decimal)
    assert dec.is_nan()


def test_json_native_values_travel_as_themselves() -> None:
    for v in (1, "x", True, None, 1.5):
        assert enc(v) == v
    assert enc([1, "x"]) == [1, "x"]
    assert enc(Decimal("1.5")) == {"$dec": Decimal("1.5")}
    assert enc({"a": 1}) == {"$json": {"a": 1}}
    assert enc(dt.timedelta(days=1, seconds=2, microseconds=3)) == {"$td": [1, 2, 3]}
    assert msgspec.json.encode(enc(b"\x00")) == b'{"$bytes":"AA=="}'


def test_similar_types_are_normalised() -> None:
    class Color(enum.IntEnum):
        RED = 1

    class Name(str):
        pass

    assert through_json(bytearray(b"ab")) == b"ab"
    assert through_json(memoryview(b"ab")) == b"ab"
    assert through_json((1, 2)) == [1, 2]
    assert type(through_json(Color.RED)) is int
    assert type(through_json(Name("n"))) is str


@pytest.mark.parametrize("value", [object(), {1, 2}, complex(1, 2), frozenset()])
def test_unsupported_type_is_a_protocol_error(value: Any) -> None:
    with pytest.raises(ProtocolError, match=type(value).__name__):
        enc(value)


@pytest.mark.parametrize(
    "wire",
    [
        {"$nope": 1},
        {"a": 1, "b": 2},
        {},
        {"$dec": "not a number"},
        {"$uuid": "zzz"},
        {"$date": "2026-13-45"},
        {"$dt": 5},
        {"$td": [1]},
        {"$bytes": "!!!"},
        {"$bytes": "QQ"},  # bad padding
        [{"$time": "25:00"}],
    ],
)
def test_malformed_tagged_value_is_a_protocol_error(wire: Any) -> None:
    with pytest.raises(ProtocolError):
        decode_value(wire)


def test_rows_round_trip() -> None:
    rows = [[1, Decimal("2.5"), None, [dt.date(2020, 1, 2)]], ["x", b"y", {"z": 1}, []]]
    wire = msgspec.json.decode(msgspec.json.encode(encode_rows(rows)))
    assert decode_rows(wire) == rows
    row = rows[0]
    assert decode_row(msgspec.json.decode(msgspec.json.encode(encode_row(row)))) == row
