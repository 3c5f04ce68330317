"""The committed protocol documents match the code, are well-formed, and describe real messages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from querybus.errors import ERROR_CODES
from querybus.protocol import values
from querybus.protocol.codec import decode_reply, decode_request, encode
from querybus.protocol.messages import (
    SCHEMA_VERSION,
    Column,
    ErrorInfo,
    Headers,
    OperationType,
    QueryFailure,
    QueryRequest,
    QueryResult,
    ReplyAddress,
    RouteInfo,
    Timings,
)
from querybus.protocol.values import encode_row, encode_rows
from tools.asyncapi import (
    _TAG_PAYLOADS,
    DOCUMENTS,
    asyncapi_document,
    json_schemas,
    main,
    to_yaml,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


# -- validation with the jsonschema package ----------------------------------------


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer (``#/a/b``) in ``root``."""
    assert ref.startswith("#/"), ref
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Validate ``value`` against ``schema``, whose local ``$ref``s point into ``root``.

    Raises:
        jsonschema.ValidationError: ``value`` does not match.
    """
    registry: Registry[Any] = Registry().with_resource(
        root["$id"], Resource.from_contents(root, default_specification=DRAFT202012)
    )
    if "$ref" in schema and schema["$ref"].startswith("#"):
        schema = {**schema, "$ref": root["$id"] + schema["$ref"]}
    Draft202012Validator(schema, registry=registry).validate(value)


def test_json_schema_is_a_valid_2020_12_schema() -> None:
    schema = json_schemas()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


# -- staleness ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_committed_document_is_current(name: str) -> None:
    path = DOCS / name
    assert path.is_file(), f"{path} is missing: run `python tools/asyncapi.py --write`"
    assert path.read_text(encoding="utf-8") == DOCUMENTS[name](), (
        f"{path} is stale: run `python tools/asyncapi.py --write` and commit it"
    )


def test_check_command_reports_stale_documents(tmp_path: Path) -> None:
    assert main(["--check", "--docs-dir", str(tmp_path)]) == 1
    assert main(["--write", "--docs-dir", str(tmp_path)]) == 0
    assert main(["--check", "--docs-dir", str(tmp_path)]) == 0
    (tmp_path / "asyncapi.yaml").write_text("asyncapi: 2.6.0\n")
    assert main(["--check", "--docs-dir", str(tmp_path)]) == 1


# -- AsyncAPI structure ---------------------------------------------------------------


def test_asyncapi_structure() -> None:
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert doc["servers"]["kafka"]["protocol"] == "kafka"
    for cname, channel in doc["channels"].items():
        assert channel["address"], cname
        for mname, ref in channel["messages"].items():
            msg = _resolve(doc, ref["$ref"])
            assert "payload" in msg, (cname, mname)
            payload = msg["payload"]
            if "$ref" in payload:
                _resolve(doc, payload["$ref"])
            headers = msg.get("headers", {"properties": {}})
            assert set(headers.get("required", [])) <= set(headers["properties"])
    for oname, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), oname
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), oname
        channel = _resolve(doc, channel_ref)
        for m in op.get("messages", []):
            # An operation's messages must be messages of its own channel.
            assert m["$ref"].startswith(channel_ref + "/messages/"), (oname, m)
            _resolve(doc, m["$ref"])
        if "reply" in op:
            reply_channel = op["reply"]["channel"]["$ref"]
            _resolve(doc, reply_channel)
            for m in op["reply"]["messages"]:
                assert m["$ref"].startswith(reply_channel + "/messages/")
        assert channel["address"]
    assert doc["operations"]["sendQuery"]["reply"]["channel"] == {
        "$ref": "#/channels/queryResponse"
    }


def test_every_ref_resolves() -> None:
    for doc in (asyncapi_document(), json_schemas()):

        def walk(node: Any, doc: dict[str, Any] = doc) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    _resolve(doc, node["$ref"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(doc)


def test_every_header_is_documented() -> None:
    doc = asyncapi_document()
    used = {
        name
        for msg in doc["components"]["messages"].values()
        for name in msg.get("headers", {}).get("properties", {})
    }
    defined = {v for k, v in vars(Headers).items() if k.isupper()}
    assert defined == used


def test_value_tags_match_the_decoder() -> None:
    assert set(_TAG_PAYLOADS) == set(values._DECODERS)
    table = json_schemas()["$defs"]["Value"]["description"]
    for tag in _TAG_PAYLOADS:
        assert f'"{tag}"' in table


# -- real messages against the generated schema ----------------------------------------

_VALUES: list[Any] = [
    1,
    -(2**62),
    1.5,
    float("nan"),
    float("-inf"),
    "é",
    "",
    True,
    None,
    Decimal("12.50"),
    Decimal("-1E+3"),
    UUID(int=7),
    b"\x00\xff",
    bytearray(b"ab"),
    dt.date(2026, 1, 2),
    dt.time(1, 2, 3, 4),
    dt.time(1, 2, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.timedelta(days=-1, microseconds=3),
    {"a": [1, {"b": None}]},
    [1, [2, 3], None],
    [],
    (Decimal("1"), "x"),
]


def _wire(message: Any) -> Any:
    return msgspec.json.decode(encode(message))


def _request() -> QueryRequest:
    return QueryRequest(
        id="c1",
        client="qb-1",
        op=OperationType.SELECT,
        sql="SELECT $1",
        params=encode_row(_VALUES),
        reply_to=ReplyAddress("database.query.response", 2),
        deadline=1.0e9,
        idem="k",
        max_staleness=2.5,
    )


def _result() -> QueryResult:
    return QueryResult(
        id="c1",
        command="SELECT 2",
        columns=[Column("a", "int4"), Column("b", "numeric")],
        rows=encode_rows([_VALUES, list(reversed(_VALUES))]),
        rowcount=2,
        lsn="0/16B3748",
        timings=Timings(queue=0.001, execute=0.002),
        route=RouteInfo(target="primary", reason="write"),
        served_by="adapter-1",
    )


def _failure() -> QueryFailure:
    return QueryFailure(
        id="c1",
        error=ErrorInfo(
            code="query", message="boom", sqlstate="42P01", detail="d", hint="h", retriable=False
        ),
    )


@pytest.mark.parametrize(
    ("name", "message", "decode"),
    [
        ("QueryRequest", _request(), decode_request),
        ("QueryResult", _result(), decode_reply),
        ("QueryFailure", _failure(), decode_reply),
        (
            "QueryRequest",
            QueryRequest(id="c", client="q", sql="x", reply_to=ReplyAddress("t", 0), deadline=0.0),
            decode_request,
        ),
    ],
)
def test_real_messages_validate(name: str, message: Any, decode: Any) -> None:
    schema = json_schemas()
    wire = _wire(message)
    validate(wire, {"$ref": f"#/$defs/{name}"}, schema)
    validate(wire, schema, schema)  # the top-level anyOf
    # msgspec, the oracle, accepts it and loses nothing.
    assert encode(decode(encode(message))) == encode(message)


@pytest.mark.parametrize("value", _VALUES, ids=repr)
def test_every_value_matches_exactly_one_branch(value: Any) -> None:
    schema = json_schemas()
    validate(_wire(values.encode_value(value)), {"$ref": "#/$defs/Value"}, schema)


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        (
            "QueryRequest",
            {
                "v": SCHEMA_VERSION,
                "id": "c",
                "client": "q",
                "reply_to": {"topic": "t", "partition": 0},
                "deadline": 1.0,
            },
        ),  # no sql
        (
            "QueryRequest",
            {
                "v": SCHEMA_VERSION + 1,
                "id": "c",
                "client": "q",
                "sql": "x",
                "reply_to": {"topic": "t", "partition": 0},
                "deadline": 1.0,
            },
        ),
        (
            "QueryRequest",
            {
                "id": "c",
                "client": "q",
                "sql": "x",
                "op": "MERGE",
                "reply_to": {"topic": "t", "partition": 0},
                "deadline": 1.0,
            },
        ),
        ("QueryResult", {"status": "ok", "id": "c", "rows": [[{"$nope": 1}]]}),
        ("QueryResult", {"status": "ok", "id": "c", "rows": [[{"$dec": "1", "$uuid": "x"}]]}),
        ("QueryFailure", {"status": "error", "id": "c", "error": {"message": "m"}}),
    ],
)
def test_invalid_messages_are_refused_by_schema_and_decoder(name: str, doc: Any) -> None:
    schema = json_schemas()
    with pytest.raises(ValidationError):
        validate(doc, {"$ref": f"#/$defs/{name}"}, schema)
    decode = decode_request if name == "QueryRequest" else decode_reply
    data = msgspec.json.encode(doc)
    try:
        message = decode(data)
    except Exception:
        return
    # The decoder keeps values in wire form; decoding them is where bad tags fail.
    with pytest.raises(Exception, match="tag"):
        values.decode_rows(message.rows)


def test_protocol_md_lists_every_error_code() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    missing = [code for code in ERROR_CODES if f"`{code}`" not in text]
    assert not missing


def test_yaml_emitter_quotes_what_yaml_would_misread() -> None:
    out = to_yaml(
        {"a": "yes", "b": "3.0.0", "c": "#x", "d": "x: y", "e": "", "$ref": "ok", "f": [], "g": {}}
    )
    assert out.splitlines() == [
        'a: "yes"',
        'b: "3.0.0"',
        'c: "#x"',
        'd: "x: y"',
        'e: ""',
        '"$ref": ok',
        "f: []",
        "g: {}",
    ]
