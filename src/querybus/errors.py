"""The one error tree of querybus.

Every exception querybus raises derives from :class:`QueryBusError`. Foreign
exceptions (aiokafka, asyncpg, httpx, …) are mapped to these at the module
boundary that touches the foreign library, with ``raise … from exc``.

Class-level ``retriable`` flags say whether trying again can help; retry
logic branches on them, never on messages (messages are for people, and
PostgreSQL's are localizable).

Errors that cross the wire carry a stable ``code`` (see :data:`ERROR_CODES`),
so an error raised in the adapter is re-raised as the same class in the
client.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERROR_CODES",
    "BrokerUnavailableError",
    "ConfigurationError",
    "DataError",
    "DeadlineExceededError",
    "FeatureNotSupportedError",
    "InsufficientPrivilegeError",
    "IntegrityConstraintViolationError",
    "InterfaceError",
    "NoEligibleTargetError",
    "OperationalError",
    "PayloadTooLargeError",
    "ProtocolError",
    "QueryBusError",
    "QueryCanceledError",
    "QueryError",
    "ReadOnlyTransactionError",
    "RegistryError",
    "RegistryUnavailableError",
    "RequestRejectedError",
    "RequestTimeoutError",
    "RoutingError",
    "SQLSyntaxError",
    "SerializationFailureError",
    "ServiceNotFoundError",
    "TargetBusyError",
    "TransactionRollbackError",
    "TransportError",
    "UndefinedObjectError",
    "error_from_wire",
    "query_error_class",
]


class QueryBusError(Exception):
    """Root of every querybus error."""

    #: Whether sending the same request again can succeed.
    retriable: ClassVar[bool] = False
    #: Stable wire name of this error kind.
    code: ClassVar[str] = "internal"

    def __init__(self, message: str = "", **_: object) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(QueryBusError, ValueError):
    """A setting is missing or invalid."""

    code = "configuration"


class InterfaceError(QueryBusError):
    """The API was misused: a closed client, a call before ``start()``, …"""

    code = "interface"


class TransportError(QueryBusError):
    """The message bus failed to carry a request or a reply."""

    retriable = True
    code = "transport"


class BrokerUnavailableError(TransportError):
    """No Kafka broker could be reached."""

    code = "broker_unavailable"


class RequestTimeoutError(TransportError, TimeoutError):
    """No reply arrived before the caller's timeout."""

    code = "timeout"


class ProtocolError(QueryBusError):
    """A message could not be decoded, or its schema version is unsupported."""

    code = "protocol"


class RequestRejectedError(QueryBusError):
    """Validation or policy refused the request; nothing was executed."""

    code = "rejected"


class PayloadTooLargeError(RequestRejectedError):
    """The encoded request or reply exceeds the configured maximum size."""

    code = "payload_too_large"


class DeadlineExceededError(RequestRejectedError):
    """The request's deadline passed before it could be executed; nothing ran."""

    code = "deadline_exceeded"


class ResultTooLargeError(QueryBusError):
    """The statement ran, but its result is larger than a reply may be.

    Requests run in autocommit, so whatever the statement changed is
    committed: ``command``, ``rowcount`` and ``lsn`` say what it did; only
    the rows are missing. Not retriable: sending it again would run it again
    (add a LIMIT, page through the rows, or return fewer columns).
    """

    code = "result_too_large"

    def __init__(
        self,
        message: str = "",
        *,
        command: str | None = None,
        rowcount: int | None = None,
        lsn: str | None = None,
        **_: object,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.rowcount = rowcount
        self.lsn = lsn


class RoutingError(QueryBusError):
    """The router could not choose where to run a statement."""

    retriable = True
    code = "routing"


class NoEligibleTargetError(RoutingError):
    """No database target (primary or replica) can take the statement now."""

    code = "no_eligible_target"


class TargetBusyError(RoutingError):
    """No pooled connection to a database target became free in time.

    Not a failure of the target: the router tries another one (or the
    primary) instead of banning it.
    """

    code = "target_busy"


class RegistryError(QueryBusError):
    """The service registry failed."""

    code = "registry"


class RegistryUnavailableError(RegistryError):
    """The registry backend cannot be reached."""

    retriable = True
    code = "registry_unavailable"


class ServiceNotFoundError(RegistryError):
    """No (healthy) instance of the asked-for service is registered."""

    code = "service_not_found"


class QueryError(QueryBusError):
    """The database refused the statement.

    ``sqlstate`` is PostgreSQL's five-character error code; subclasses exist per
    SQLSTATE class (the first two characters), see :func:`query_error_class`.
    """

    code = "query"

    def __init__(
        self,
        message: str = "",
        *,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        **_: object,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        if self.sqlstate:
            return f"[{self.sqlstate}] {self.message}"
        return self.message


class FeatureNotSupportedError(QueryError):
    """SQLSTATE class 0A."""


class DataError(QueryError):
    """SQLSTATE class 22: a value is out of range, malformed, …"""


class IntegrityConstraintViolationError(QueryError):
    """SQLSTATE class 23: unique, foreign key, not-null, check violations."""


class ReadOnlyTransactionError(QueryError):
    """SQLSTATE 25006: a write reached a read-only (standby) server."""


class TransactionRollbackError(QueryError):
    """SQLSTATE class 40: the transaction was rolled back; retrying can help."""

    retriable = True


class SerializationFailureError(TransactionRollbackError):
    """SQLSTATE 40001."""


class InsufficientPrivilegeError(QueryError):
    """SQLSTATE class 42 code 42501."""


class SQLSyntaxError(QueryError):
    """SQLSTATE class 42: syntax errors and access rule violations."""


class UndefinedObjectError(SQLSyntaxError):
    """SQLSTATE 42P01 / 42703 / 42883 / 42704: an unknown table, column, function, …"""


class OperationalError(QueryError):
    """SQLSTATE classes 08, 53, 57, 58: the server or connection failed; retriable."""

    retriable = True


class QueryCanceledError(OperationalError):
    """SQLSTATE 57014: the statement was canceled, usually by ``statement_timeout``."""

    retriable = False


# Precise codes first, then classes (the first two characters of the SQLSTATE).
_BY_SQLSTATE: dict[str, type[QueryError]] = {
    "25006": ReadOnlyTransactionError,
    "40001": SerializationFailureError,
    "42501": InsufficientPrivilegeError,
    "42P01": UndefinedObjectError,
    "42703": UndefinedObjectError,
    "42883": UndefinedObjectError,
    "42704": UndefinedObjectError,
    "57014": QueryCanceledError,
}
_BY_CLASS: dict[str, type[QueryError]] = {
    "0A": FeatureNotSupportedError,
    "08": OperationalError,
    "22": DataError,
    "23": IntegrityConstraintViolationError,
    "40": TransactionRollbackError,
    "42": SQLSyntaxError,
    "53": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
}


def query_error_class(sqlstate: str | None) -> type[QueryError]:
    """The most precise :class:`QueryError` subclass for a SQLSTATE."""
    if not sqlstate:
        return QueryError
    return _BY_SQLSTATE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2], QueryError)


def _walk(cls: type[QueryBusError]) -> list[type[QueryBusError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_walk(sub))
    return out


#: Wire code → class, for every non-QueryError class (QueryErrors are found by SQLSTATE).
ERROR_CODES: dict[str, type[QueryBusError]] = {
    cls.code: cls for cls in _walk(QueryBusError) if not issubclass(cls, QueryError)
}
ERROR_CODES["query"] = QueryError


def error_from_wire(
    code: str,
    message: str,
    *,
    sqlstate: str | None = None,
    detail: str | None = None,
    hint: str | None = None,
    command: str | None = None,
    rowcount: int | None = None,
    lsn: str | None = None,
) -> QueryBusError:
    """Rebuild the exception an adapter reported in an error reply."""
    if code == "query" or sqlstate:
        return query_error_class(sqlstate)(message, sqlstate=sqlstate, detail=detail, hint=hint)
    if code == ResultTooLargeError.code:
        return ResultTooLargeError(message, command=command, rowcount=rowcount, lsn=lsn)
    cls = ERROR_CODES.get(code, QueryBusError)
    return cls(message)
