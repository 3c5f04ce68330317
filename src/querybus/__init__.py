"""querybus: SQL over Apache Kafka, for Python.

Services send query requests as events; adapter services execute them on
PostgreSQL and reply; a registry lets services find each other; a router sends
writes to the primary and reads to fresh replicas.

The public API is what this module exports; everything else may change.
"""

from importlib.metadata import PackageNotFoundError, version

from querybus.adapter.executor import Executor, Outcome
from querybus.adapter.policy import Policy
from querybus.adapter.postgres import PostgresExecutor
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.client import ClientState, QueryClient, Result, Row
from querybus.config import AdapterSettings, BusSettings, PostgresSettings, TopicNames
from querybus.errors import (
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
    ProtocolError,
    QueryBusError,
    QueryCanceledError,
    QueryError,
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
    "AdapterService",
    "AdapterSettings",
    "BrokerUnavailableError",
    "BusSettings",
    "ClientState",
    "ConfigurationError",
    "DataError",
    "DeadlineExceededError",
    "Executor",
    "FeatureNotSupportedError",
    "InsufficientPrivilegeError",
    "IntegrityConstraintViolationError",
    "InterfaceError",
    "NoEligibleTargetError",
    "OperationType",
    "OperationalError",
    "Outcome",
    "PayloadTooLargeError",
    "Policy",
    "PostgresExecutor",
    "PostgresSettings",
    "ProtocolError",
    "QueryBusError",
    "QueryCanceledError",
    "QueryClient",
    "QueryError",
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
    "SqliteExecutor",
    "TargetBusyError",
    "TopicNames",
    "TransactionRollbackError",
    "Transport",
    "TransportError",
    "UndefinedObjectError",
    "__version__",
    "connect",
]
