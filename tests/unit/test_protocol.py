"""The wire codec: round trips, and strict decoding that names what is wrong."""

from __future__ import annotations

import time

import msgspec
import pytest

from querybus.errors import ProtocolError
from querybus.protocol import (
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
    RoutePreference,
    Timings,
    decode_reply,
    decode_request,
    encode,
    encode_row,
    peek_version,
)


def make_request(**overrides: object) -> QueryRequest:
    fields: dict[str, object] = {
        "id": "c0ffee",
        "client": "client-1",
        "op": OperationType.SELECT,
        "sql": "SELECT $1::int, $2::text",
        "params": encode_row([1, "x"]),
        "reply_to": ReplyAddress("database.query.response", 3),
        "deadline": time.time() + 30,
        "sent_at": time.time(),
    }
    fields.update(overrides)
    return QueryRequest(**fields)  # type: ignore[arg-type]


def as_dict(data: bytes) -> dict[str, object]:
    return msgspec.json.decode(data)  # type: ignore[no-any-return]


def test_request_round_trips_with_every_field() -> None:
    req = make_request(
        many=False,
        idem="key-1",
        route=RoutePreference.REPLICA,
        max_staleness=2.5,
        min_lsn="0/16B3748",
    )
    data = encode(req)
    assert decode_request(data) == req
    doc = as_dict(data)
    assert doc["v"] == SCHEMA_VERSION
    assert doc["op"] == "SELECT"
    assert doc["reply_to"] == {"topic": "database.query.response", "partition": 3}
    assert peek_version(data) == SCHEMA_VERSION


def test_request_defaults_are_optional_on_the_wire() -> None:
    doc = {
        "v": 1,
        "id": "a",
        "client": "c",
        "sql": "SELECT 1",
        "reply_to": {"topic": "t", "partition": 0},
        "deadline": 1.0,
    }
    req = decode_request(msgspec.json.encode(doc))
    assert req.op is None
    assert req.params == []
    assert req.many is False
    assert req.idem is None
    assert req.route is RoutePreference.AUTO


def test_result_reply_round_trips() -> None:
    reply = QueryResult(
        id="c0ffee",
        command="SELECT 2",
        columns=[Column("id", "int4"), Column("name", "text")],
        rows=[[1, "a"], [2, {"$dec": "1.5"}]],
        rowcount=2,
        lsn="0/1",
        timings=Timings(queue=0.001, execute=0.002, total=0.004),
        route=RouteInfo(target="primary", reason="write"),
        served_by="adapter-1",
    )
    data = encode(reply)
    assert as_dict(data)["status"] == "ok"
    assert decode_reply(data) == reply


def test_failure_reply_round_trips() -> None:
    reply = QueryFailure(
        id="c0ffee",
        error=ErrorInfo(
            code="query",
            message="relation does not exist",
            sqlstate="42P01",
            detail="d",
            hint="h",
            retriable=False,
        ),
        served_by="adapter-1",
    )
    data = encode(reply)
    assert as_dict(data)["status"] == "error"
    decoded = decode_reply(data)
    assert isinstance(decoded, QueryFailure)
    assert decoded == reply


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe", b"[1, 2]", b"null", b"42", b'"text"', b"{"],
)
def test_request_that_is_not_a_json_object_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(data)
    with pytest.raises(ProtocolError):
        decode_reply(data)


@pytest.mark.parametrize("missing", ["id", "client", "sql", "reply_to", "deadline"])
def test_missing_required_field_is_named(missing: str) -> None:
    doc = as_dict(encode(make_request()))
    del doc[missing]
    with pytest.raises(ProtocolError, match=missing):
        decode_request(msgspec.json.encode(doc))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deadline", "soon"),
        ("sql", 42),
        ("op", "TRUNCATE_EVERYTHING"),
        ("route", "nowhere"),
        ("params", {"a": 1}),
        ("many", "yes"),
        ("reply_to", {"topic": "t"}),
    ],
)
def test_mistyped_field_is_named(field: str, value: object) -> None:
    doc = as_dict(encode(make_request()))
    doc[field] = value
    with pytest.raises(ProtocolError, match=field):
        decode_request(msgspec.json.encode(doc))


def test_unsupported_schema_version_is_refused() -> None:
    doc = as_dict(encode(make_request()))
    doc["v"] = 99
    with pytest.raises(ProtocolError, match="schema version 99"):
        decode_request(msgspec.json.encode(doc))
    # Even when the rest of the message has another shape, the version is the reason given.
    with pytest.raises(ProtocolError, match="schema version 99"):
        decode_request(b'{"v": 99, "totally": "different"}')
    with pytest.raises(ProtocolError, match="schema version 99"):
        decode_reply(b'{"v": 99, "status": "ok", "id": "x"}')
    reply = as_dict(encode(QueryResult(id="x")))
    reply["v"] = 2
    with pytest.raises(ProtocolError, match="schema version 2"):
        decode_reply(msgspec.json.encode(reply))


def test_reply_with_unknown_status_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_reply(b'{"v": 1, "status": "maybe", "id": "x"}')
    with pytest.raises(ProtocolError, match="error"):
        decode_reply(b'{"v": 1, "status": "error", "id": "x"}')  # no error info


def test_peek_version() -> None:
    assert peek_version(b'{"v": 7}') == 7
    assert peek_version(b'{"other": 1}') == -1
    with pytest.raises(ProtocolError):
        peek_version(b"[]")


def test_header_names_are_stable() -> None:
    # Other implementations route on these without decoding bodies: they are wire format.
    assert Headers.CORRELATION_ID == "querybus-correlation-id"
    assert Headers.REPLY_TOPIC == "querybus-reply-topic"
    assert Headers.REPLY_PARTITION == "querybus-reply-partition"
    assert Headers.DLQ_REASON == "querybus-dlq-reason"


def test_operation_type_values_are_the_original_names() -> None:
    assert [o.value for o in OperationType] == [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "DDL",
        "OTHER",
    ]
    assert OperationType("SELECT") is OperationType.SELECT
    assert isinstance(OperationType.SELECT, str)
