"""``querybus dev``: the whole path in one process, with no Java and no server.

An adapter on the in-memory bus executes on a SQLite file; a prompt sends each
line through QueryClient → bus → adapter → SQLite → bus → QueryClient, and
prints the rows, the time and the correlation id.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
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
) -> None:
    """Embedded mode: in-memory bus + SQLite + adapter + SQL prompt, in one process."""
    sys.exit(asyncio.run(run_dev(db, sys.stdin.isatty())))


async def run_dev(db: str, interactive: bool, console: Console | None = None) -> int:
    """Run the prompt until end of input; return the number of failed statements
    as the exit status (0 when all succeeded), capped at 1."""
    console = console or Console()
    bus = BusSettings(bootstrap_servers="memory://querybus-dev")
    transport = connect(bus.bootstrap_servers)
    adapter = AdapterService(
        transport,
        SqliteExecutor(db),
        bus=bus,
        settings=AdapterSettings(group_id="dev", pool_size=1),
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
                    console.print(f"[red]ERROR {code}:[/red] {exc.message}")
                    continue
                if result.columns:
                    table = Table(*[c.name for c in result.columns])
                    for row in result.rows:
                        table.add_row(*["NULL" if v is None else str(v) for v in row])
                    console.print(table)
                console.print(
                    f"[dim]{result.command} · {result.elapsed * 1000:.2f} ms · "
                    f"correlation id {result.correlation_id}[/dim]"
                )
    finally:
        await adapter.stop()
        await transport.close()
    return 1 if failures else 0


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None
