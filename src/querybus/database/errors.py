"""asyncpg's exceptions, mapped to querybus errors (:func:`map_database_error`).

We never match on message text, which the server may localize: server errors
keep their SQLSTATE; client-side and connection errors are told apart by type
and by whether the connection is still open.
"""

from __future__ import annotations

import asyncio

import asyncpg

from querybus.errors import (
    OperationalError,
    QueryBusError,
    QueryCanceledError,
    QueryError,
    query_error_class,
)

__all__ = ["BROKEN_CONNECTION", "DATABASE_ERRORS", "ClientDataError", "map_database_error"]

#: Raised by asyncpg itself (not the server) for a parameter it cannot encode.
ClientDataError = asyncpg.exceptions._base.DataError
#: Everything asyncpg (or the socket under it) raises, mapped by map_database_error.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. the server shut down mid-statement
    OSError,
    asyncio.TimeoutError,
)
#: What asyncpg raises when the server goes away mid-operation, beyond the
#: mapped errors: its protocol state machine is left in an operation.
BROKEN_CONNECTION: tuple[type[BaseException], ...] = (
    asyncpg.InternalClientError,
    asyncpg.InterfaceError,
    ConnectionError,
)


def map_database_error(exc: BaseException, conn: asyncpg.Connection | None = None) -> QueryBusError:
    """The querybus error for an asyncpg (or socket) exception.

    Server errors keep their SQLSTATE, detail and hint; we never match on the
    message text, which the server may localize. asyncpg's client-side
    errors on a connection that is still open (a wrong number of parameters,
    a value it cannot encode) are the caller's: ``22023``, never retriable and
    never a reason to ban a server. Only a connection that failed is an
    ``OperationalError`` (08006).

    Args:
        exc: what asyncpg (or the socket) raised.
        conn: the connection it was raised on, when known: an
            ``InterfaceError`` on a connection that is still open is the
            caller's mistake, not an outage.
    """
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        cls = query_error_class(sqlstate)
        message = str(getattr(exc, "message", None) or exc)
        return cls(
            message,
            sqlstate=sqlstate,
            detail=getattr(exc, "detail", None),
            hint=getattr(exc, "hint", None),
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return QueryCanceledError(
            "statement canceled: the request's deadline passed", sqlstate="57014"
        )
    if isinstance(exc, ClientDataError) or (
        isinstance(exc, asyncpg.InterfaceError) and conn is not None and not conn.is_closed()
    ):
        # asyncpg's client-side errors: a parameter it cannot encode (a str
        # for an int4 column, …), the wrong number of parameters. Raised before
        # anything is sent; the connection is fine. The caller's fault:
        # invalid_parameter_value.
        return query_error_class("22023")(f"invalid parameters: {exc}", sqlstate="22023")
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return OperationalError(f"database unreachable: {exc}", sqlstate="08006")
    return QueryError(f"{type(exc).__name__}: {exc}")
