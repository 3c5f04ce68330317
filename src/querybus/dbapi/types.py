"""PEP 249 type objects, type codes, constructors and ``cursor.description`` items.

Type codes are PostgreSQL's type names as the adapter reports them
(:class:`TypeCode`, a ``str`` with the built-in types' OIDs in ``.oid``); the
type objects (``NUMBER``, ``STRING``…) compare equal to the names and to the OIDs.
"""

from __future__ import annotations

import datetime as _dt
from typing import NamedTuple

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
