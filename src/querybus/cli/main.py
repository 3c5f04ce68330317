"""The ``querybus`` command line.

Every command reads the original environment variables
(``KAFKA_BOOTSTRAP_SERVERS``, ``POSTGRES_*``) and ``QUERYBUS_*`` ones; run
from the repository, the values in ``.stack/env`` are used for anything not
already set.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from querybus.cli.common import (
    configure_logging,
    discovery_from_env,
    jsonable,
    load_stack_env,
    parse_param,
    run,
)
from querybus.config import AdapterSettings, BusSettings, PostgresSettings
from querybus.errors import QueryBusError, QueryError

app = typer.Typer(
    name="querybus",
    help="SQL over Apache Kafka: serve an adapter, send queries, check, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR.")]


def _mount_subcommands() -> None:
    # Sub-apps live in their own modules; mount those that are present.
    try:
        from querybus.cli.registry import registry_app
    except ImportError:
        pass
    else:
        app.add_typer(registry_app, name="registry", help="List and watch registered services.")
    try:
        from querybus.cli.route import route_app
    except ImportError:
        pass
    else:
        app.add_typer(route_app, name="route", help="Explain routing decisions.")
    from querybus.cli.bench import bench
    from querybus.cli.dev import dev
    from querybus.cli.schema import schema

    app.command(help="Print, write or check the protocol documents (AsyncAPI, JSON Schema).")(
        schema
    )
    app.command(
        help="Embedded mode: in-memory bus, SQLite, an adapter and a SQL prompt in one process."
    )(dev)
    app.command(help="Latency and throughput through querybus vs. directly through asyncpg.")(bench)


@app.callback()
def _root() -> None:
    load_stack_env()


@app.command()
def serve(
    group: Annotated[str | None, typer.Option(help="Consumer group (QUERYBUS_GROUP_ID).")] = None,
    pool_size: Annotated[
        int | None, typer.Option(help="Database connections (QUERYBUS_POOL_SIZE).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(help="Port of /health and /metrics (QUERYBUS_HTTP_PORT).")
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Register in the service registry (QUERYBUS_REGISTRY).")
    ] = True,
    log_level: LogLevel = "INFO",
) -> None:
    """Run an adapter: consume requests, execute them on PostgreSQL, reply."""
    configure_logging(log_level)
    from querybus.adapter.runner import serve_adapter

    settings = AdapterSettings.from_env()
    overrides: dict[str, Any] = {}
    if group is not None:
        overrides["group_id"] = group
    if pool_size is not None:
        overrides["pool_size"] = pool_size
    if http_port is not None:
        overrides["http_port"] = http_port
    if overrides:
        settings = AdapterSettings(**{**_fields(settings), **overrides})
    try:
        run(
            serve_adapter(
                BusSettings.from_env(), PostgresSettings.from_env(), settings, register=register
            )
        )
    except QueryBusError as exc:
        err.print(f"[red]querybus serve failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@app.command()
def check(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Send a test query through the bus; exit 0 when an adapter answered it correctly."""
    from querybus.client import QueryClient

    async def go() -> dict[str, Any]:
        async with (
            discovery_from_env() as registry,
            QueryClient(BusSettings.from_env(), timeout=timeout, registry=registry) as client,
        ):
            started = time.perf_counter()
            result = await client.query(
                "SELECT 1 AS ok, now() AS server_time", operation_type="SELECT", timeout=timeout
            )
            elapsed = time.perf_counter() - started
            if len(result.rows) != 1 or result.rows[0]["ok"] != 1:
                raise QueryError(f"unexpected answer: {result.rows!r}")
            return {
                "ok": True,
                "response_ms": round(elapsed * 1000, 2),
                "correlation_id": result.correlation_id,
                "served_by": result.served_by,
                "target": result.route.target if result.route else None,
                "request_topic": client.request_topic,
            }

    try:
        report = run(go())
    except QueryBusError as exc:
        if as_json:
            print(
                msgspec.json.encode(
                    {"ok": False, "error": type(exc).__name__, "message": str(exc)}
                ).decode()
            )
        else:
            err.print(f"[red]✗ querybus check failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(msgspec.json.encode(report).decode())
    else:
        out.print(
            f"[green]✓ query executed successfully[/green]\n"
            f"  response time:  {report['response_ms']} ms\n"
            f"  correlation id: {report['correlation_id']}\n"
            f"  served by:      {report['served_by']} ({report['target']})\n"
            f"  request topic:  {report['request_topic']}"
        )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement, with $1, $2… placeholders.")],
    params: Annotated[
        list[str] | None,
        typer.Argument(help="Parameters: 41 is an int, 4.5 a float, true/false/null, {…} JSON."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Send every parameter as text.")] = False,
    operation_type: Annotated[
        str | None,
        typer.Option(
            "--op", help="Declared operation (SELECT, INSERT, …), checked by the adapter."
        ),
    ] = None,
    route: Annotated[str, typer.Option(help="auto, primary or replica.")] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 30.0,
) -> None:
    """Run one statement through the bus and print its rows."""
    from querybus.client import QueryClient

    values = [p if raw else parse_param(p) for p in (params or [])]

    async def go() -> Any:
        async with (
            discovery_from_env() as registry,
            QueryClient(BusSettings.from_env(), timeout=timeout, registry=registry) as client,
        ):
            return await client.request(sql, values, operation_type=operation_type, route=route)

    try:
        result = run(go())
    except QueryBusError as exc:
        sqlstate = getattr(exc, "sqlstate", None)
        if as_json:
            print(
                msgspec.json.encode(
                    {
                        "ok": False,
                        "error": type(exc).__name__,
                        "sqlstate": sqlstate,
                        "message": exc.message,
                        "detail": getattr(exc, "detail", None),
                        "hint": getattr(exc, "hint", None),
                    }
                ).decode()
            )
        else:
            err.print(f"[red]ERROR[/red] {sqlstate or type(exc).__name__}: {exc.message}")
            for extra in ("detail", "hint"):
                if getattr(exc, extra, None):
                    err.print(f"  {extra.upper()}: {getattr(exc, extra)}")
        raise typer.Exit(1) from None
    if as_json:
        print(
            msgspec.json.encode(
                {
                    "ok": True,
                    "command": result.command,
                    "rowcount": result.rowcount,
                    "columns": [{"name": c.name, "type": c.type} for c in result.columns],
                    "rows": [jsonable(r.as_dict()) for r in result.rows],
                    "correlation_id": result.correlation_id,
                    "served_by": result.served_by,
                    "route": msgspec.to_builtins(result.route) if result.route else None,
                    "elapsed_ms": round(result.elapsed * 1000, 3),
                }
            ).decode()
        )
        return
    if result.columns:
        table = Table(*[f"{c.name}\n[dim]{c.type}[/dim]" for c in result.columns])
        for row in result.rows:
            table.add_row(*["[dim]NULL[/dim]" if v is None else str(v) for v in row])
        out.print(table)
    target = f" on {result.route.target}" if result.route else ""
    out.print(
        f"[dim]{result.command}  ·  {result.elapsed * 1000:.1f} ms{target}  ·  "
        f"correlation id {result.correlation_id}[/dim]"
    )


def main() -> None:
    _mount_subcommands()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
