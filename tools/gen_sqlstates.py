"""Generate ``src/querybus/sqlstates.py`` from PostgreSQL's ``errcodes.txt``.

Every SQLSTATE of type ``E`` becomes a :class:`~querybus.errors.QueryError`
subclass with its code as the class attribute ``sqlstate`` (as asyncpg does),
under the base class of its SQLSTATE class (the code ``XX000`` for a code
``XXnnn``). Successful completion and warnings are not errors and are left out.

Usage::

    python tools/gen_sqlstates.py [--errcodes PATH] [--output PATH] [--check]

``--check`` writes nothing and exits 1 when the module is stale;
``tests/unit/test_sqlstates_generated.py`` does the same check in the test run.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Debian's postgresql-15 package (which scripts/services.sh installs) ships it here.
DEFAULT_ERRCODES = Path("/usr/share/postgresql/15/errcodes.txt")
DEFAULT_OUTPUT = REPO / "src" / "querybus" / "sqlstates.py"
ERRORS_MODULE = REPO / "src" / "querybus" / "errors.py"

# Names that the rule below (condition name in CamelCase + "Error") would
# give twice, or that read badly. Decided by hand, as asyncpg does, so that
# a new PostgreSQL release with a clash stops the generator instead of
# silently renaming a class callers already catch.
NAMES: dict[str, str] = {
    # The 2F00x codes (SQL routine) and the 38/39 codes (external routine)
    # share condition names; the external-routine ones get the longer name.
    "38002": "ModifyingExternalRoutineSQLDataNotPermittedError",
    "38003": "ProhibitedExternalRoutineSQLStatementAttemptedError",
    "38004": "ReadingExternalRoutineSQLDataNotPermittedError",
    "39004": "NullValueInExternalRoutineNotAllowedError",
    # "InternalError" would read as a querybus bug; it is the server's.
    "XX000": "InternalServerError",
}

# Codes placed under another code of their class rather than directly under
# the class base: querybus's UndefinedObjectError (42704) has always caught
# an unknown table, column or function too, and `except UndefinedObjectError`
# must keep doing so.
PARENTS: dict[str, str] = {
    "42P01": "42704",  # undefined_table
    "42703": "42704",  # undefined_column
    "42883": "42704",  # undefined_function
}

# Classes whose errors say the server or the connection failed, not the
# statement: their bases derive from the retriable OperationalError.
OPERATIONAL_CLASSES = frozenset({"08", "53", "57", "58"})

# Class-level `retriable` flags that differ from what a class inherits.
RETRIABLE: dict[str, bool] = {
    # The transaction was rolled back (serialization failure, deadlock):
    # running it again can succeed.
    "40000": True,
    # Canceled on purpose (statement_timeout, pg_cancel_backend): the same
    # statement would be canceled again.
    "57014": False,
}

_ACRONYMS = {"Sql": "SQL", "Fdw": "FDW", "Io": "IO", "Plpgsql": "PLPGSQL", "Xml": "XML"}
_LINE = re.compile(
    r"^(?P<code>[0-9A-Z]{5})\s+(?P<kind>[EWS])\s+(?P<macro>ERRCODE_\w+)(?:\s+(?P<name>\w+))?\s*$"
)
_SECTION = re.compile(r"^Section:\s+Class\s+(?P<cls>[0-9A-Z]{2})\s+-\s+(?P<title>.+?)\s*$")


@dataclass(frozen=True)
class SQLState:
    code: str
    condition: str
    class_title: str
    name: str
    parent: str  # a class name: another generated class, QueryError or OperationalError
    retriable: bool | None


def class_name(condition: str) -> str:
    """``insufficient_privilege`` → ``InsufficientPrivilegeError``."""
    parts = [_ACRONYMS.get(p.capitalize(), p.capitalize()) for p in condition.split("_")]
    if parts[-1] != "Error":
        parts.append("Error")
    name = "".join(parts)
    if hasattr(builtins, name):  # syntax_error, system_error: never shadow a builtin
        name = "Postgres" + name
    return name


def _reserved_names() -> set[str]:
    """Names errors.py defines itself, which no generated class may take."""
    if not ERRORS_MODULE.exists():
        return set()
    tree = ast.parse(ERRORS_MODULE.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


def parse(text: str) -> list[SQLState]:
    """The error SQLSTATEs of ``errcodes.txt``, parents before children.

    Raises:
        ValueError: the file is not what this script understands, or two
            codes would get one class name.
    """
    titles: dict[str, str] = {}
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _SECTION.match(line):
            titles[m["cls"]] = m["title"]
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"unrecognized line in errcodes.txt: {raw!r}")
        if m["kind"] != "E" or m["name"] is None:
            # Successes and warnings are not errors; a line without a
            # condition name is a second C macro for a code listed with one.
            continue
        if m["code"] in seen:
            raise ValueError(f"SQLSTATE {m['code']} is listed twice")
        seen.add(m["code"])
        rows.append((m["code"], m["name"]))
    if not rows:
        raise ValueError("no SQLSTATE found: is this PostgreSQL's errcodes.txt?")

    reserved = _reserved_names()
    names: dict[str, str] = {}
    for code, condition in rows:
        name = NAMES.get(code) or class_name(condition)
        if name in names.values() or name in reserved:
            raise ValueError(f"SQLSTATE {code} would be named {name}, which is taken: see NAMES")
        names[code] = name

    states: list[SQLState] = []
    for code, condition in rows:
        klass = code[:2]
        base = klass + "000"
        if code in PARENTS:
            parent = names[PARENTS[code]]
        elif code != base and base in names:
            parent = names[base]
        elif klass in OPERATIONAL_CLASSES:
            parent = "OperationalError"
        else:
            parent = "QueryError"
        states.append(
            SQLState(
                code=code,
                condition=condition,
                class_title=titles.get(klass, ""),
                name=names[code],
                parent=parent,
                retriable=RETRIABLE.get(code),
            )
        )
    for code in (*PARENTS, *PARENTS.values(), *RETRIABLE):
        if code not in names:
            raise ValueError(f"SQLSTATE {code} is not in errcodes.txt any more: update the script")

    # Parents first (a base class must exist before its subclasses), else file order.
    by_name = {s.name: s for s in states}
    ordered: list[SQLState] = []
    done: set[str] = set()

    def emit(s: SQLState) -> None:
        if s.name in done:
            return
        if s.parent in by_name:
            emit(by_name[s.parent])
        done.add(s.name)
        ordered.append(s)

    for s in states:
        emit(s)
    return ordered


def _isort_key(name: str) -> tuple[int, list[object]]:
    """ruff's RUF022 order for ``__all__``: CONSTANTS, CamelCase, the rest; natural order."""
    if re.fullmatch(r"[A-Z0-9_]+", name):
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def render(states: list[SQLState]) -> str:
    """The source of the generated module."""
    exported = sorted(["SQLSTATE_CLASSES", *(s.name for s in states)], key=_isort_key)
    out = [
        '"""PostgreSQL\'s SQLSTATEs as exception classes (generated: do not edit).',
        "",
        "One class per error SQLSTATE of PostgreSQL's ``errcodes.txt``, with the",
        "code as the class attribute ``sqlstate`` (as asyncpg does), under the base",
        "class of its SQLSTATE class. Regenerate with ``python tools/gen_sqlstates.py``;",
        "``tests/unit/test_sqlstates_generated.py`` fails when this file is stale.",
        "Look classes up with :func:`querybus.errors.query_error_class`.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from querybus.errors import OperationalError, QueryError",
        "",
        "__all__ = [",
        *(f'    "{n}",' for n in exported),
        "]",
    ]
    for s in states:
        is_base = s.code.endswith("000")
        if is_base:
            doc = f"SQLSTATE class {s.code[:2]}: {s.class_title}."
        else:
            doc = f"SQLSTATE {s.code}: {s.condition}."
            children = sorted(c for c, parent in PARENTS.items() if parent == s.code)
            if children:  # say why those codes are not directly under their class base
                doc = doc[:-1] + f"; also the base of {', '.join(children)}."
        out += ["", "", f"class {s.name}({s.parent}):", f'    """{doc}"""', ""]
        out.append(f'    sqlstate = "{s.code}"')
        if s.retriable is not None:
            out.append(f"    retriable = {s.retriable}")
    out += [
        "",
        "",
        "#: SQLSTATE → its class, for every error SQLSTATE of errcodes.txt.",
        "SQLSTATE_CLASSES: dict[str, type[QueryError]] = {",
        *(f'    "{s.code}": {s.name},' for s in sorted(states, key=lambda s: s.code)),
        "}",
        "",
    ]
    for line in out:
        if len(line) > 100:
            raise ValueError(f"generated line longer than 100 characters: {line!r}")
    return "\n".join(out)


def generate(errcodes: Path = DEFAULT_ERRCODES) -> str:
    """The module's source for the given ``errcodes.txt``.

    Raises:
        FileNotFoundError: there is no such file (install PostgreSQL's server package).
        ValueError: see :func:`parse`.
    """
    return render(parse(errcodes.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errcodes", type=Path, default=DEFAULT_ERRCODES)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    args = parser.parse_args(argv)
    source = generate(args.errcodes)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != source:
            print(f"{args.output} is stale: run python tools/gen_sqlstates.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(source, encoding="utf-8")
    print(f"wrote {args.output} ({source.count('sqlstate = ')} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
