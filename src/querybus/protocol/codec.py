"""Bytes ⇄ messages. Pure: no I/O.

Decoding is strict: unknown enum values, wrong types and missing fields are a
:class:`~querybus.errors.ProtocolError` naming the field, never a crash.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from querybus.errors import ProtocolError
from querybus.protocol.messages import SCHEMA_VERSION, QueryRequest, Reply

__all__ = ["decode_reply", "decode_request", "encode", "peek_version"]

T = TypeVar("T", QueryRequest, Reply)

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(QueryRequest)
_reply_decoder: msgspec.json.Decoder[Reply] = msgspec.json.Decoder(Reply)


class _Versioned(msgspec.Struct):
    v: int = -1


_version_decoder = msgspec.json.Decoder(_Versioned)


def encode(message: Any) -> bytes:
    """Encode a request or reply struct to JSON bytes."""
    return _encoder.encode(message)


def peek_version(data: bytes) -> int:
    """The schema version of an encoded message, -1 when it has none.

    Raises:
        ProtocolError: the bytes are not a JSON object.
    """
    try:
        return _version_decoder.decode(data).v
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"not a querybus message: {_why(exc)}") from exc


# What msgspec raises for bytes it cannot decode: malformed or mistyped JSON,
# invalid UTF-8 inside a string, nesting deeper than its recursion guard.
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "values nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8"
    return str(exc)


def _check_version(data: bytes, exc: Exception) -> None:
    version = peek_version(data)
    if version != SCHEMA_VERSION:
        raise ProtocolError(
            f"unsupported schema version {version} (this reader speaks {SCHEMA_VERSION})"
        ) from exc


def decode_request(data: bytes) -> QueryRequest:
    """Decode a request.

    Raises:
        ProtocolError: malformed JSON, a missing or mistyped field, or a schema
            version this code does not speak.
    """
    return _decode(_request_decoder, data, "request")


def decode_reply(data: bytes) -> Reply:
    """Decode a reply (success or failure).

    Raises:
        ProtocolError: as for :func:`decode_request`.
    """
    return _decode(_reply_decoder, data, "reply")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    try:
        message = decoder.decode(data)
    except _DECODE_ERRORS as exc:
        _check_version(data, exc)
        raise ProtocolError(f"invalid {what}: {_why(exc)}") from exc
    version = message.v
    if version != SCHEMA_VERSION:
        raise ProtocolError(
            f"unsupported schema version {version} (this reader speaks {SCHEMA_VERSION})"
        )
    return message
