"""Layers point one way, and each third-party library has one home.

Read from the source (no import is run): every ``import querybus.X`` inside
package ``P`` must name ``P`` itself or a package ``P`` may depend on, and
asyncpg, pglast, aiokafka, aiosqlite and prometheus_client may be imported only
by the modules that own them. A new arrow back up fails here, with the file
and the import that made it.

    adapter → routing → database → execution → sql → protocol → errors
    adapter → identity → execution
    direct → adapter, client   (client loads direct by name only)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "querybus"

_BOTTOM = {"errors", "sqlstates", "cancellation"}
#: What the server side may import: the adapter, and direct mode (which runs it).
_SERVER = _BOTTOM | {
    "config",
    "protocol",
    "transport",
    "sql",
    "execution",
    "database",
    "routing",
    "registry",
    "observability",
    "identity",
}
#: What each top-level package (or module) of querybus may import from querybus.
ALLOWED: dict[str, set[str]] = {
    "errors": {"sqlstates"},  # the generated SQLSTATE classes complete the error tree
    "sqlstates": {"errors"},
    "cancellation": set(),
    "config": _BOTTOM,
    "protocol": _BOTTOM,
    "observability": _BOTTOM,
    "transport": _BOTTOM | {"config", "protocol"},
    "sql": _BOTTOM | {"protocol"},
    "execution": _BOTTOM | {"protocol", "sql"},
    "database": _BOTTOM | {"protocol", "sql", "execution"},
    "identity": _BOTTOM | {"protocol", "sql", "execution"},
    "registry": _BOTTOM | {"config", "protocol", "transport", "observability"},
    "routing": _BOTTOM
    | {"config", "protocol", "sql", "execution", "database", "observability", "registry"},
    "client": _BOTTOM | {"config", "protocol", "transport", "registry", "observability"},
    "dbapi": _BOTTOM | {"config", "protocol", "client"},
    "adapter": _SERVER,
    # Direct mode: the client's requests run in the caller's process through the
    # adapter's own request handling. The client loads it by name (importlib), so
    # no arrow goes from client to direct; direct sits on top of both.
    "direct": _SERVER | {"adapter", "client"},
    "cli": set(),  # the top: anything (checked below as "any")
    "__init__": _BOTTOM | {"config", "protocol", "transport", "client"},
    "__main__": {"cli"},
}
_ANYTHING = {"cli"}

#: The only places that may import each library.
OWNERS: dict[str, tuple[str, ...]] = {
    # and the benchmark's baseline, which is asyncpg used directly on purpose
    "asyncpg": ("database/", "cli/bench.py"),
    "pglast": ("sql/",),
    "aiokafka": ("transport/kafka.py",),
    "aiosqlite": ("adapter/sqlite.py",),
    "prometheus_client": ("observability/metrics.py",),
    "jwt": ("identity/tokens.py",),
}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


MODULES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    assert {_package(p) for p in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    package = _package(path)
    if package in _ANYTHING:
        return
    wrong = [
        f"{path.relative_to(SRC)}:{line}: imports {module}"
        for line, module in _imports(path)
        if module.startswith("querybus.")
        and module.split(".")[1] != package
        and module.split(".")[1] not in ALLOWED[package]
    ]
    assert not wrong, "an arrow back up the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_each_library_is_imported_only_by_its_owner(path: Path) -> None:
    where = path.relative_to(SRC).as_posix()
    wrong = [
        f"{where}:{line}: imports {module}"
        for line, module in _imports(path)
        for library, owners in OWNERS.items()
        if module.split(".")[0] == library and not where.startswith(owners)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_an_arrow_back_up(tmp_path: Path) -> None:
    # The rule itself, on a module that imports upward: it must be reported.
    bad = tmp_path / "bad.py"
    bad.write_text("from querybus.adapter.service import AdapterService\n")
    [(_, module)] = list(_imports(bad))
    assert module.split(".")[1] not in ALLOWED["database"]
