"""Audit records: one per request, published to ``database.query.audit``
(:attr:`~querybus.config.TopicNames.audit`, with the topic prefix).

A record says who asked (subject, role), what kind of statement it was
(the statement's fingerprint, operation and parse-node type), where it ran,
how it ended and how long it took. By default it holds neither the SQL text
nor parameter values, which may carry personal data or secrets: the
fingerprint identifies the statement's shape (equal for the same statement
with other constants), and the SQL behind a fingerprint can be looked up
where it is known (logs at DEBUG, the caller's code). Parameter values are
added only when ``QUERYBUS_AUDIT_PARAMETERS=1``
(:attr:`~querybus.config.AdapterSettings.audit_parameters`); the field is
then present, possibly empty, on every record.

Encoding runs once per request, so it is one msgspec call producing compact
JSON, fields at their default left out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from querybus.protocol.messages import OperationType

__all__ = ["AuditRecord", "decode_audit", "encode_audit"]


# gc=False: a record holds no reference cycles, and skipping the collector's
# tracking makes creating one per request cheaper.
class AuditRecord(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """What happened to one request.

    Attributes:
        ts: when the request ended, seconds since the Unix epoch.
        id: the request's correlation id.
        client: the id of the client instance that sent it.
        adapter: the id of the adapter instance that handled it.
        subject: the caller (the token's ``sub``; ``"anonymous"`` without a
            token); None when no identity was established (``unauthenticated``).
        role: the database role it ran, or would have run, as.
        anonymous: it had no token and ran as the anonymous role.
        fingerprint: the statement's fingerprint; None when the SQL did not parse.
        operation: the statement's operation; None when the SQL did not parse.
        statement_type: its parse-node type (``SelectStmt``, …); None likewise.
        target: where it ran: ``"primary"``, ``"replica:NAME"``, ``"postgres"``;
            None when it never reached a database.
        outcome: ``"ok"``, or the error code (``forbidden``, ``rate_limited``,
            ``unauthenticated``, ``rejected``, ``query``, …).
        sqlstate: the database's SQLSTATE when the database refused it.
        rowcount: rows returned or affected, when it ran.
        duration: seconds from receiving the request to its reply.
        params: the parameter values in wire form, only with parameter
            auditing on (``QUERYBUS_AUDIT_PARAMETERS=1``); absent otherwise.
    """

    ts: float
    id: str
    client: str
    adapter: str
    subject: str | None = None
    role: str | None = None
    anonymous: bool = False
    fingerprint: str | None = None
    operation: OperationType | None = None
    statement_type: str | None = None
    target: str | None = None
    outcome: str
    sqlstate: str | None = None
    rowcount: int | None = None
    duration: float
    params: list[Any] | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AuditRecord)


def encode_audit(record: AuditRecord) -> bytes:
    """``record`` as compact JSON, fields at their default left out."""
    return _encoder.encode(record)


def decode_audit(data: bytes) -> AuditRecord:
    """An encoded record back (for consumers and tests).

    Raises:
        msgspec.ValidationError / msgspec.DecodeError: ``data`` is not a record.
    """
    return _decoder.decode(data)
