"""The ``querybus`` console script: the command line, or a clear message on a caller's install.

``pip install querybus`` is the client only; the command line (typer, rich) and what
its commands run (asyncpg, pglast, …) come with ``querybus[adapter]``. Without them
the script says so instead of printing a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

# Top-level names of the `adapter` extra's libraries (and typer's click).
_ADAPTER_EXTRA = frozenset(
    {"aiosqlite", "asyncpg", "click", "httpx", "pglast", "prometheus_client", "rich", "typer"}
)


def main() -> None:
    """Run ``querybus …``; exit 1 with an install hint when the adapter extra is missing."""
    try:
        from querybus.cli.main import main as run
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _ADAPTER_EXTRA:
            raise
        sys.stderr.write(
            f"querybus: the command line needs {exc.name}, which this install lacks: "
            "pip install 'querybus[adapter]'\n"
            "(`pip install querybus` is the client library only.)\n"
        )
        raise SystemExit(1) from None
    run()
