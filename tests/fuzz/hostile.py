"""The list of hostile SQL kept in ``tests/data/hostile_sql.txt`` (its header says the format)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOSTILE_SQL_FILE = Path(__file__).resolve().parent.parent / "data" / "hostile_sql.txt"

_HEADER = "-- ---- "
_EXPECTS = ("refuse", "contain")
_FLAGS = ("slow", "outage-ok")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class HostileFileError(ValueError):
    """The hostile SQL file does not follow its format."""


@dataclass(frozen=True, slots=True)
class HostileSQL:
    """One entry of the file.

    Attributes:
        name: unique, for reports.
        sql: the statement(s), with ``<<n>>`` and ``<<table>>`` still in it.
        refuse: it must come back as a typed error (else: an error, or a
            success that leaves the session unchanged).
        params: parameters sent with it.
        slow: it holds a connection until its deadline (sent rarely, with a short one).
        outage_ok: a retriable error is an honest answer (it kills its own backend).
        line: where it starts in the file.
    """

    name: str
    sql: str
    refuse: bool
    params: tuple[Any, ...] = ()
    slow: bool = False
    outage_ok: bool = False
    line: int = 0

    def render(self, n: int, table: str) -> str:
        """The SQL to send for fuzz index ``n``."""
        return self.sql.replace("<<n>>", str(n)).replace("<<table>>", table)


def parse_hostile_sql(text: str) -> list[HostileSQL]:
    """The entries of a hostile SQL file.

    Raises:
        HostileFileError: a malformed header, an unknown expectation or flag,
            a duplicate name, or text before the first entry that is not a comment.
    """
    entries: list[HostileSQL] = []
    header: tuple[int, str] | None = None
    body: list[str] = []

    def flush() -> None:
        if header is not None:
            entries.append(_entry(header[0], header[1], "\n".join(body)))

    # The file's own final newline is not part of the last entry.
    for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1):
        if line.startswith(_HEADER):
            flush()
            header, body = (number, line[len(_HEADER) :]), []
        elif header is None:
            if line.strip() and not line.startswith("#"):
                raise HostileFileError(f"line {number}: text before the first entry: {line!r}")
        else:
            body.append(line)
    flush()
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise HostileFileError(f"duplicate entry names: {duplicates}")
    return entries


def load_hostile_sql(path: Path = HOSTILE_SQL_FILE) -> list[HostileSQL]:
    """The entries of the repository's hostile SQL file."""
    return parse_hostile_sql(path.read_text(encoding="utf-8"))


def _entry(line: int, header: str, sql: str) -> HostileSQL:
    words = header.split()
    if len(words) < 2:
        raise HostileFileError(f"line {line}: a header needs an expectation and a name")
    expect, name, *rest = words
    if expect not in _EXPECTS:
        raise HostileFileError(f"line {line}: expectation {expect!r} is not one of {_EXPECTS}")
    if not _NAME.match(name):
        raise HostileFileError(f"line {line}: name {name!r} is not lower-case-with-dashes")
    params: tuple[Any, ...] = ()
    flags: set[str] = set()
    for word in rest:
        if word.startswith("params="):
            try:
                decoded = json.loads(word[len("params=") :])
            except ValueError as exc:
                raise HostileFileError(f"line {line}: params are not JSON: {exc}") from None
            if not isinstance(decoded, list):
                raise HostileFileError(f"line {line}: params must be a JSON list")
            params = tuple(decoded)
        elif word in _FLAGS:
            flags.add(word)
        else:
            raise HostileFileError(f"line {line}: unknown flag {word!r} (known: {_FLAGS})")
    return HostileSQL(
        name=name,
        sql=sql,
        refuse=expect == "refuse",
        params=params,
        slow="slow" in flags,
        outage_ok="outage-ok" in flags,
        line=line,
    )
