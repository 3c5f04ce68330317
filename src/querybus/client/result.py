"""What a query returns to the caller: rows with name access, and the reply's metadata."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, overload

from querybus.protocol.messages import Column, RouteInfo, Timings

__all__ = ["Result", "Row"]


class Row(tuple[Any, ...]):
    """One result row: a tuple that can also be read by column name, like asyncpg's Record.

    ``row[0]``, ``row["name"]``, ``row.get("name")``, ``dict(row.items())``.
    """

    __slots__ = ()
    _index: dict[str, int]

    @overload
    def __getitem__(self, key: SupportsIndex | str, /) -> Any: ...
    @overload
    def __getitem__(self, key: slice, /) -> tuple[Any, ...]: ...
    def __getitem__(self, key: SupportsIndex | str | slice, /) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        return default if i is None else tuple.__getitem__(self, i)

    def keys(self) -> Iterator[str]:
        return iter(self._index)

    def values(self) -> Iterator[Any]:
        return iter(self)

    def items(self) -> Iterator[tuple[str, Any]]:
        return zip(self._index, self, strict=True)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self._index, self, strict=True))

    def __repr__(self) -> str:
        inner = " ".join(f"{k}={v!r}" for k, v in self.items())
        return f"<Row {inner}>"


def row_type(columns: Sequence[Column]) -> type[Row]:
    """A Row subclass that knows these column names.

    Cached by the names: building a class costs more than decoding a small
    reply, and a service sends the same few statements over and over.
    """
    return _row_type(tuple(c.name for c in columns))


@functools.lru_cache(maxsize=1024)
def _row_type(names: tuple[str, ...]) -> type[Row]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)  # like asyncpg: the first of duplicate names wins
    return type("Row", (Row,), {"__slots__": (), "_index": index})


@dataclass(slots=True)
class Result:
    """The outcome of one request.

    Attributes:
        rows: the rows, each a :class:`Row`.
        columns: names and PostgreSQL type names of the columns.
        command: the database's command tag (``"INSERT 0 1"``).
        rowcount: rows returned or affected.
        correlation_id: the request's correlation id.
        timings: queue wait, execution and routing time as the adapter measured them.
        route: which database target served it, and why.
        served_by: the adapter instance that served it.
        elapsed: the caller's time from send to reply, seconds.
        lsn: the commit LSN of a write (read-your-writes).
    """

    rows: list[Row]
    columns: list[Column] = field(default_factory=list)
    command: str = ""
    rowcount: int = 0
    correlation_id: str = ""
    timings: Timings = field(default_factory=Timings)
    route: RouteInfo | None = None
    served_by: str = ""
    elapsed: float = 0.0
    lsn: str | None = None

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)
