"""querybus: SQL over Apache Kafka, for Python.

Services send query requests as events; adapter services execute them on
PostgreSQL and reply; a registry lets services find each other; a router sends
writes to the primary and reads to fresh replicas.

The public API is what this module exports; everything else may change.

This module is the caller's API only: the client, the sync client, errors, wire
types and settings. It imports no server library (asyncpg, pglast, aiosqlite,
prometheus-client), so ``pip install querybus`` is enough for a caller. The server
side is imported from its packages (``from querybus.adapter import AdapterService``)
and needs ``pip install 'querybus[adapter]'``.
"""

from importlib.metadata import PackageNotFoundError, version

from querybus.client import ClientState, QueryClient, Result, Row, Transaction
from querybus.client.sync import SyncQueryClient, SyncTransaction
from querybus.config import (
    AdapterSettings,
    BusSettings,
    ClientSettings,
    KafkaSecurity,
    PostgresSettings,
    TopicNames,
)
from querybus.errors import (
    AuthenticationError,
    BrokerAuthenticationError,
    BrokerAuthorizationError,
    BrokerUnavailableError,
    ConfigurationError,
    DataError,
    DeadlineExceededError,
    FeatureNotSupportedError,
    InsufficientPrivilegeError,
    IntegrityConstraintViolationError,
    InterfaceError,
    NoEligibleTargetError,
    OperationalError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProtocolError,
    QueryBusError,
    QueryCanceledError,
    QueryError,
    RateLimitedError,
    ReadOnlyTransactionError,
    RegistryError,
    RegistryUnavailableError,
    RequestRejectedError,
    RequestTimeoutError,
    ResultTooLargeError,
    RoutingError,
    SerializationFailureError,
    ServiceNotFoundError,
    SQLSyntaxError,
    TargetBusyError,
    TokenExpiredError,
    TransactionBusyError,
    TransactionLostError,
    TransactionRollbackError,
    TransportError,
    UndefinedObjectError,
)
from querybus.protocol import OperationType, RoutePreference
from querybus.transport import Transport, connect

try:
    __version__ = version("querybus")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "AdapterSettings",
    "AuthenticationError",
    "BrokerAuthenticationError",
    "BrokerAuthorizationError",
    "BrokerUnavailableError",
    "BusSettings",
    "ClientSettings",
    "ClientState",
    "ConfigurationError",
    "DataError",
    "DeadlineExceededError",
    "FeatureNotSupportedError",
    "InsufficientPrivilegeError",
    "IntegrityConstraintViolationError",
    "InterfaceError",
    "KafkaSecurity",
    "NoEligibleTargetError",
    "OperationType",
    "OperationalError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PostgresSettings",
    "ProtocolError",
    "QueryBusError",
    "QueryCanceledError",
    "QueryClient",
    "QueryError",
    "RateLimitedError",
    "ReadOnlyTransactionError",
    "RegistryError",
    "RegistryUnavailableError",
    "RequestRejectedError",
    "RequestTimeoutError",
    "Result",
    "ResultTooLargeError",
    "RoutePreference",
    "RoutingError",
    "Row",
    "SQLSyntaxError",
    "SerializationFailureError",
    "ServiceNotFoundError",
    "SyncQueryClient",
    "SyncTransaction",
    "TargetBusyError",
    "TokenExpiredError",
    "TopicNames",
    "Transaction",
    "TransactionBusyError",
    "TransactionLostError",
    "TransactionRollbackError",
    "Transport",
    "TransportError",
    "UndefinedObjectError",
    "__version__",
    "connect",
]
