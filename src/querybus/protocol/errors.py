"""Errors on the wire: an exception to :class:`ErrorInfo` and back.

Used by both sides, so what an adapter reports is what a client raises: the
same class (by code, or by SQLSTATE for database errors), message, SQLSTATE,
detail, hint, and for ``result_too_large`` what the statement did.
"""

from __future__ import annotations

from querybus.errors import (
    QueryBusError,
    QueryError,
    RateLimitedError,
    ResultTooLargeError,
    error_from_wire,
)
from querybus.protocol.messages import ErrorInfo

__all__ = ["error_from_info", "error_info"]


def error_info(exc: QueryBusError) -> ErrorInfo:
    """The wire form of ``exc``."""
    info = ErrorInfo(code=exc.code, message=exc.message, retriable=exc.retriable)
    if isinstance(exc, QueryError):
        info.sqlstate, info.detail, info.hint = exc.sqlstate, exc.detail, exc.hint
    elif isinstance(exc, ResultTooLargeError):
        info.command, info.rowcount, info.lsn = exc.command, exc.rowcount, exc.lsn
    elif isinstance(exc, RateLimitedError):
        info.retry_after = round(exc.retry_after, 3)
    return info


def error_from_info(info: ErrorInfo, *, correlation_id: str | None = None) -> QueryBusError:
    """The exception an adapter reported in ``info`` (unknown codes: the root class)."""
    err = error_from_wire(
        info.code,
        info.message,
        sqlstate=info.sqlstate,
        detail=info.detail,
        hint=info.hint,
        command=info.command,
        rowcount=info.rowcount,
        lsn=info.lsn,
        retry_after=info.retry_after,
    )
    err.correlation_id = correlation_id
    return err
