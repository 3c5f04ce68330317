"""Typed values on the wire.

JSON has no Decimal, UUID, bytes, dates or times, so those travel as a
one-key object whose key starts with ``$``::

    {"$dec": "12.50"}   {"$uuid": "…"}     {"$bytes": "<base64>"}
    {"$date": "2026-11-27"}  {"$time": "12:00:00+01:00"}
    {"$dt": "2026-11-27T12:00:00.123456+00:00"}   (naive when no offset)
    {"$td": [days, seconds, microseconds]}
    {"$float": "nan" | "inf" | "-inf"}
    {"$json": <any JSON>}                (a dict, or a JSON document as is)

int, finite float, str, bool and null travel as themselves; a Python list is
a JSON array of encoded values (a PostgreSQL array, or a json list when the
parameter's type is json/jsonb). Because every JSON object in value position
is one of the tags above, decoding is unambiguous.

Fast path: values whose type is JSON-native are returned untouched, so a
typical row costs one ``type()`` lookup per cell.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from querybus.errors import ProtocolError

__all__ = [
    "decode_row",
    "decode_rows",
    "decode_value",
    "encode_row",
    "encode_rows",
    "encode_value",
    "settle_rows",
    "settle_value",
    "unchanged_size",
]


def _enc_float(v: float) -> Any:
    # msgspec would write NaN and ±inf as null; keep them.
    if math.isfinite(v):
        return v
    return {"$float": repr(v)}


def _enc_list(v: Sequence[Any]) -> list[Any]:
    return [encode_value(x) for x in v]


# Values wrapped as-is: msgspec writes Decimal, UUID, bytes (base64) and the
# ISO 8601 forms of dates and times in C, which is several times faster than
# str()/isoformat() here.
_PASS = frozenset({str, int, bool, type(None)})
_ENCODERS: dict[type, Callable[[Any], Any]] = {
    float: _enc_float,
    Decimal: lambda v: {"$dec": v},
    UUID: lambda v: {"$uuid": v},
    bytes: lambda v: {"$bytes": v},
    bytearray: lambda v: {"$bytes": bytes(v)},
    memoryview: lambda v: {"$bytes": bytes(v)},
    dt.datetime: lambda v: {"$dt": v},
    dt.date: lambda v: {"$date": v},
    dt.time: lambda v: {"$time": v},
    dt.timedelta: lambda v: {"$td": [v.days, v.seconds, v.microseconds]},
    dict: lambda v: {"$json": v},
    list: _enc_list,
    tuple: _enc_list,
}


def encode_value(v: Any) -> Any:
    """Turn one Python value into its JSON-safe wire form.

    Raises:
        ProtocolError: the value's type cannot travel on the wire.
    """
    t = type(v)
    if t in _PASS:
        return v
    enc = _ENCODERS.get(t)
    if enc is not None:
        return enc(v)
    # Subclasses: an IntEnum, a str subclass, asyncpg's Record, a UUID subclass…
    if isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return int(v)
    for base, fn in _ENCODERS.items():
        if isinstance(v, base):
            return fn(v)
    raise ProtocolError(f"values of type {t.__name__} cannot travel on the wire")


def encode_row(row: Sequence[Any]) -> list[Any]:
    """Encode one row (or one parameter list)."""
    return [v if type(v) in _PASS else encode_value(v) for v in row]


def encode_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [[v if type(v) in _PASS else encode_value(v) for v in row] for row in rows]


_INT64 = 2**63


def unchanged_size(values: Sequence[Any]) -> int | None:
    """An upper bound of the JSON size of ``values`` when every one crosses
    the wire unchanged (ASCII text, an integer of 64 bits, a finite float, a
    boolean, None), so that the trip may be skipped; None when one may not.

    Direct mode's lean path uses it: such parameters arrive exactly as
    given, and a request whose bound is far below the size limit fits
    without being encoded. (Non-ASCII text may hold lone surrogates, which
    the encoder refuses: it takes the trip, and is refused alike.)
    """
    size = 2
    for v in values:
        t = type(v)
        if t is str:
            if not v.isascii():
                return None
            size += 6 * len(v) + 3  # every character escaped (\u00XX) at worst
        elif t is int:
            if not -_INT64 <= v < _INT64:
                return None
            size += 21
        elif t is float:
            if not math.isfinite(v):
                return None
            size += 26
        elif t is bool or v is None:
            size += 6
        else:
            return None
    return size


def _time(s: str) -> dt.time:
    return dt.time.fromisoformat(s)


# PostgreSQL's numeric holds up to 131072 digits before the point and 16383
# after it. Anything wider is refused here: turning "1e999999" into an integer
# for an int4 parameter would hold the event loop for seconds.
_NUMERIC_DIGITS = 131_072 + 16_383


def _decimal(text: str) -> Decimal:
    if not isinstance(text, str) or len(text) > _NUMERIC_DIGITS + 16:
        raise ValueError("not a numeric")
    value = Decimal(text)
    if value.is_finite() and not -16_383 <= value.adjusted() < 131_072:
        raise ValueError("numeric out of PostgreSQL's range")
    return value


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$dec": _decimal,
    "$uuid": UUID,
    "$bytes": lambda v: base64.b64decode(v, validate=True),
    "$dt": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": _time,
    "$td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$float": float,
    "$json": lambda v: v,
}


def decode_value(v: Any) -> Any:
    """Turn one wire value back into its Python value.

    Raises:
        ProtocolError: an object with an unknown tag, or a malformed tagged value.
    """
    t = type(v)
    if t is dict:
        if len(v) != 1:
            raise ProtocolError("a tagged value must have exactly one key")
        ((tag, payload),) = v.items()
        dec = _DECODERS.get(tag)
        if dec is None:
            raise ProtocolError(f"unknown value tag {tag!r}")
        try:
            return dec(payload)
        except Exception as exc:  # any payload of the wrong shape is the sender's mistake
            raise ProtocolError(f"malformed {tag} value") from exc
    if t is list:
        return [decode_value(x) for x in v]
    return v


_NESTED = frozenset({dict, list})


def decode_row(row: Sequence[Any]) -> list[Any]:
    return [decode_value(v) if type(v) in _NESTED else v for v in row]


def decode_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [[decode_value(v) if type(v) in _NESTED else v for v in row] for row in rows]


# Types whose values come back from a trip over the wire exactly as they left.
_STABLE = frozenset(
    {str, int, bool, type(None), float, Decimal, UUID, bytes, dt.date, dt.timedelta}
)


def settle_value(v: Any) -> Any:
    """``v`` as it would arrive after a trip over the wire
    (``decode_value(json(encode_value(v)))``), without the trip for the
    common types: for callers in the same process (direct mode), so that
    their values have the same types as through the bus.

    Raises:
        ProtocolError: the value's type cannot travel on the wire.
    """
    t = type(v)
    if t in _STABLE:
        return v
    if t is dt.datetime or t is dt.time:
        if v.tzinfo is None or v.tzinfo is dt.UTC:
            return v
    elif t is list or t is tuple:
        return [settle_value(x) for x in v]
    elif isinstance(v, UUID):  # asyncpg's own UUID class
        return UUID(int=v.int)
    return decode_value(msgspec.json.decode(msgspec.json.encode(encode_value(v))))


def settle_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows as they would arrive after a trip over the wire (see :func:`settle_value`)."""
    return [[v if type(v) in _STABLE else settle_value(v) for v in row] for row in rows]
