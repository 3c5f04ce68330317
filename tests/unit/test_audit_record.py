"""Audit records: their fields, no parameter values unless asked, and a round trip."""

from __future__ import annotations

import json

import msgspec
import pytest

from querybus.adapter.audit import AuditRecord, decode_audit, encode_audit
from querybus.config import AdapterSettings
from querybus.protocol.messages import OperationType


def _record(**changes: object) -> AuditRecord:
    fields: dict[str, object] = {
        "ts": 1_700_000_000.25,
        "id": "c0ffee",
        "client": "client-1",
        "adapter": "adapter-a",
        "subject": "user-42",
        "role": "reporting",
        "fingerprint": "a1b2c3d4e5f60718",
        "operation": OperationType.SELECT,
        "statement_type": "SelectStmt",
        "target": "replica:r1",
        "outcome": "ok",
        "rowcount": 3,
        "duration": 0.0125,
    }
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def test_fields_on_the_wire() -> None:
    data = json.loads(encode_audit(_record()))
    assert data == {
        "ts": 1_700_000_000.25,
        "id": "c0ffee",
        "client": "client-1",
        "adapter": "adapter-a",
        "subject": "user-42",
        "role": "reporting",
        "fingerprint": "a1b2c3d4e5f60718",
        "operation": "SELECT",
        "statement_type": "SelectStmt",
        "target": "replica:r1",
        "outcome": "ok",
        "rowcount": 3,
        "duration": 0.0125,
    }


def test_compact_and_defaults_left_out() -> None:
    encoded = encode_audit(
        AuditRecord(
            ts=1.5, id="x", client="c", adapter="a", outcome="unauthenticated", duration=0.5
        )
    )
    assert encoded == (
        b'{"ts":1.5,"id":"x","client":"c","adapter":"a","outcome":"unauthenticated","duration":0.5}'
    )


def test_no_params_and_no_sql_by_default() -> None:
    data = json.loads(encode_audit(_record()))
    assert "params" not in data
    assert "sql" not in data
    assert "sql" not in AuditRecord.__struct_fields__


def test_params_present_when_asked_even_empty() -> None:
    assert json.loads(encode_audit(_record(params=[1, "a", {"$dec": "1.5"}])))["params"] == [
        1,
        "a",
        {"$dec": "1.5"},
    ]
    assert json.loads(encode_audit(_record(params=[])))["params"] == []


def test_error_outcome_with_sqlstate() -> None:
    record = _record(outcome="query", sqlstate="42501", rowcount=None, target="primary")
    data = json.loads(encode_audit(record))
    assert data["outcome"] == "query"
    assert data["sqlstate"] == "42501"
    assert "rowcount" not in data


def test_anonymous_flag() -> None:
    assert "anonymous" not in json.loads(encode_audit(_record()))
    assert (
        json.loads(encode_audit(_record(subject="anonymous", anonymous=True)))["anonymous"] is True
    )


@pytest.mark.parametrize(
    "record",
    [
        _record(),
        _record(params=[None, 2.5, [1, 2]], anonymous=True),
        _record(fingerprint=None, operation=None, statement_type=None, outcome="rejected"),
        AuditRecord(ts=0.0, id="i", client="c", adapter="a", outcome="forbidden", duration=0.0),
    ],
)
def test_round_trip(record: AuditRecord) -> None:
    assert decode_audit(encode_audit(record)) == record


def test_decode_rejects_a_record_without_required_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="outcome"):
        decode_audit(b'{"ts":1.0,"id":"x","client":"c","adapter":"a","duration":0.1}')


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        AuditRecord(1.0, "x", "c", "a")  # type: ignore[call-arg]


def test_audit_parameters_setting() -> None:
    assert AdapterSettings().audit_parameters is False
    assert AdapterSettings.from_env({}).audit_parameters is False
    assert AdapterSettings.from_env({"QUERYBUS_AUDIT_PARAMETERS": "1"}).audit_parameters is True
    assert AdapterSettings.from_env({"QUERYBUS_AUDIT_PARAMETERS": "0"}).audit_parameters is False
