"""The public API: curated, sorted ``__all__`` lists whose every name exists."""

from __future__ import annotations

import importlib
import re

import pytest

import querybus


def isort_key(name: str) -> tuple[int, list[object]]:
    """ruff's RUF022 order: CONSTANTS, then CamelCase, then the rest; natural within each."""
    if name.isupper() or re.fullmatch(r"[A-Z0-9_]+", name):
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    parts: list[object] = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
    return kind, parts


MODULES = [
    "querybus.client",
    "querybus.client.client",
    "querybus.client.result",
    "querybus.client.sync",
    "querybus.config",
    "querybus.protocol",
    "querybus.protocol.codec",
    "querybus.protocol.messages",
    "querybus.protocol.values",
    "querybus.transport",
    "querybus.transport.base",
    "querybus.adapter",
    "querybus.adapter.service",
    "querybus.database.executor",
    "querybus.adapter.sqlite",
    "querybus.adapter.policy",
    "querybus.adapter.offsets",
    "querybus.execution",
    "querybus.observability.client_metrics",
    "querybus.observability.metrics",
    "querybus.errors",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_module_all_is_sorted_unique_and_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert len(names) == len(set(names)), "duplicates in __all__"
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"
    assert names == sorted(names, key=isort_key)


def test_subpackages_export_the_core_names() -> None:
    from querybus.client import ClientState, QueryClient, Result, Row  # noqa: F401
    from querybus.config import AdapterSettings, BusSettings, PostgresSettings, TopicNames  # noqa: F401
    from querybus.protocol import QueryRequest, decode_reply, encode  # noqa: F401
    from querybus.transport import Transport, connect  # noqa: F401


def test_server_classes_come_from_their_packages() -> None:
    from querybus.adapter import (  # noqa: F401
        AdapterService,
        Executor,
        Outcome,
        Policy,
        PostgresExecutor,
        SqliteExecutor,
    )

    # The top level is the caller's API: no server class is exported there.
    server = {
        "AdapterService",
        "Executor",
        "Outcome",
        "Policy",
        "PostgresExecutor",
        "SqliteExecutor",
    }
    assert not server & set(querybus.__all__)


def test_top_level_public_api() -> None:
    names = list(querybus.__all__)
    assert names == sorted(names, key=isort_key)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(querybus, name), name
    expected = {
        "QueryClient",
        "SyncQueryClient",
        "Result",
        "Row",
        "BusSettings",
        "ClientSettings",
        "TopicNames",
        "AdapterSettings",
        "PostgresSettings",
        "QueryBusError",
        "QueryError",
        "RequestTimeoutError",
        "RequestRejectedError",
        "OperationType",
    }
    assert expected <= set(names), expected - set(names)
    assert querybus.QueryClient.__module__.startswith("querybus.client")
    assert querybus.SyncQueryClient.__module__.startswith("querybus.client")
