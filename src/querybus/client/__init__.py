"""The querybus client: :class:`QueryClient` and what it returns."""

from querybus.client.client import ClientState, QueryClient
from querybus.client.result import Result, Row
from querybus.client.transaction import Savepoint, Transaction, TransactionState

__all__ = [
    "ClientState",
    "QueryClient",
    "Result",
    "Row",
    "Savepoint",
    "Transaction",
    "TransactionState",
]
