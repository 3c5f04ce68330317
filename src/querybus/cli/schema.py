"""``querybus schema``: print, write or check the protocol documents."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["schema"]


def schema(
    write: Annotated[
        bool,
        typer.Option("--write", help="Rewrite docs/asyncapi.yaml and docs/protocol.schema.json."),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the committed documents are stale.")
    ] = False,
) -> None:
    """Print the AsyncAPI document of the wire protocol (generated from the code).

    Raises:
        typer.BadParameter: both --write and --check were given.
        typer.Exit: with status 1 when --check finds a stale document.
    """
    from querybus.protocol.schema import main

    if write and check:
        raise typer.BadParameter("--write and --check exclude each other")
    argv = ["--write"] if write else ["--check"] if check else []
    status = main(argv)
    if status:
        raise typer.Exit(status)
