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
    "BatchItem",
    "BatchOutcome",
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
    "TxInfo",
    "TxOp",
    "TxOptions",
]

#: Version of the message schema written by this code. Readers accept any
#: message with the same version; a different one is a ProtocolError.
SCHEMA_VERSION = 1


class OperationType(enum.StrEnum):
    """What the caller says the statement does (the original API's operation_type)."""

    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    DDL = "DDL"
    OTHER = "OTHER"


class RoutePreference(enum.StrEnum):
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
    DLQ_REASON = "querybus-dlq-reason"
    #: The caller's signed token (a JWT), when it has one. A header, not a body
    #: field, so that dead-letter copies and logs can drop it without decoding.
    AUTHORIZATION = "querybus-authorization"
    #: On an adapter's unsolicited notice that an interactive transaction was
    #: rolled back behind its caller's back (adapter stopping, idle timeout,
    #: maximum lifetime): the transaction's id. The client matches the notice
    #: by it (its correlation id, ``lost-<id>``, names no request).
    TRANSACTION = "querybus-transaction"
    #: On the heartbeat record an adapter appends to its own inbox every
    #: ``QUERYBUS_INBOX_HEARTBEAT`` seconds (an empty value; the header's value
    #: is that interval in seconds). Its timestamp tells the other adapters'
    #: sweep that the inbox is alive; its reader skips it.
    HEARTBEAT = "querybus-heartbeat"


class ReplyAddress(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Where the adapter sends the reply: one partition of one topic."""

    topic: str
    partition: int


class TxOp(enum.StrEnum):
    """What a request does to an interactive transaction (``QueryRequest.txop``).

    ``begin`` opens one (on any adapter, through the request topic), and
    runs its first statement when the request has ``sql``; the
    statements (no ``txop``), ``commit``, ``rollback``, ``savepoint``,
    ``release``, ``rollback_to`` and ``ping`` go to the inbox of the adapter
    that holds it (``TxInfo``); ``status`` asks, through the request topic,
    whether a transaction committed (when its COMMIT reply was lost).
    """

    BEGIN = "begin"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"
    RELEASE = "release"
    ROLLBACK_TO = "rollback_to"
    PING = "ping"
    STATUS = "status"


class TxOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How a transaction begins (``BEGIN ISOLATION LEVEL … [READ ONLY] [DEFERRABLE]``).

    Attributes:
        isolation: ``read_committed``, ``repeatable_read`` or ``serializable``
            (None: the server's default).
        readonly: ``READ ONLY``.
        deferrable: ``DEFERRABLE`` (with serializable and readonly).
    """

    isolation: str | None = None
    readonly: bool = False
    deferrable: bool = False


class BatchItem(msgspec.Struct, frozen=True, array_like=True):
    """One statement of a batch: its SQL and its parameters in wire form."""

    sql: str
    params: list[Any] = msgspec.field(default_factory=list)


class QueryRequest(msgspec.Struct, kw_only=True):
    """A request to run one SQL statement.

    Attributes:
        v: schema version.
        id: correlation id (unique per request).
        client: id of the client instance that sent it.
        op: the operation type the caller declares, if any; the adapter
            refuses the request when the SQL is something else.
        sql: one statement, with ``$1``-style placeholders (with ``begin``:
            the transaction's first statement, or empty).
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
        tx: the interactive transaction this request belongs to (its id, from
            the reply to ``begin``).
        txop: what it does to that transaction (:class:`TxOp`); None for a
            statement (in the transaction when ``tx`` is set).
        txopts: with ``begin``: isolation level and access mode.
        savepoint: with ``savepoint``, ``release`` and ``rollback_to``: the name.
        batch: statements run in order in one transaction, all or nothing
            (``sql`` and ``params`` are then empty); one result each.
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
    tx: str | None = None
    txop: TxOp | None = None
    txopts: TxOptions | None = None
    savepoint: str | None = None
    batch: list[BatchItem] | None = None


class Column(msgspec.Struct, frozen=True, array_like=True):
    """A result column: its name and its PostgreSQL type name (``int4``, ``numeric``…)."""

    name: str
    type: str


class Timings(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the time went, in seconds, as measured by the adapter.

    Attributes:
        queue: from the client's send to the adapter's receive (clocks of two hosts).
        execute: on the database.
        route: choosing the target.
        total: from the adapter's receive to the reply being encoded.
    """

    queue: float = 0.0
    execute: float = 0.0
    route: float = 0.0
    total: float = 0.0


class RouteInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Which target served the statement and why.

    Attributes:
        target: ``primary``, ``replica:<name>``, ``postgres`` (no router), ``sqlite``.
        reason: the router's reason code (see docs/routing.md).
        complexity: the statement's complexity class, when the router computed it.
    """

    target: str
    reason: str
    complexity: str | None = None


class TxInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where an interactive transaction lives (the reply to ``begin``).

    Attributes:
        id: the transaction's id; every later request of it carries it.
        inbox: the topic of the adapter that holds it; its requests go there.
        partition: the inbox's partition.
        adapter: that adapter's instance id.
        idle_timeout: seconds without a request after which it is rolled back.
        max_lifetime: seconds after which it is rolled back, idle or not.
    """

    id: str
    inbox: str
    partition: int = 0
    adapter: str = ""
    idle_timeout: float = 0.0
    max_lifetime: float = 0.0


class BatchOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One statement's result in a batch reply."""

    command: str = ""
    columns: list[Column] = msgspec.field(default_factory=list)
    rows: list[list[Any]] = msgspec.field(default_factory=list)
    rowcount: int = 0


class QueryResult(msgspec.Struct, kw_only=True, tag_field="status", tag="ok"):
    """A successful reply (``"status": "ok"``).

    Attributes:
        v: schema version.
        id: the request's correlation id.
        command: the database's command tag, e.g. ``"INSERT 0 1"``.
        columns: ``[name, type]`` of each result column.
        rows: result rows; cells in the tagged value encoding.
        rowcount: rows returned or affected.
        lsn: commit LSN of a write (for read-your-writes), else null.
        timings: where the time went.
        route: which target served it and why.
        served_by: the adapter instance that served it.
        tx: with ``begin``: where the transaction lives.
        batch: with a batch: one outcome per statement, in order.
        state: with ``status``: ``committed``, ``rolled_back`` or ``open``.
    """

    v: int = SCHEMA_VERSION
    id: str
    command: str = ""
    columns: list[Column] = msgspec.field(default_factory=list)
    rows: list[list[Any]] = msgspec.field(default_factory=list)
    rowcount: int = 0
    lsn: str | None = None
    timings: Timings = msgspec.field(default_factory=Timings)
    route: RouteInfo | None = None
    served_by: str = ""
    tx: TxInfo | None = None
    batch: list[BatchOutcome] | None = None
    state: str | None = None


class ErrorInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why a request failed.

    Attributes:
        code: querybus error code (``query``, ``rejected``, ``deadline_exceeded``, …;
            see ``querybus.errors.ERROR_CODES``).
        message: for people; never parse it.
        sqlstate: PostgreSQL's SQLSTATE when the database refused the statement.
        detail: the database's DETAIL, if any.
        hint: the database's HINT, if any.
        retriable: whether sending the same request again can succeed.
        command: with ``result_too_large``: the statement's command tag (it ran).
        rowcount: with ``result_too_large``: rows it returned or changed.
        lsn: with ``result_too_large``: its commit position, when it wrote
            through a routing adapter (read-your-writes).
        retry_after: with ``rate_limited``: seconds until a request would be accepted.
    """

    code: str
    message: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    retriable: bool = False
    command: str | None = None
    rowcount: int | None = None
    lsn: str | None = None
    retry_after: float | None = None


class QueryFailure(msgspec.Struct, kw_only=True, tag_field="status", tag="error"):
    """A failed reply (``"status": "error"``); also copied to the error topic.

    Attributes:
        v: schema version.
        id: the request's correlation id.
        error: what went wrong.
        timings: where the time went.
        route: which target was tried, when one was.
        served_by: the adapter instance that answered.
        tx: the transaction this request began (``begin`` with a statement)
            when the statement failed: it is open, aborted until rolled back.
    """

    v: int = SCHEMA_VERSION
    id: str
    error: ErrorInfo
    timings: Timings = msgspec.field(default_factory=Timings)
    route: RouteInfo | None = None
    served_by: str = ""
    tx: TxInfo | None = None


Reply = QueryResult | QueryFailure
