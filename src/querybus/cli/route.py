"""``querybus route explain SQL``: where the router would send a statement, and why.

Classification needs no database: by default the built-in table of
PostgreSQL functions is used (any other function counts as a possible
write). ``--catalog`` reads function volatility from the primary configured by
``POSTGRES_*`` (or ``.stack/env``) first, as a running adapter does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from querybus.cli.common import console
from querybus.errors import QueryBusError
from querybus.routing.classify import Classifier, FunctionCatalog

__all__ = ["route_app"]

route_app = typer.Typer(no_args_is_help=True, add_completion=False)


@route_app.callback()
def _group() -> None:
    """Explain routing decisions."""
    # A callback keeps `explain` a subcommand even while it is the only one.


async def _load_catalog() -> FunctionCatalog:
    # Imported here: the offline path must not need the database modules.
    from querybus.cli.common import load_stack_env
    from querybus.config import PostgresSettings
    from querybus.routing.targets import Target

    load_stack_env()
    target = Target("primary", PostgresSettings.from_env().dsn, is_primary=True)
    try:
        return FunctionCatalog(await target.function_catalog(FunctionCatalog.QUERY, 10.0))
    finally:
        await target.close()


@route_app.command("explain")
def explain(
    sql: Annotated[str, typer.Argument(help="The statement to classify (not executed).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    catalog: Annotated[
        bool, typer.Option("--catalog", help="Read function volatility from the primary first.")
    ] = False,
) -> None:
    """Classify SQL the way the router does, without running it."""
    functions = None
    if catalog:
        try:
            functions = asyncio.run(_load_catalog())
        except QueryBusError as exc:
            console(stderr=True).print(
                f"[red]cannot read the function catalog:[/red] {escape(str(exc))}"
            )
            raise typer.Exit(1) from exc
    result = Classifier(functions).classify(sql).as_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(show_header=False, box=None)
    table.add_column()
    table.add_column(overflow="fold")
    complexity = result["complexity"]
    assert isinstance(complexity, dict)
    color = "yellow" if result["target"] == "primary" else "green"
    table.add_row("target", f"[{color}]{result['target']}[/{color}]")
    table.add_row("reason", escape(str(result["reason"])))
    if result["detail"]:
        table.add_row("detail", escape(str(result["detail"])))
    table.add_row("complexity", f"{complexity['class']} (score {complexity['score']})")
    table.add_row("fingerprint", escape(str(result["fingerprint"])) or "-")
    console().print(table, highlight=False)
