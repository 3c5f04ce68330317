"""The protocol's machine-readable documents, generated from the code.

Two documents are built here from the msgspec structs of
:mod:`querybus.protocol.messages`, the value encoding of
:mod:`querybus.protocol.values`, the header names of
:class:`~querybus.protocol.messages.Headers` and the topic defaults of
:class:`~querybus.config.TopicNames`:

* a JSON Schema (2020-12) of every wire message, ``docs/protocol.schema.json``;
* an AsyncAPI 3.0 document of the topics, messages and operations,
  ``docs/asyncapi.yaml``.

Both are committed; ``python tools/asyncapi.py --check`` (and a
unit test) fail when they differ from what the code generates, and
``--write`` regenerates them. Nothing is copied by hand: a renamed field, a
new header or a new value tag changes the documents, and the check says so.

The YAML is written by a small emitter (block style, JSON-quoted strings
where a plain scalar could be misread) so that no YAML library is needed.

This is repository tooling, not part of the installed package: the runtime
never imports it (it reads :mod:`querybus.routing.decisions`, which a caller's
install does not need).
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from querybus.config import AdapterSettings, BusSettings, TopicNames
from querybus.errors import ERROR_CODES
from querybus.protocol import values
from querybus.protocol.messages import (
    SCHEMA_VERSION,
    Headers,
    QueryFailure,
    QueryRequest,
    QueryResult,
)
from querybus.routing.decisions import RoutingDecision

__all__ = [
    "asyncapi_document",
    "json_schemas",
    "main",
    "render_asyncapi_yaml",
    "render_json_schema",
    "to_yaml",
    "value_encoding_table",
]

#: The AsyncAPI Kafka bindings version the bindings below follow.
KAFKA_BINDING_VERSION = "0.5.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_STRUCTS: tuple[type[msgspec.Struct], ...] = (
    QueryRequest,
    QueryResult,
    QueryFailure,
    RoutingDecision,
)

# A placeholder ref prefix, retargeted to ``#/$defs/`` (JSON Schema) or
# ``#/components/schemas/`` (AsyncAPI) once the schemas are assembled.
_REF = "#/__defs__/"


# -- the value encoding ------------------------------------------------------

# One payload schema per tag of querybus.protocol.values. A unit test checks
# that these are exactly the tags the decoder knows.
_TAG_PAYLOADS: dict[str, dict[str, Any]] = {
    "$dec": {
        "type": "string",
        "description": "decimal.Decimal as its exact decimal text (also NaN, Infinity).",
    },
    "$uuid": {"type": "string", "format": "uuid", "description": "uuid.UUID, canonical form."},
    "$bytes": {
        "type": "string",
        "contentEncoding": "base64",
        "description": "bytes, bytearray or memoryview, standard base64 with padding.",
    },
    "$date": {"type": "string", "format": "date", "description": "datetime.date, ISO 8601."},
    "$time": {
        "type": "string",
        "description": "datetime.time, ISO 8601 (HH:MM:SS[.ffffff][+HH:MM]); no offset = naive.",
    },
    "$dt": {
        "type": "string",
        "description": (
            "datetime.datetime, ISO 8601 (YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM|Z]); "
            "no offset = naive, an offset = aware."
        ),
    },
    "$td": {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "integer"}, {"type": "integer"}],
        "minItems": 3,
        "maxItems": 3,
        "description": "datetime.timedelta as [days, seconds, microseconds] (normalized).",
    },
    "$float": {
        "enum": ["nan", "inf", "-inf"],
        "description": "a float JSON cannot write: NaN or an infinity.",
    },
    "$json": {"description": "a json/jsonb document (a dict, or any JSON value) as is."},
}


def _value_examples() -> list[Any]:
    """Wire forms of sample Python values, produced by the real encoder."""
    import datetime as dt
    from decimal import Decimal
    from uuid import UUID

    samples: list[Any] = [
        42,
        2.5,
        "text",
        True,
        None,
        Decimal("12.50"),
        UUID("6f1c5b1e-2d7c-4a7e-9a43-2c1f0e1d9b7a"),
        b"\x00\x01qb",
        dt.date(2026, 11, 27),
        dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 27, 12, 0),
        dt.timedelta(days=1, seconds=5, microseconds=7),
        float("nan"),
        {"k": [1, 2]},
        [1, None, 3],
    ]
    return [msgspec.json.decode(msgspec.json.encode(values.encode_value(s))) for s in samples]


def value_encoding_table() -> str:
    """The value encoding table, as the module docstring of :mod:`querybus.protocol.values`
    writes it (the paragraph that introduces it, the table, the paragraph after it).

    Raises:
        RuntimeError: the docstring no longer has a ``::`` literal block.
    """
    text = inspect.cleandoc(values.__doc__ or "")
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text)]
    for i, para in enumerate(paragraphs):
        if para.rstrip().endswith("::") and i + 1 < len(paragraphs):
            intro = para.rstrip()[:-1]  # "…as a one-key object…::" → "…:"
            return "\n\n".join([intro, *paragraphs[i + 1 : i + 3]])
    raise RuntimeError("querybus.protocol.values' docstring has no '::' table")


def _value_schema() -> dict[str, Any]:
    tagged = [
        {
            "type": "object",
            "properties": {tag: payload},
            "required": [tag],
            "additionalProperties": False,
        }
        for tag, payload in _TAG_PAYLOADS.items()
    ]
    return {
        "title": "Value",
        "description": "A parameter or cell value on the wire.\n\n" + value_encoding_table(),
        "oneOf": [
            {
                "type": ["null", "boolean", "number", "string"],
                "description": "int, finite float, str, bool and None travel as themselves.",
            },
            {
                "type": "array",
                "items": {"$ref": _REF + "Value"},
                "description": "a list or tuple: an array (or a json list) of encoded values.",
            },
            *tagged,
        ],
        "examples": _value_examples(),
    }


# -- message schemas ---------------------------------------------------------


def _attribute_docs(cls: type) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and its ``Attributes:`` entries."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    head, sep, rest = doc.partition("\nAttributes:\n")
    attrs: dict[str, str] = {}
    if sep:
        name: str | None = None
        for line in rest.splitlines():
            m = re.match(r"^ {4}(\w+): (.*)$", line)
            if m:
                name = m.group(1)
                attrs[name] = m.group(2).strip()
            elif name is not None and line.startswith("        "):
                attrs[name] += " " + line.strip()
            elif line.strip():
                name = None  # another section
    return head.strip(), attrs


def _struct_components() -> dict[str, dict[str, Any]]:
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template=_REF + "{name}")
    # Component names are class names; find the classes in the messages' modules.
    by_name: dict[str, type] = {}
    for module in {sys.modules[cls.__module__] for cls in _STRUCTS}:
        by_name.update((n, t) for n, t in vars(module).items() if isinstance(t, type))
    for name, schema in components.items():
        cls = by_name.get(name)
        if cls is None:
            continue
        summary, attrs = _attribute_docs(cls)
        if summary:
            schema["description"] = summary
        for prop, text in attrs.items():
            if prop in schema.get("properties", {}):
                schema["properties"][prop]["description"] = text
    return dict(sorted(components.items()))


def _patch_messages(defs: dict[str, dict[str, Any]]) -> None:
    """Say what the structs keep as ``Any``: parameters and cells are Values,
    and ``v`` is exactly this code's schema version."""
    value = {"$ref": _REF + "Value"}
    req = defs["QueryRequest"]["properties"]
    req["params"]["items"] = value
    req["params"].setdefault(
        "description",
        "parameters in wire form: one list of Values, or with many a list of such lists",
    )
    defs["QueryResult"]["properties"]["rows"]["items"] = {"type": "array", "items": value}
    for name in ("QueryRequest", "QueryResult", "QueryFailure"):
        v = defs[name]["properties"]["v"]
        v["const"] = SCHEMA_VERSION
        v["description"] = (
            f"schema version; this code writes {SCHEMA_VERSION} and refuses any other"
        )
    known = ", ".join(sorted(ERROR_CODES))
    code = defs["ErrorInfo"]["properties"]["code"]
    code["description"] = (
        f"querybus error code (querybus.errors.ERROR_CODES): {known}. "
        "A reader that does not know a code raises the root error; "
        "with a sqlstate, the QueryError subclass for its SQLSTATE class."
    )


def _retarget(node: Any, prefix: str, *, draft07: bool = False) -> Any:
    """A deep copy of ``node`` with refs pointing under ``prefix``; with
    ``draft07``, 2020-12 ``prefixItems`` become draft-07 tuple ``items``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, val in node.items():
            if key == "$ref" and isinstance(val, str) and val.startswith(_REF):
                out[key] = prefix + val[len(_REF) :]
            elif draft07 and key == "prefixItems":
                out["items"] = _retarget(val, prefix, draft07=draft07)
            else:
                out[key] = _retarget(val, prefix, draft07=draft07)
        return out
    if isinstance(node, list):
        return [_retarget(x, prefix, draft07=draft07) for x in node]
    return copy.copy(node)


def _definitions() -> dict[str, dict[str, Any]]:
    defs = _struct_components()
    _patch_messages(defs)
    defs["Value"] = _value_schema()
    return dict(sorted(defs.items()))


def json_schemas() -> dict[str, Any]:
    """The JSON Schema (2020-12) of every wire message.

    Returns:
        One schema document: ``$defs`` holds each message and the structs and
        enums it uses, plus ``Value`` (the typed value encoding); the document
        itself accepts any of the four top-level messages.
    """
    defs = _definitions()
    top = ["QueryRequest", "QueryResult", "QueryFailure", "RoutingDecision"]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:querybus:protocol:v{SCHEMA_VERSION}",
        "title": f"querybus wire protocol, schema version {SCHEMA_VERSION}",
        "description": (
            "Generated by `python tools/asyncapi.py --write` from "
            "querybus.protocol.messages; do not edit. Requests travel on the "
            "request topic, QueryResult/QueryFailure (tagged by status) on the "
            "caller's reply partition, QueryFailure copies on the error topic, "
            "RoutingDecision on the routing decisions topic."
        ),
        "anyOf": [{"$ref": "#/$defs/" + name} for name in top],
        "$defs": _retarget(defs, "#/$defs/"),
    }


# -- AsyncAPI ------------------------------------------------------------------

_HEADER_DOCS: dict[str, str] = {
    Headers.CORRELATION_ID: "correlation id: the request's `id`, repeated on its reply",
    Headers.REPLY_TOPIC: "the topic of the caller's reply address (`reply_to.topic`)",
    Headers.REPLY_PARTITION: (
        "the partition of the caller's reply address (`reply_to.partition`), in decimal"
    ),
    Headers.CLIENT_ID: "id of the client instance the request comes from / the reply is for",
    Headers.DLQ_REASON: "why the record was dead-lettered (UTF-8, at most 1000 bytes)",
    Headers.AUTHORIZATION: (
        "the caller's signed token (a JWT, ASCII, at most 16 KB), when the adapter checks "
        "identities; never copied to a reply, a dead letter, a log or the audit topic"
    ),
    Headers.TRANSACTION: (
        "on an adapter's unsolicited notice (a QueryFailure with code transaction_lost and "
        "correlation id lost-<id>): the id of the interactive transaction it rolled back "
        "(adapter stopping, idle timeout, maximum lifetime); the client matches it by this"
    ),
    Headers.HEARTBEAT: (
        "on an adapter's heartbeat in its own inbox: the adapter's heartbeat interval in "
        "seconds (decimal); the record's value is empty"
    ),
}


def _header_names() -> list[str]:
    names = [v for k, v in vars(Headers).items() if k.isupper() and isinstance(v, str)]
    missing = [n for n in names if n not in _HEADER_DOCS]
    if missing:
        raise RuntimeError(f"headers without documentation in tools/asyncapi.py: {missing}")
    return names


def _headers(required: Sequence[str], optional: Sequence[str] = (), *, more: bool = False) -> Any:
    _header_names()  # every header the code defines is documented
    props: dict[str, Any] = {}
    for name in [*required, *optional]:
        schema: dict[str, Any] = {"type": "string", "description": _HEADER_DOCS[name]}
        if name == Headers.REPLY_PARTITION:
            schema["pattern"] = "^[0-9]+$"
        props[name] = schema
    out: dict[str, Any] = {
        "type": "object",
        "description": "Kafka record headers; values are UTF-8 bytes.",
        "properties": props,
        "required": list(required),
    }
    if more:
        out["additionalProperties"] = True
    return out


def _kafka_key(description: str) -> dict[str, Any]:
    return {"key": {"type": "string", "description": description}}


def _message(
    name: str,
    title: str,
    summary: str,
    payload: Any,
    headers: Any,
    *,
    key: str | None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    kafka: dict[str, Any] = _kafka_key(key) if key is not None else {}
    kafka["bindingVersion"] = KAFKA_BINDING_VERSION
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": content_type,
        "headers": headers,
        "payload": payload,
        "bindings": {"kafka": kafka},
    }


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + name}


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the querybus protocol.

    Returns:
        The document as plain JSON-compatible data.
    """
    topics = TopicNames()
    bus = BusSettings()
    adapter = AdapterSettings()
    version = importlib.metadata.version("querybus")
    H = Headers

    request_headers = _headers(
        [H.CORRELATION_ID, H.REPLY_TOPIC, H.REPLY_PARTITION, H.CLIENT_ID], [H.AUTHORIZATION]
    )
    reply_headers = _headers([H.CORRELATION_ID], [H.CLIENT_ID, H.TRANSACTION])
    messages = {
        "QueryRequest": _message(
            "QueryRequest",
            "Query request",
            "Run one SQL statement and reply to reply_to.",
            _schema_ref("QueryRequest"),
            request_headers,
            key=(
                "the idempotency key (`idem`) when there is one, otherwise no key "
                "(the producer spreads requests over partitions)"
            ),
        ),
        "QueryResult": _message(
            "QueryResult",
            "Successful reply",
            "Columns, rows and timings of a statement that ran; status is ok.",
            _schema_ref("QueryResult"),
            reply_headers,
            key=None,
        ),
        "QueryFailure": _message(
            "QueryFailure",
            "Failed reply",
            "Why a request failed (querybus code, SQLSTATE, retriable); status is error.",
            _schema_ref("QueryFailure"),
            reply_headers,
            key=None,
        ),
        "ErrorCopy": _message(
            "ErrorCopy",
            "Copy of a failed reply",
            "Every QueryFailure an adapter replies with, for monitoring.",
            _schema_ref("QueryFailure"),
            _headers([H.CORRELATION_ID]),
            key="the correlation id",
        ),
        "DeadLetter": _message(
            "DeadLetter",
            "Dead letter",
            "A record the adapter could not use: its original bytes, key and headers, "
            f"plus {H.DLQ_REASON}.",
            {
                "description": (
                    "the original record value, byte for byte (absent when the original "
                    "was a tombstone or too large to copy)"
                )
            },
            _headers(
                [H.DLQ_REASON],
                [H.CORRELATION_ID, H.REPLY_TOPIC, H.REPLY_PARTITION, H.CLIENT_ID],
                more=True,
            ),
            key="the original record's key",
            content_type="application/octet-stream",
        ),
        "InboxHeartbeat": _message(
            "InboxHeartbeat",
            "Inbox heartbeat",
            "A running adapter's sign of life in its own inbox, at start and every "
            "QUERYBUS_INBOX_HEARTBEAT seconds; its reader skips it.",
            {"description": "empty"},
            _headers([H.HEARTBEAT]),
            key=None,
            content_type="application/octet-stream",
        ),
        "RoutingDecision": _message(
            "RoutingDecision",
            "Routing decision",
            "Where one statement ran, why, and how it went.",
            _schema_ref("RoutingDecision"),
            {"type": "object", "properties": {}},
            key=None,
        ),
    }
    for msg in messages.values():
        if not msg["headers"]["properties"]:
            del msg["headers"]

    def channel(
        address: str, description: str, names: Sequence[str], partitions: int | None = None
    ) -> dict[str, Any]:
        kafka: dict[str, Any] = {"bindingVersion": KAFKA_BINDING_VERSION}
        if partitions is not None:
            kafka = {"partitions": partitions, **kafka}
        return {
            "address": address,
            "description": description,
            "messages": {n[0].lower() + n[1:]: _ref("components", "messages", n) for n in names},
            "bindings": {"kafka": kafka},
        }

    channels = {
        "queryRequest": channel(
            topics.request,
            "Requests from every client, consumed by the adapters' consumer group. "
            "An adapter commits a request's offset only after its reply is produced "
            "(at-least-once). Partitions: the default when querybus creates the topic.",
            ["QueryRequest"],
            bus.request_partitions,
        ),
        "queryResponse": channel(
            topics.response,
            "The reply channel. Each client instance reads one partition of this topic, "
            "assigned manually (no consumer group, no rebalance), its position resolved "
            "before the first request; that partition is the client's reply address and "
            f"travels in the request body (`reply_to`) and in the {H.REPLY_TOPIC} and "
            f"{H.REPLY_PARTITION} headers. The adapter produces the reply to exactly that "
            "partition. Several clients may share a partition: each matches replies to "
            "its own requests by correlation id and drops the rest.",
            ["QueryResult", "QueryFailure"],
            bus.response_partitions,
        ),
        "queryError": channel(
            topics.error,
            "A copy of every error reply, keyed by correlation id, for monitoring.",
            ["ErrorCopy"],
        ),
        "queryDeadLetter": channel(
            topics.dead_letter,
            "Records the adapter could not decode or handle: the original bytes, key and "
            f"headers plus a {H.DLQ_REASON} header. Nothing an adapter receives is "
            "silently lost.",
            ["DeadLetter"],
        ),
        "adapterInbox": {
            **channel(
                topics.inbox_prefix + "{instance}",
                "One adapter's inbox (one partition, read by that adapter alone, without a "
                "group): the requests of the interactive transactions it holds (the reply to "
                "BEGIN names it in `tx.inbox`), and its heartbeats. The other adapters delete "
                "an inbox whose last record is older than QUERYBUS_INBOX_RETIRE_AFTER.",
                ["QueryRequest", "InboxHeartbeat"],
                1,
            ),
            "parameters": {"instance": {"description": "the adapter's instance id"}},
        },
        "routingDecisions": channel(
            topics.routing_decisions,
            "One record per routed statement, for later analysis.",
            ["RoutingDecision"],
        ),
    }

    def op_messages(ch: str) -> list[dict[str, str]]:
        return [_ref("channels", ch, "messages", m) for m in channels[ch]["messages"]]

    reply = {
        "description": (
            "The adapter replies on the response channel, to the partition named by "
            f"the request's reply_to (also in the {H.REPLY_TOPIC} / {H.REPLY_PARTITION} "
            f"headers), with the request's id as {H.CORRELATION_ID}."
        ),
        "channel": _ref("channels", "queryResponse"),
        "messages": op_messages("queryResponse"),
    }
    operations = {
        "sendQuery": {
            "action": "send",
            "title": "Send a query (client)",
            "summary": "A client sends a request and awaits the reply on its own partition.",
            "channel": _ref("channels", "queryRequest"),
            "messages": op_messages("queryRequest"),
            "reply": reply,
        },
        "receiveReply": {
            "action": "receive",
            "title": "Receive replies (client)",
            "summary": "A client reads its reply partition, manually assigned.",
            "channel": _ref("channels", "queryResponse"),
            "messages": op_messages("queryResponse"),
        },
        "serveQuery": {
            "action": "receive",
            "title": "Serve queries (adapter)",
            "summary": "Adapters consume requests as one consumer group and reply.",
            "channel": _ref("channels", "queryRequest"),
            "messages": op_messages("queryRequest"),
            "reply": reply,
            "bindings": {
                "kafka": {
                    "groupId": {"type": "string", "default": adapter.group_id},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        },
        "receiveError": {
            "action": "receive",
            "title": "Watch error replies",
            "channel": _ref("channels", "queryError"),
            "messages": op_messages("queryError"),
        },
        "receiveDeadLetter": {
            "action": "receive",
            "title": "Inspect dead letters",
            "channel": _ref("channels", "queryDeadLetter"),
            "messages": op_messages("queryDeadLetter"),
        },
        "receiveRoutingDecision": {
            "action": "receive",
            "title": "Analyse routing decisions",
            "channel": _ref("channels", "routingDecisions"),
            "messages": op_messages("routingDecisions"),
        },
    }

    return {
        "asyncapi": "3.0.0",
        "id": f"urn:querybus:protocol:v{SCHEMA_VERSION}",
        "info": {
            "title": "querybus",
            "version": version,
            "description": (
                "SQL over Apache Kafka. Clients publish QueryRequest messages; adapters "
                "execute them on PostgreSQL and reply to the caller's own partition of the "
                f"response topic. Message schema version {SCHEMA_VERSION}: every request "
                "and reply carries it as `v`, and a reader refuses any other.\n\n"
                "Generated by `python tools/asyncapi.py --write`; do not edit. "
                "Topic names are the defaults; a configured prefix is prepended to all "
                "of them. See docs/protocol.md.\n\n" + value_encoding_table()
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": bus.bootstrap_servers,
                "protocol": "kafka",
                "description": (
                    "An example: a local broker as `make services` starts it "
                    "(KAFKA_BOOTSTRAP_SERVERS)."
                ),
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _retarget(_definitions(), "#/components/schemas/", draft07=True),
            "messages": messages,
        },
    }


# -- rendering -------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Plain scalars YAML 1.1 (PyYAML) or 1.2 would read as something other than a string.
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})


def _quote(s: str) -> str:
    # A JSON string is a YAML double-quoted scalar, once the characters YAML
    # treats as line breaks or as unprintable are escaped too.
    out = json.dumps(s, ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out)


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("YAML output does not carry NaN or infinities")
        return json.dumps(v)
    if isinstance(v, str):
        if _PLAIN.match(v) and v.lower() not in _RESERVED:
            return v
        return _quote(v)
    raise TypeError(f"cannot write {type(v).__name__} as YAML")


def _key(k: Any) -> str:
    if not isinstance(k, str):
        raise TypeError("YAML mapping keys must be strings here")
    return k if _PLAIN_KEY.match(k) and k.lower() not in _RESERVED else _quote(k)


def _literal(s: str) -> bool:
    lines = s.split("\n")
    return (
        len(lines) > 1
        and not s.endswith("\n")
        and not s.startswith((" ", "\t"))
        and all(ln == ln.rstrip() and all(c.isprintable() for c in ln) for ln in lines)
    )


def _emit(node: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(node, dict):
        for k, v in node.items():
            _emit_entry(f"{pad}{_key(k)}:", v, indent, out)
    elif isinstance(node, list):
        for item in node:
            _emit_entry(f"{pad}-", item, indent, out)
    else:
        out.append(pad + _scalar(node))


def _emit_entry(head: str, v: Any, indent: int, out: list[str]) -> None:
    is_item = head.endswith("-")
    if isinstance(v, dict | list) and v:
        if is_item:
            # "- " then the first line of the nested block on the same line.
            nested: list[str] = []
            _emit(v, indent + 2, nested)
            out.append(head + " " + nested[0][indent + 2 :])
            out.extend(nested[1:])
        else:
            out.append(head)
            _emit(v, indent + 2, out)
    elif isinstance(v, dict):
        out.append(head + " {}")
    elif isinstance(v, list):
        out.append(head + " []")
    elif isinstance(v, str) and _literal(v):
        out.append(head + " |-")
        body = " " * (indent + 2)
        out.extend(body + ln if ln else "" for ln in v.split("\n"))
    else:
        out.append(head + " " + _scalar(v))


def to_yaml(data: Any) -> str:
    """Write JSON-compatible data as block-style YAML (1.1 and 1.2 read it alike).

    Raises:
        TypeError: a value is not JSON-compatible or a key is not a string.
        ValueError: a float is NaN or infinite.
    """
    out: list[str] = []
    _emit(data, 0, out)
    return "\n".join(out) + "\n"


_HEADER = "# Generated by `python tools/asyncapi.py --write` from the code; do not edit.\n"


def render_asyncapi_yaml() -> str:
    """The AsyncAPI document as YAML, the committed ``docs/asyncapi.yaml``."""
    return _HEADER + to_yaml(asyncapi_document())


def render_json_schema() -> str:
    """The JSON Schema document as JSON, the committed ``docs/protocol.schema.json``."""
    return json.dumps(json_schemas(), indent=2, ensure_ascii=False) + "\n"


#: Generated file name → renderer.
DOCUMENTS: dict[str, Callable[[], str]] = {
    "asyncapi.yaml": render_asyncapi_yaml,
    "protocol.schema.json": render_json_schema,
}


def default_docs_dir() -> Path:
    """``docs/`` of the repository this script is in."""
    return Path(__file__).resolve().parents[1] / "docs"


def stale_documents(docs_dir: Path) -> list[str]:
    """Names of the generated documents that are missing or differ from the code."""
    stale = []
    for name, render in DOCUMENTS.items():
        path = docs_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render():
            stale.append(name)
    return stale


def write_documents(docs_dir: Path) -> list[Path]:
    """(Re)write every generated document; returns the paths written."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in DOCUMENTS.items():
        path = docs_dir / name
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python tools/asyncapi.py [--write | --check] [--docs-dir DIR]``.

    Without options, prints the AsyncAPI document.

    Returns:
        The exit status: 1 when ``--check`` finds a stale document, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python tools/asyncapi.py",
        description="Generate the AsyncAPI document and JSON Schema of the querybus protocol.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the documents under docs/")
    group.add_argument("--check", action="store_true", help="exit 1 when they are stale")
    parser.add_argument("--docs-dir", type=Path, default=None, help="default: the repo's docs/")
    args = parser.parse_args(argv)
    docs_dir: Path = args.docs_dir or default_docs_dir()
    if args.write:
        for path in write_documents(docs_dir):
            print(f"wrote {path}")
        return 0
    if args.check:
        stale = stale_documents(docs_dir)
        for name in stale:
            print(
                f"{docs_dir / name} is stale: run `python tools/asyncapi.py --write`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    sys.stdout.write(render_asyncapi_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
