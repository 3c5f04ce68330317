"""``querybus token``: mint an HS256 token for local development.

Signs with the adapters' shared secret (``QUERYBUS_JWT_SECRET``), so it is
only for a developer's own stack and the docs' recipe; production tokens come
from an identity provider.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from querybus.cli.common import console
from querybus.errors import ConfigurationError
from querybus.identity import issue_token

__all__ = ["token"]

# Claims that have their own option: a --claim must not quietly override them.
_RESERVED = frozenset({"role", "sub", "exp", "iat", "nbf", "aud", "iss"})


def token(
    role: Annotated[str, typer.Option(help="The database role the token names (its role claim).")],
    sub: Annotated[str, typer.Option(help="The caller's subject (rate limits are per subject).")],
    ttl: Annotated[float, typer.Option(help="Seconds until the token expires.", min=1)] = 3600,
    claim: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            help="KEY=VALUE: an extra claim; VALUE is JSON when it parses as JSON "
            "(42, true, [1,2]), else text. Repeatable.",
        ),
    ] = None,
    aud: Annotated[str | None, typer.Option(help="Audience (aud claim).")] = None,
    iss: Annotated[str | None, typer.Option(help="Issuer (iss claim).")] = None,
) -> None:
    """Print an HS256 token signed with QUERYBUS_JWT_SECRET (local development only)."""
    err = console(stderr=True)
    secret = os.environ.get("QUERYBUS_JWT_SECRET")
    try:
        if not secret:
            raise ConfigurationError(
                "QUERYBUS_JWT_SECRET is not set (the adapters' HS256 shared secret)"
            )
        extra = _claims(claim or [])
        minted = issue_token(
            secret, role=role, subject=sub, ttl=ttl, claims=extra, audience=aud, issuer=iss
        )
    except ConfigurationError as exc:
        err.print("[red]querybus token failed:[/red] ", end="")
        err.print(exc.message, markup=False, highlight=False)
        raise typer.Exit(1) from None
    # Plain print: the token alone on stdout, for $(querybus token …).
    print(minted)


def _claims(specs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(f"--claim must be KEY=VALUE, got {spec!r}")
        if key in _RESERVED:
            raise ConfigurationError(f"--claim {key}=…: use the --{_option(key)} option instead")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _option(claim: str) -> str:
    return {"exp": "ttl", "iat": "ttl", "nbf": "ttl"}.get(claim, claim)
