"""Helpers shared by the CLI commands: settings from the environment, argument
typing, printing rows, running coroutines."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import logging
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from querybus.errors import RegistryError
from querybus.registry import RegistryClient, RegistrySettings, registry_from_settings

__all__ = [
    "configure_logging",
    "discovery_from_env",
    "jsonable",
    "load_stack_env",
    "parse_param",
    "run",
]

log = logging.getLogger("querybus.cli")


@contextlib.asynccontextmanager
async def discovery_from_env() -> AsyncIterator[RegistryClient | None]:
    """A started registry client when ``QUERYBUS_REGISTRY`` is set, else None.

    An unreachable registry yields None (the caller then uses its configured
    topic) after one warning: discovery must never stop a query from running.
    """
    if not os.environ.get("QUERYBUS_REGISTRY"):
        yield None
        return
    backend = registry_from_settings(RegistrySettings.from_env())
    try:
        await backend.start()
    except RegistryError as exc:
        log.warning("service registry unreachable (%s); using the configured request topic", exc)
        yield None
        return
    try:
        yield RegistryClient(backend)
    finally:
        await backend.stop()


T = TypeVar("T")


def load_stack_env(path: Path = Path(".stack/env")) -> None:
    """Read ``export NAME=value`` lines of ``.stack/env`` into the environment,
    without overriding variables already set (so ``. .stack/env`` is optional
    when running from the repository)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.startswith("export ") or "=" not in line:
            continue
        name, _, value = line[len("export ") :].partition("=")
        value = value.strip().strip("'\"")
        os.environ.setdefault(name.strip(), value)


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, replacing any handlers already installed."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiokafka logs whole records at DEBUG (parameter values included) and is
    # chatty about group membership at INFO; httpx logs every registry call.
    # Keep both to warnings, whatever the level.
    for name in ("aiokafka", "httpx"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def parse_param(text: str) -> Any:
    """Type a command-line parameter the way a user expects.

    ``41`` → int, ``4.5`` → float, ``true``/``false`` → bool, ``null`` → None,
    ``{…}``/``[…]`` → JSON, anything else → str. Quote-wrap (``"'41'"``) or use
    ``--raw`` to send digits as text.
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if any(c.isdigit() for c in text):
            return float(text)
    except ValueError:
        pass
    if text[:1] in "{[":
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def jsonable(value: Any) -> Any:
    """A Python value in a form ``json`` can print (for ``--json`` output)."""
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [jsonable(v) for v in value]
    return value


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
