"""The one error tree of querybus.

Every exception querybus raises derives from :class:`QueryBusError`. Foreign
exceptions (aiokafka, asyncpg, httpx, …) are mapped to these at the module
boundary that touches the foreign library, with ``raise … from exc``.

Class-level ``retriable`` flags say whether trying again can help; retry
logic branches on them, never on messages (messages are for people, and
PostgreSQL's are localizable).

Errors that cross the wire carry a stable ``code`` (see :data:`ERROR_CODES`),
so an error raised in the adapter is re-raised as the same class in the
client; a :class:`QueryError` is rebuilt from its SQLSTATE.

The :class:`QueryError` subclasses, one per SQLSTATE, are generated from
PostgreSQL's ``errcodes.txt`` into :mod:`querybus.sqlstates` by
``tools/gen_sqlstates.py``; this module re-exports the ones querybus named
before they were generated.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERROR_CODES",
    "AuthenticationError",
    "BrokerAuthenticationError",
    "BrokerAuthorizationError",
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
    "PermissionDeniedError",
    "ProtocolError",
    "QueryBusError",
    "QueryCanceledError",
    "QueryError",
    "RateLimitedError",
    "ReadOnlyTransactionError",
    "RegistryError",
    "RegistryUnavailableError",
    "RequestRejectedError",
    "RequestTimeoutError",
    "ResultTooLargeError",
    "RoutingError",
    "SQLSyntaxError",
    "SerializationFailureError",
    "ServiceNotFoundError",
    "TargetBusyError",
    "TokenExpiredError",
    "TransactionBusyError",
    "TransactionLostError",
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

    #: The request's correlation id, when the error came back in a reply.
    correlation_id: str | None

    # Keyword-only and no ``**kwargs``: a misspelt keyword (``sqlstat=``)
    # is a TypeError at the call site, not a silently lost field.
    def __init__(self, message: str = "", *, correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.correlation_id = correlation_id


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


class BrokerAuthenticationError(TransportError):
    """The broker refused this client's credentials (TLS or SASL): not retriable
    until the configuration changes."""

    retriable = False
    code = "broker_authentication"


class BrokerAuthorizationError(TransportError):
    """The broker's ACLs do not let this principal do that (read, write,
    create or describe a topic, join a group): not retriable."""

    retriable = False
    code = "broker_authorization"


class TransactionLostError(QueryBusError):
    """An interactive transaction is gone: the adapter holding it stopped or
    died, or the transaction passed its idle timeout or maximum lifetime. It
    was rolled back (nothing of it committed); run the whole transaction again
    (``QueryClient.run_in_transaction`` does)."""

    retriable = True
    code = "transaction_lost"


class TransactionBusyError(QueryBusError):
    """The adapter already holds as many open transactions as it allows; try
    again shortly (or on another adapter)."""

    retriable = True
    code = "transaction_busy"


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


class AuthenticationError(RequestRejectedError):
    """The request carried no valid token (missing, malformed, signed with an
    unknown key, expired, not yet valid, or for another issuer or audience),
    and the adapter has no anonymous role; nothing ran."""

    code = "unauthenticated"


class TokenExpiredError(AuthenticationError):
    """The request's token has expired; a client with a token provider asks it
    for a fresh one and sends the request again."""

    code = "token_expired"


class PermissionDeniedError(RequestRejectedError):
    """The caller's identity is valid, but the adapter's policy does not let
    its role do this (a role outside the allowlist, an operation, a table, DDL,
    more rows than its limit); nothing was committed. Permissions the database
    itself refuses arrive as :class:`InsufficientPrivilegeError` (42501)."""

    code = "forbidden"


class RateLimitedError(RequestRejectedError):
    """The caller (the token's subject) sent more requests than its role's rate
    allows; nothing ran. ``retry_after`` is the number of seconds until a
    request would be accepted."""

    retriable = True
    code = "rate_limited"

    def __init__(
        self, message: str = "", *, retry_after: float = 0.0, correlation_id: str | None = None
    ) -> None:
        super().__init__(message, correlation_id=correlation_id)
        self.retry_after = retry_after


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
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id)
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

    ``sqlstate`` is PostgreSQL's five-character error code. There is a
    subclass for every SQLSTATE PostgreSQL lists (generated into
    :mod:`querybus.sqlstates`), each under the base of its SQLSTATE class
    (the first two characters) and carrying its code as the class attribute
    ``sqlstate``; see :func:`query_error_class`.
    """

    code = "query"
    #: PostgreSQL's error code: the class's own, unless the instance was given one.
    sqlstate: str | None = None

    def __init__(
        self,
        message: str = "",
        *,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, correlation_id=correlation_id)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        if self.sqlstate:
            return f"[{self.sqlstate}] {self.message}"
        return self.message


class OperationalError(QueryError):
    """SQLSTATE classes 08, 53, 57, 58: the server or connection failed; retriable.

    Not a SQLSTATE class of its own: the generated bases of those four classes
    (``ConnectionExceptionError``, ``InsufficientResourcesError``,
    ``OperatorInterventionError``, ``PostgresSystemError``) derive from it, so
    retry logic can catch one class. Also raised as is (with ``sqlstate``
    08003 or 08006) when querybus finds a connection closed or a server gone.
    """

    retriable = True


# The SQLSTATE classes are generated from PostgreSQL's errcodes.txt; they
# derive from QueryError and OperationalError above, hence the late import.
from querybus.sqlstates import (  # noqa: E402
    SQLSTATE_CLASSES,
    DataExceptionError,
    FeatureNotSupportedError,
    InsufficientPrivilegeError,
    IntegrityConstraintViolationError,
    QueryCanceledError,
    ReadOnlySQLTransactionError,
    SerializationFailureError,
    SyntaxErrorOrAccessRuleViolationError,
    TransactionRollbackError,
    UndefinedObjectError,
)

# The names querybus used before the classes were generated; same classes.
#: SQLSTATE class 22 (``DataExceptionError``).
DataError = DataExceptionError
#: SQLSTATE class 42 (``SyntaxErrorOrAccessRuleViolationError``).
SQLSyntaxError = SyntaxErrorOrAccessRuleViolationError
#: SQLSTATE 25006 (``ReadOnlySQLTransactionError``).
ReadOnlyTransactionError = ReadOnlySQLTransactionError


def query_error_class(sqlstate: str | None) -> type[QueryError]:
    """The most precise :class:`QueryError` subclass for a SQLSTATE.

    The class of that very code when PostgreSQL lists it, else the base of its
    SQLSTATE class (the first two characters), else :class:`QueryError`.
    """
    if not sqlstate:
        return QueryError
    return (
        SQLSTATE_CLASSES.get(sqlstate) or SQLSTATE_CLASSES.get(sqlstate[:2] + "000") or QueryError
    )


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
    retry_after: float | None = None,
) -> QueryBusError:
    """Rebuild the exception an adapter reported in an error reply."""
    if code == "query" or sqlstate:
        return query_error_class(sqlstate)(message, sqlstate=sqlstate, detail=detail, hint=hint)
    if code == ResultTooLargeError.code:
        return ResultTooLargeError(message, command=command, rowcount=rowcount, lsn=lsn)
    if code == RateLimitedError.code:
        return RateLimitedError(message, retry_after=retry_after or 0.0)
    cls = ERROR_CODES.get(code, QueryBusError)
    return cls(message)
