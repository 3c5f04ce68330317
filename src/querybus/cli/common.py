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
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import typer
from rich.console import Console

from querybus.client.result import Result
from querybus.errors import RegistryError
from querybus.registry import RegistryClient, RegistrySettings, registry_from_settings

__all__ = [
    "OFF_TERMINAL_WIDTH",
    "PARAM_TYPES",
    "build_params",
    "configure_client_logging",
    "configure_logging",
    "console",
    "convert_param",
    "discovery_from_env",
    "jsonable",
    "load_stack_env",
    "parse_param",
    "parse_param_types",
    "result_as_json",
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


def configure_client_logging() -> None:
    """Logging for the commands that act as a client (``check``, ``query``):
    querybus's warnings on stderr, aiokafka's only from ERROR up. A topic a
    client has just created is "not found in cluster metadata" for a moment:
    expected while starting, and noise in a command's output."""
    configure_logging("WARNING")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


#: Output width when the stream is not a terminal. rich assumes 80 columns
#: there, which wraps lines and cuts table cells (``database-ad…``); a script
#: reading our output must get every id and name whole, on one line.
OFF_TERMINAL_WIDTH = 1_000_000


def console(*, stderr: bool = False) -> Console:
    """A rich console for stdout (or stderr): as wide as the terminal when it is
    one, otherwise :data:`OFF_TERMINAL_WIDTH` wide (no wrapping, no cut cells)."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=OFF_TERMINAL_WIDTH)


def parse_param(text: str) -> Any:
    """Type a command-line parameter, never changing the text a user typed.

    ``true``/``false`` (any case) → bool, ``null`` (any case) → None;
    an integer or float only when Python prints it back exactly as typed
    (``41``, ``-3``, ``4.5``; not ``02134``, ``+5``, ``1e3``, ``1.50``,
    ``1_000``, which stay text); ``{…}``/``[…]`` that parse → JSON;
    ``'…'``/``"…"`` → the text inside the quotes; anything else → text.
    ``--param-type N=TYPE`` overrides this per parameter (see docs/cli.md).
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    # A digit is required so that the words "nan", "inf", "infinity" stay text.
    if any("0" <= c <= "9" for c in text):
        try:
            number = int(text)
        except ValueError:
            pass
        else:
            # "02134" → 2134 would lose the zero; "+5", "1_000", " 5" would
            # not read back either: only exact round trips are numbers.
            return number if str(number) == text else text
        try:
            real = float(text)
        except ValueError:
            pass
        else:
            return real if repr(real) == text else text
    if text[:1] in "{[":
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "t", "yes", "y", "on", "1"):
        return True
    if lowered in ("false", "f", "no", "n", "off", "0"):
        return False
    raise ValueError("not a boolean (true/false, t/f, yes/no, on/off, 1/0)")


def _to_json_text(text: str) -> str:
    # Sent as text: the adapter takes a str for a json/jsonb parameter as an
    # already-encoded document, so scalars ("5", "\"a\"") keep their JSON type.
    msgspec.json.decode(text)
    return text


def _to_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text[:2] in ("\\x", "0x") else text)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": str,
    "int": int,
    "float": float,
    "numeric": decimal.Decimal,
    "bool": _to_bool,
    "json": _to_json_text,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timestamp": dt.datetime.fromisoformat,
    "uuid": uuid.UUID,
    "bytea": _to_bytes,
}

#: Names accepted by ``--param-type``, PostgreSQL's spellings included.
PARAM_TYPES: dict[str, str] = {
    **{name: name for name in _CONVERTERS},
    "str": "text",
    "varchar": "text",
    "integer": "int",
    "smallint": "int",
    "bigint": "int",
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "real": "float",
    "double": "float",
    "float4": "float",
    "float8": "float",
    "decimal": "numeric",
    "boolean": "bool",
    "jsonb": "json",
    "timestamptz": "timestamp",
    "datetime": "timestamp",
    "bytes": "bytea",
}


def parse_param_types(specs: Sequence[str], count: int) -> dict[int, str]:
    """``["1=int", "$3=text"]`` → ``{0: "int", 2: "text"}`` (0-based positions).

    Raises:
        typer.BadParameter: a spec is malformed, names an unknown type, a
            parameter that was not given, or the same parameter twice.
    """
    types: dict[int, str] = {}
    for spec in specs:
        number, sep, name = spec.partition("=")
        number = number.strip().removeprefix("$")
        canonical = PARAM_TYPES.get(name.strip().lower())
        if not sep or not number.isascii() or not number.isdigit():
            raise typer.BadParameter(
                f"{spec!r}: use N=TYPE, e.g. 1=text", param_hint="--param-type"
            )
        if canonical is None:
            raise typer.BadParameter(
                f"{spec!r}: unknown type {name!r}; use one of {', '.join(_CONVERTERS)}",
                param_hint="--param-type",
            )
        position = int(number) - 1
        if not 0 <= position < count:
            raise typer.BadParameter(
                f"{spec!r}: there is no parameter ${number} ({count} given)",
                param_hint="--param-type",
            )
        if position in types:
            raise typer.BadParameter(
                f"{spec!r}: parameter ${number} already has a type", param_hint="--param-type"
            )
        types[position] = canonical
    return types


def convert_param(text: str, type_name: str) -> Any:
    """``text`` as a value of ``type_name`` (a key or alias of :data:`PARAM_TYPES`).

    Raises:
        typer.BadParameter: the text is not a value of that type.
    """
    canonical = PARAM_TYPES[type_name.lower()]
    try:
        return _CONVERTERS[canonical](text)
    except (ValueError, ArithmeticError, msgspec.DecodeError) as exc:
        raise typer.BadParameter(
            f"{text!r} is not a valid {canonical} ({exc})", param_hint="--param-type"
        ) from None


def build_params(
    texts: Sequence[str], specs: Sequence[str] = (), *, raw: bool = False
) -> list[Any]:
    """The values to send for command-line parameters ``texts``.

    A parameter with a ``--param-type`` spec is converted to that type; the
    others are inferred by :func:`parse_param`, or sent as text with ``raw``.

    Raises:
        typer.BadParameter: a spec or a typed value is invalid.
    """
    types = parse_param_types(specs, len(texts))
    return [
        convert_param(text, types[i]) if i in types else text if raw else parse_param(text)
        for i, text in enumerate(texts)
    ]


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


def result_as_json(result: Result) -> dict[str, Any]:
    """A result as one JSON-ready object (``query --json``, ``dev --json``)."""
    return {
        "ok": True,
        "command": result.command,
        "rowcount": result.rowcount,
        "columns": [{"name": c.name, "type": c.type} for c in result.columns],
        "rows": [jsonable(r.as_dict()) for r in result.rows],
        "correlation_id": result.correlation_id,
        "elapsed_ms": round(result.elapsed * 1000, 3),
    }
