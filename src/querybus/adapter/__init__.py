"""The adapter: a Kafka consumer-group member that executes requests and replies.

The server side of querybus; it needs ``pip install 'querybus[adapter]'`` (asyncpg,
pglast, aiosqlite, prometheus-client). A caller only needs :mod:`querybus`.
"""

from querybus.adapter.policy import Policy
from querybus.adapter.roles import RolePolicies, RolePolicy
from querybus.adapter.service import AdapterService
from querybus.adapter.sqlite import SqliteExecutor
from querybus.database.executor import PostgresExecutor
from querybus.execution import Executor, Identity, Outcome
from querybus.identity import IdentitySettings, TokenVerifier

__all__ = [
    "AdapterService",
    "Executor",
    "Identity",
    "IdentitySettings",
    "Outcome",
    "Policy",
    "PostgresExecutor",
    "RolePolicies",
    "RolePolicy",
    "SqliteExecutor",
    "TokenVerifier",
]
