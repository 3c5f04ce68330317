"""``querybus inboxes``: the adapters' inbox topics, and deleting those of gone adapters.

Lists every topic under ``<prefix>database.query.inbox.`` with the age of its
last record (a live adapter appends a heartbeat every
``QUERYBUS_INBOX_HEARTBEAT`` seconds). ``--sweep`` deletes the retired ones,
with the logic of the adapters' own sweep
(:class:`~querybus.adapter.inbox_sweep.InboxSweeper`): those whose last record
is older than ``--older-than`` (default ``QUERYBUS_INBOX_RETIRE_AFTER``). An
inbox without any record is never deleted here: one look cannot tell how long
it has been empty (the adapters' sweep deletes it once it has seen it empty
for that long).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from querybus.cli.common import configure_client_logging, console
from querybus.config import AdapterSettings, BusSettings
from querybus.errors import QueryBusError
from querybus.transport import connect

if TYPE_CHECKING:
    from querybus.adapter.inbox_sweep import InboxStatus

__all__ = ["inboxes"]


async def _inventory(bus: BusSettings, older_than: float, *, sweep: bool) -> list[InboxStatus]:
    # Imported here: the other commands must not load the adapter's modules.
    from querybus.adapter.inbox_sweep import InboxSweeper

    transport = connect(
        bus.bootstrap_servers,
        client_id="querybus-inboxes",
        security=bus.security,
        request_timeout=15.0,
    )
    try:
        sweeper = InboxSweeper(transport, bus.topics.inbox_prefix, retire_after=older_than)
        return await (sweeper.sweep() if sweep else sweeper.survey())
    finally:
        await transport.close()


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _age(status: InboxStatus) -> float | None:
    # A fresh sweeper's "empty since" is now: no age worth showing.
    return None if status.last_record is None else status.age


def _readable(seconds: float | None) -> str:
    if seconds is None:
        return "no record"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _as_dict(status: InboxStatus) -> dict[str, Any]:
    age = _age(status)
    return {
        "topic": status.topic,
        "state": str(status.state),
        "last_record": _when(status.last_record) or None,
        "age": None if age is None else round(age, 3),
        "error": status.error or None,
    }


def inboxes(
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Delete the retired inboxes (last record older than --older-than).",
        ),
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="SECONDS",
            show_default=False,
            help="The retire age in seconds (default QUERYBUS_INBOX_RETIRE_AFTER, 900). At "
            "least QUERYBUS_TX_MAX_LIFETIME and more than twice QUERYBUS_INBOX_HEARTBEAT, as "
            "for the adapters: a younger inbox may belong to a live adapter.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the adapters' inbox topics with the age of their last record;
    --sweep deletes those of adapters that are gone."""
    configure_client_logging()
    err = console(stderr=True)
    try:
        bus = BusSettings.from_env()
        settings = AdapterSettings.from_env()
    except QueryBusError as exc:
        err.print(f"[red]querybus inboxes failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    retire_after = settings.inbox_retire_after if older_than is None else older_than
    heartbeat, lifetime = settings.inbox_heartbeat, settings.tx_max_lifetime
    if not (retire_after > 2 * heartbeat and retire_after >= lifetime):
        raise typer.BadParameter(
            f"{retire_after:g} s is too young: it must be more than twice "
            f"QUERYBUS_INBOX_HEARTBEAT ({heartbeat:g} s) and at least "
            f"QUERYBUS_TX_MAX_LIFETIME ({lifetime:g} s), or a live adapter's inbox "
            "could be deleted",
            param_hint="--older-than",
        )
    try:
        statuses = asyncio.run(_inventory(bus, retire_after, sweep=sweep))
    except QueryBusError as exc:
        err.print(f"[red]querybus inboxes failed:[/red] {type(exc).__name__}: ", end="")
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    # print(), not rich: the JSON must reach a pipe byte for byte.
    if as_json:
        print(json.dumps([_as_dict(s) for s in statuses]))
        return
    out = console()
    prefix = bus.topics.inbox_prefix
    if not statuses:
        out.print(f"no inbox topics under {prefix!r}", markup=False, highlight=False)
        return
    table = Table("inbox", "last record (UTC)", "age", "state")
    for column in table.columns:
        column.overflow = "fold"  # a cut name is a wrong name
    for status in statuses:
        state = str(status.state)
        if status.error:
            state += f" ({status.error})"
        table.add_row(
            escape(status.topic),
            _when(status.last_record),
            _readable(_age(status)),
            escape(state),
        )
    out.print(table, highlight=False)
    counts = {state: 0 for state in ("retired", "deleted", "empty")}
    for status in statuses:
        if status.state in counts:
            counts[status.state] += 1
    if sweep:
        summary = f"deleted {counts['deleted']} (last record older than {retire_after:g} s)"
    else:
        summary = f"{counts['retired']} retired (last record older than {retire_after:g} s)"
        if counts["retired"]:
            summary += ": `querybus inboxes --sweep` deletes them"
    if counts["empty"]:
        summary += (
            f"; {counts['empty']} without any record, left to the adapters' sweep "
            "(it deletes one once it has seen it empty that long)"
        )
    out.print(summary, markup=False, highlight=False)
