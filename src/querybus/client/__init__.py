"""The querybus client: :class:`QueryClient` and what it returns."""

from querybus.client.client import ClientState, QueryClient
from querybus.client.result import Result, Row

__all__ = ["ClientState", "QueryClient", "Result", "Row"]
