"""``querybus registry ls``, ``querybus registry watch`` and
``querybus registry announce-replica``.

The backend comes from the environment: ``QUERYBUS_REGISTRY``
(``memory|kafka|etcd|consul``) plus ``KAFKA_BOOTSTRAP_SERVERS``,
``ETCD_ENDPOINTS`` or ``CONSUL_HTTP_ADDR``, and ``QUERYBUS_TOPIC_PREFIX``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from querybus.cli.common import console
from querybus.errors import ConfigurationError, QueryBusError
from querybus.registry import (
    HealthStatus,
    RegistryBackend,
    RegistryClient,
    RegistrySettings,
    ServiceInstance,
    ServiceRegistry,
    registry_from_settings,
)

__all__ = ["registry_app"]

registry_app = typer.Typer(no_args_is_help=True, add_completion=False)

_STYLE = {
    HealthStatus.PASSING: "green",
    HealthStatus.WARNING: "yellow",
    HealthStatus.CRITICAL: "red",
}


def _as_dict(instance: ServiceInstance, now: float) -> dict[str, Any]:
    return {
        "name": instance.name,
        "instance_id": instance.instance_id,
        "service_type": instance.service_type,
        "status": instance.status.value,
        "endpoint": instance.endpoint,
        "metadata": instance.metadata,
        "note": instance.note,
        "last_heartbeat": instance.last_heartbeat,
        "last_heartbeat_age": round(max(0.0, now - instance.last_heartbeat), 3),
        "ttl": instance.ttl,
        "registered_at": instance.registered_at,
    }


def _prefix_note() -> str:
    prefix = os.environ.get("QUERYBUS_TOPIC_PREFIX", "")
    return f" (topic prefix {prefix!r})" if prefix else ""


def _with_backend(use: Callable[[RegistryBackend], Awaitable[int]]) -> None:
    """Open the configured backend, run ``use`` and exit with its code.

    Raises:
        typer.Exit: always, with 0 on success and 1 when the registry failed.
    """

    async def main() -> int:
        backend = registry_from_settings(RegistrySettings.from_env())
        await backend.start()
        try:
            return await use(backend)
        finally:
            await backend.stop()

    try:
        code = asyncio.run(main())
    except QueryBusError as exc:
        console(stderr=True).print(f"[red]registry error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@registry_app.command("ls")
def ls(
    service_type: Annotated[
        str | None, typer.Option("--type", help="Only instances of this service type.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only this service.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status: passing, warning, critical.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the live registered instances."""
    wanted = None
    if status is not None:
        try:
            wanted = HealthStatus(status.lower())
        except ValueError:
            console(stderr=True).print(
                f"[red]unknown status {escape(repr(status))}[/red]: "
                "use passing, warning or critical"
            )
            raise typer.Exit(2) from None

    async def use(backend: RegistryBackend) -> int:
        found = await RegistryClient(backend).instances(
            name, service_type=service_type, status=wanted
        )
        now = time.time()
        if as_json:
            # print(), not rich: JSON must reach the pipe byte for byte.
            print(json.dumps([_as_dict(i, now) for i in found], indent=2))
            return 0
        out = console()
        if backend.kind == "memory":
            console(stderr=True).print(
                "[yellow]QUERYBUS_REGISTRY is memory: only this process's registrations "
                "are visible (set it to kafka, etcd or consul)[/yellow]"
            )
        if not found:
            # A plain sentence, not an empty table: "nothing" must read as nothing.
            filters = ", ".join(
                f"{label} {value}"
                for label, value in (("name", name), ("type", service_type), ("status", status))
                if value is not None
            )
            where = f"the {backend.kind} registry{_prefix_note()}"
            out.print(
                f"no instance in {where} matches {filters}"
                if filters
                else f"nothing is registered in {where}",
                markup=False,
                highlight=False,
            )
            return 0
        table = Table(title=f"registry ({backend.kind})")
        for column in ("name", "instance", "type", "status", "endpoint", "last heartbeat"):
            # fold, never "…": a cut id or name cannot be copied or grepped.
            table.add_column(column, overflow="fold")
        for i in found:
            table.add_row(
                escape(i.name),
                escape(i.instance_id),
                escape(i.service_type),
                f"[{_STYLE[i.status]}]{i.status.value}[/]",
                escape(i.endpoint),
                f"{max(0.0, now - i.last_heartbeat):.1f}s ago",
            )
        out.print(table, highlight=False)
        return 0

    _with_backend(use)


@registry_app.command("watch")
def watch(
    name: Annotated[str | None, typer.Option("--name", help="Only this service.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print instances as they are added, updated and removed (Ctrl-C stops)."""

    async def use(backend: RegistryBackend) -> int:
        out = console()
        events = RegistryClient(backend).watch(name)
        try:
            async for event in events:
                now = time.time()
                if as_json:
                    print(
                        json.dumps({"event": event.kind.value, **_as_dict(event.instance, now)}),
                        flush=True,
                    )
                    continue
                i = event.instance
                out.print(
                    f"{time.strftime('%H:%M:%S')} {event.kind.value:<8} {escape(i.name)} "
                    f"{escape(i.instance_id)} [{_STYLE[i.status]}]{i.status.value}[/] "
                    f"{escape(i.endpoint)}",
                    highlight=False,
                )
        finally:
            with contextlib.suppress(QueryBusError):
                await events.aclose()
        return 0

    _with_backend(use)


@registry_app.command("announce-replica")
def announce_replica(
    dsn: Annotated[
        str, typer.Argument(help="The replica: postgresql://USER:PASSWORD@HOST:PORT/DB")
    ],
    service: Annotated[
        str, typer.Option("--service", help="Service name to announce it under.")
    ] = "postgres-replica",
    ttl: Annotated[
        float, typer.Option("--ttl", help="Seconds without heartbeat before it expires.")
    ] = 10.0,
    weight: Annotated[float, typer.Option("--weight", help="Its share of reads.")] = 1.0,
    group: Annotated[str, typer.Option("--group", help="Its replica group.")] = "default",
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="Announce this HOST:PORT instead of the DSN's."),
    ] = None,
) -> None:
    """Register a streaming replica for routers to discover, and keep it
    registered (heartbeat) until SIGINT/SIGTERM, then deregister it.

    The instance (type ``database``) carries the endpoint ``host:port`` and
    metadata ``role=replica``, ``database``, ``weight``, ``group`` — never the
    user or password. It is passing while the server answers and
    ``pg_is_in_recovery()`` is true, critical otherwise.
    """
    from querybus.routing.discovery import StandbyCheck, announcement

    try:
        address, metadata = announcement(dsn, weight=weight, group=group, endpoint=endpoint)
    except ConfigurationError as exc:
        console(stderr=True).print(f"[red]bad replica:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if ttl <= 0:
        console(stderr=True).print("[red]--ttl must be positive[/red]")
        raise typer.Exit(2)

    async def use(backend: RegistryBackend) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        check = StandbyCheck(dsn, timeout=min(2.0, ttl / 3))
        try:
            registration = await ServiceRegistry(backend).register(
                service,
                "database",
                address,
                metadata=metadata,
                health_checks=[check],
                ttl=ttl,
            )
            async with registration:
                print(
                    json.dumps(
                        {
                            "instance_id": registration.instance_id,
                            "endpoint": address,
                            "status": registration.status.value,
                        }
                    ),
                    flush=True,
                )
                await stop.wait()
            # Leaving the block deregistered it: gone at once, not after the TTL.
        finally:
            await check.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return 0

    _with_backend(use)
