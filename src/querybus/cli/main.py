"""The ``querybus`` command line.

Every command reads the original environment variables
(``KAFKA_BOOTSTRAP_SERVERS``, ``POSTGRES_*``) and ``QUERYBUS_*`` ones; run
from the repository, the values in ``.stack/env`` are used for anything not
already set.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape
from rich.table import Table

from querybus.cli.check import DEFAULT_TIMEOUT, START_HINT, NoAdapterError, run_check
from querybus.cli.common import (
    build_params,
    configure_client_logging,
    configure_logging,
    console,
    discovery_from_env,
    load_stack_env,
    result_as_json,
    run,
)
from querybus.config import AdapterSettings, BusSettings, ClientSettings, PostgresSettings
from querybus.errors import QueryBusError

#: The caller's token, for the commands that send requests.
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="QUERYBUS_TOKEN",
        show_default=False,
        help="The caller's token (a JWT), for adapters that check identity "
        "(this option wins over the variable).",
    ),
]
app = typer.Typer(
    name="querybus",
    help="SQL over Apache Kafka: serve an adapter, send queries, check, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
    from querybus.cli.acl import acl_app

    app.add_typer(acl_app, name="acl")
    from querybus.cli.inboxes import inboxes

    app.command(
        help="List the adapters' inbox topics and the age of their last record; "
        "--sweep deletes those of adapters that are gone."
    )(inboxes)
    from querybus.cli.bench import bench
    from querybus.cli.dev import dev
    from querybus.cli.token import token

    app.command(
        help="Embedded mode: in-memory bus, SQLite, an adapter and a SQL prompt in one process."
    )(dev)
    app.command(help="Latency and throughput through querybus vs. directly through asyncpg.")(bench)
    app.command(help="Mint an HS256 token with QUERYBUS_JWT_SECRET (local development).")(token)


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
    allow_superuser: Annotated[
        bool,
        typer.Option(
            "--allow-superuser",
            help="Start even when the database login is a superuser (or has CREATEROLE, or "
            "may run server programs or read/write server files); also "
            "QUERYBUS_ALLOW_SUPERUSER=1. Refused by default: such a login lets a caller's SQL "
            "run programs and read files on the database host. Log in as a dedicated "
            "non-superuser role instead.",
        ),
    ] = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Run an adapter: consume requests, execute them on PostgreSQL, reply."""
    configure_logging(log_level)
    from querybus.cli.serve import serve_adapter

    try:
        settings = adapter_settings(
            group=group, pool_size=pool_size, http_port=http_port, allow_superuser=allow_superuser
        )
        run(
            serve_adapter(
                BusSettings.from_env(), PostgresSettings.from_env(), settings, register=register
            )
        )
    except QueryBusError as exc:
        console(stderr=True).print(
            f"[red]querybus serve failed:[/red] {type(exc).__name__}: {escape(str(exc))}"
        )
        raise typer.Exit(1) from None


def adapter_settings(
    *,
    group: str | None = None,
    pool_size: int | None = None,
    http_port: int | None = None,
    allow_superuser: bool = False,
) -> AdapterSettings:
    """The settings ``querybus serve`` runs with: the environment's
    (:meth:`AdapterSettings.from_env`), overridden by the options given.

    Raises:
        ConfigurationError: an environment variable is invalid.
    """
    overrides: dict[str, Any] = {}
    if group is not None:
        overrides["group_id"] = group
    if pool_size is not None:
        overrides["pool_size"] = pool_size
    if http_port is not None:
        overrides["http_port"] = http_port
    if allow_superuser:
        # The flag only ever turns it on; without it QUERYBUS_ALLOW_SUPERUSER decides.
        overrides["allow_superuser"] = True
    return dataclasses.replace(AdapterSettings.from_env(), **overrides)


@app.command()
def check(
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait in all: for an adapter to register (with a registry) "
            "and for its answer.",
            min=0.1,
        ),
    ] = DEFAULT_TIMEOUT,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    token: TokenOption = None,
) -> None:
    """Send a test query through the bus; exit 0 when an adapter answered it correctly.

    When the registry (QUERYBUS_REGISTRY) shows no adapter this is said at
    once; the check exits 1 when none registered or answered within --timeout.
    """
    configure_client_logging()
    err = console(stderr=True)

    def notify(note: str) -> None:
        if not as_json:
            err.print(note, markup=False, highlight=False)

    try:
        report = run(
            run_check(BusSettings.from_env(), timeout=timeout, notify=notify, token=token or None)
        )
    except QueryBusError as exc:
        if as_json:
            failure: dict[str, Any] = {"ok": False, "error": type(exc).__name__}
            if isinstance(exc, NoAdapterError):
                failure.update(reason=exc.reason, hint=START_HINT)
            failure["message"] = str(exc)
            print(msgspec.json.encode(failure).decode())
        else:
            err.print("[red]✗ querybus check failed:[/red] ", end="")
            err.print(f"{type(exc).__name__}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(msgspec.json.encode(report).decode())
    else:
        console().print(
            f"[green]✓ query executed successfully[/green]\n"
            f"  response time:  {report['response_ms']} ms\n"
            f"  correlation id: {report['correlation_id']}\n"
            f"  served by:      {report['served_by']} ({report['target']})\n"
            f"  request topic:  {report['request_topic']}",
            highlight=False,
        )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement, with $1, $2… placeholders.")],
    params: Annotated[
        list[str] | None,
        typer.Argument(
            help="Parameters: 41 is an int and 4.5 a float only when they read back exactly "
            "as typed (02134, 1e3, 1.50 are text), true/false, null, {…}/[…] JSON, "
            "anything else text. See --param-type and docs/cli.md."
        ),
    ] = None,
    param_type: Annotated[
        list[str] | None,
        typer.Option(
            "--param-type",
            "-t",
            help="N=TYPE: send parameter $N as TYPE (text, int, float, numeric, bool, json, "
            "date, time, timestamp, uuid, bytea), e.g. -t 1=text. Repeatable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send every parameter without a --param-type as text.")
    ] = False,
    operation_type: Annotated[
        str | None,
        typer.Option(
            "--op", help="Declared operation (SELECT, INSERT, …), checked by the adapter."
        ),
    ] = None,
    route: Annotated[str, typer.Option(help="auto, primary or replica.")] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 30.0,
    token: TokenOption = None,
) -> None:
    """Run one statement through the bus and print its rows."""
    from querybus.client import QueryClient

    values = build_params(params or [], param_type or [], raw=raw)
    configure_client_logging()
    out = console()
    err = console(stderr=True)

    async def go() -> Any:
        async with (
            discovery_from_env() as registry,
            # QUERYBUS_MODE=direct runs it on POSTGRES_* in this process (the
            # adapter's own checks, no bus); QUERYBUS_FALLBACK=direct when the bus is down.
            QueryClient(
                ClientSettings.from_env(), timeout=timeout, registry=registry, token=token or None
            ) as client,
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
            err.print(f"[red]ERROR[/red] {sqlstate or type(exc).__name__}: ", end="")
            err.print(exc.message, markup=False, highlight=False)
            for extra in ("detail", "hint"):
                if getattr(exc, extra, None):
                    err.print(f"  {extra.upper()}: {getattr(exc, extra)}", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        doc = result_as_json(result)
        doc["served_by"] = result.served_by
        doc["route"] = msgspec.to_builtins(result.route) if result.route else None
        print(msgspec.json.encode(doc).decode())
        return
    if result.columns:
        table = Table(*[f"{_escape(c.name)}\n[dim]{_escape(c.type)}[/dim]" for c in result.columns])
        for column in table.columns:
            column.overflow = "fold"  # never "…": a cut value is a wrong value
        for row in result.rows:
            table.add_row(*["[dim]NULL[/dim]" if v is None else _escape(str(v)) for v in row])
        out.print(table, highlight=False)
        rows = len(result.rows)
        out.print(f"({rows} row{'' if rows == 1 else 's'})", highlight=False)
    target = f" on {result.route.target}" if result.route else ""
    out.print(
        f"[dim]{_escape(result.command)}  ·  {result.elapsed * 1000:.1f} ms{target}  ·  "
        f"correlation id {result.correlation_id}[/dim]",
        highlight=False,
    )


def _escape(text: str) -> str:
    # A value such as "[red]" or "[/]" must print as itself, not as markup.
    return escape(text)


def main() -> None:
    _mount_subcommands()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
