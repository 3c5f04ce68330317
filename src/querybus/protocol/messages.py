"""Wire messages: what travels on the request, reply and error topics.

Every message is a JSON object. Requests and replies carry the schema version
``v``; a reader refuses a major version it does not know. Parameter and cell
values use the tagged encoding of :mod:`querybus.protocol.values`; the structs
here keep them in wire form so that decoding a message never guesses.

Field names are short because they are paid for on every message; the
AsyncAPI document (``docs/asyncapi.yaml``) spells them out.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "ErrorInfo",
    "Headers",
    "OperationType",
    "QueryFailure",
    "QueryRequest",
    "QueryResult",
    "Reply",
    "ReplyAddress",
    "RouteInfo",
    "RoutePreference",
    "Timings",
]

#: Version of the message schema written by this code. Readers accept any
#: message with the same version; a different one is a ProtocolError.
SCHEMA_VERSION = 1


class OperationType(str, enum.Enum):
    """What the caller says the statement does (the original API's operation_type)."""

    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    DDL = "DDL"
    OTHER = "OTHER"


class RoutePreference(str, enum.Enum):
    """Where the caller wants its statement to run."""

    AUTO = "auto"
    PRIMARY = "primary"
    REPLICA = "replica"


class Headers:
    """Kafka header names. Correlation id and reply address travel here too so
    that a reader can route or drop a record without decoding its body."""

    CORRELATION_ID = "querybus-correlation-id"
    REPLY_TOPIC = "querybus-reply-topic"
    REPLY_PARTITION = "querybus-reply-partition"
    CLIENT_ID = "querybus-client-id"
    SCHEMA_VERSION = "querybus-schema-version"
    DLQ_REASON = "querybus-dlq-reason"


class ReplyAddress(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Where the adapter sends the reply: one partition of one topic."""

    topic: str
    partition: int


class QueryRequest(msgspec.Struct, kw_only=True):
    """A request to run one SQL statement.

    Attributes:
        v: schema version.
        id: correlation id (unique per request).
        client: id of the client instance that sent it.
        op: the operation type the caller declares, if any; the adapter
            refuses the request when the SQL is something else.
        sql: one statement, with ``$1``-style placeholders.
        params: parameters in wire form (one list), or, with ``many``, a list
            of parameter lists (``executemany``).
        many: run ``sql`` once per parameter list, in one transaction.
        reply_to: reply address.
        deadline: absolute deadline, seconds since the Unix epoch; an adapter
            never starts a request whose deadline has passed.
        sent_at: when the client sent it (seconds since the epoch), for queue-wait timing.
        idem: idempotency key: a second request with the same key gets the
            first one's reply instead of running again.
        route: where the caller wants it to run.
        max_staleness: the most replica lag, in seconds, the caller accepts.
        min_lsn: the highest commit LSN the caller has seen (read-your-writes).
    """

    v: int = SCHEMA_VERSION
    id: str
    client: str
    op: OperationType | None = None
    sql: str
    params: list[Any] = msgspec.field(default_factory=list)
    many: bool = False
    reply_to: ReplyAddress
    deadline: float
    sent_at: float = 0.0
    idem: str | None = None
    route: RoutePreference = RoutePreference.AUTO
    max_staleness: float | None = None
    min_lsn: str | None = None


class Column(msgspec.Struct, frozen=True, array_like=True):
    """A result column: its name and its PostgreSQL type name (``int4``, ``numeric``…)."""

    name: str
    type: str


class Timings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the time went, in seconds, as measured by the adapter."""

    queue: float = 0.0  # from the client's send to the adapter's start
    execute: float = 0.0  # on the database
    route: float = 0.0  # choosing the target
    total: float = 0.0  # adapter receive → reply produced (set by the adapter)


class RouteInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Which target served the statement and why."""

    target: str  # "primary", "replica:<name>", "sqlite", …
    reason: str
    complexity: str | None = None


class QueryResult(msgspec.Struct, kw_only=True, tag_field="status", tag="ok"):
    """A successful reply."""

    v: int = SCHEMA_VERSION
    id: str
    command: str = ""  # PostgreSQL's command tag, e.g. "INSERT 0 1"
    columns: list[Column] = msgspec.field(default_factory=list)
    rows: list[list[Any]] = msgspec.field(default_factory=list)
    rowcount: int = 0
    lsn: str | None = None  # commit LSN of a write (read-your-writes)
    timings: Timings = msgspec.field(default_factory=Timings)
    route: RouteInfo | None = None
    served_by: str = ""


class ErrorInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why a request failed."""

    code: str  # querybus error code, see querybus.errors.ERROR_CODES
    message: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    retriable: bool = False


class QueryFailure(msgspec.Struct, kw_only=True, tag_field="status", tag="error"):
    """A failed reply; also copied to the error topic."""

    v: int = SCHEMA_VERSION
    id: str
    error: ErrorInfo
    timings: Timings = msgspec.field(default_factory=Timings)
    route: RouteInfo | None = None
    served_by: str = ""


Reply = QueryResult | QueryFailure
