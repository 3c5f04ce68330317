"""``querybus dev``: the whole path in one process, with no Java and no server.

An adapter on the in-memory bus executes on a SQLite file; a prompt sends each
line through QueryClient → bus → adapter → SQLite → bus → QueryClient, and
prints the rows, the time and the correlation id.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from querybus.adapter.policy import Policy
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.cli.common import console as make_console
from querybus.cli.common import result_as_json
from querybus.client import QueryClient
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import QueryBusError
from querybus.transport import connect

__all__ = ["dev", "run_dev"]

_HELP = "Type one SQL statement per line ($1… placeholders are not available here). \\q quits."


def dev(
    db: Annotated[
        str, typer.Option(help="SQLite file (':memory:' for none).")
    ] = "querybus-dev.sqlite3",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per statement, one per line.")
    ] = False,
) -> None:
    """Embedded mode: in-memory bus + SQLite + adapter + SQL prompt, in one process."""
    sys.exit(asyncio.run(run_dev(db, sys.stdin.isatty(), as_json=as_json)))


async def run_dev(
    db: str, interactive: bool, console: Console | None = None, *, as_json: bool = False
) -> int:
    """Run the prompt until end of input; return the number of failed statements
    as the exit status (0 when all succeeded), capped at 1.

    With ``as_json`` every statement prints one JSON object on one line (the
    shape of ``querybus query --json``) instead of a table.
    """
    console = console or make_console()
    bus = BusSettings(bootstrap_servers="memory://querybus-dev")
    transport = connect(bus.bootstrap_servers)
    adapter = AdapterService(
        transport,
        SqliteExecutor(db),
        bus=bus,
        settings=AdapterSettings(group_id="dev", pool_size=1),
        # The prompt's user owns this SQLite file and types the SQL: there is no
        # untrusted caller to refuse DDL to, and CREATE TABLE is how one starts.
        policy=Policy(allow_ddl=True),
    )
    failures = 0
    await adapter.start(http=False)
    try:
        async with QueryClient(bus, transport=transport, timeout=30.0) as client:
            if interactive:
                console.print(
                    f"[bold]querybus dev[/bold] — SQLite {db!r} over the in-memory bus. {_HELP}"
                )
            while True:
                line = await asyncio.to_thread(_read_line, "querybus> " if interactive else "")
                if line is None or line.strip() in ("\\q", "exit", "quit"):
                    break
                sql = line.strip().rstrip(";").strip()
                if not sql:
                    continue
                try:
                    result = await client.request(sql)
                except QueryBusError as exc:
                    failures += 1
                    code = getattr(exc, "sqlstate", None) or type(exc).__name__
                    if as_json:
                        _print_json(
                            console,
                            {
                                "ok": False,
                                "error": type(exc).__name__,
                                "sqlstate": getattr(exc, "sqlstate", None),
                                "message": exc.message,
                            },
                        )
                    else:
                        console.print(f"[red]ERROR {escape(code)}:[/red] {escape(exc.message)}")
                    continue
                if as_json:
                    _print_json(console, result_as_json(result))
                    continue
                if result.columns:
                    table = Table(*[escape(c.name) for c in result.columns])
                    for column in table.columns:
                        column.overflow = "fold"  # never "…": a cut value is a wrong value
                    for row in result.rows:
                        table.add_row(*["NULL" if v is None else escape(str(v)) for v in row])
                    console.print(table, highlight=False)
                console.print(
                    f"[dim]{escape(result.command)} · {result.elapsed * 1000:.2f} ms · "
                    f"correlation id {result.correlation_id}[/dim]"
                )
    finally:
        await adapter.stop()
        await transport.close()
    return 1 if failures else 0


def _print_json(console: Console, value: dict[str, Any]) -> None:
    # Straight to the console's file, never through rich: JSON must reach the
    # pipe byte for byte, on one line, whatever the console's width.
    console.file.write(msgspec.json.encode(value).decode() + "\n")
    console.file.flush()


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None
