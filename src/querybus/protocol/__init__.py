"""The wire protocol: messages, their codec and the encoding of typed values. Pure, no I/O."""

from querybus.protocol.codec import decode_reply, decode_request, encode, peek_version
from querybus.protocol.messages import (
    SCHEMA_VERSION,
    Column,
    ErrorInfo,
    Headers,
    OperationType,
    QueryFailure,
    QueryRequest,
    QueryResult,
    Reply,
    ReplyAddress,
    RouteInfo,
    RoutePreference,
    Timings,
)
from querybus.protocol.values import (
    decode_row,
    decode_rows,
    decode_value,
    encode_row,
    encode_rows,
    encode_value,
)

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
    "decode_reply",
    "decode_request",
    "decode_row",
    "decode_rows",
    "decode_value",
    "encode",
    "encode_row",
    "encode_rows",
    "encode_value",
    "peek_version",
]
