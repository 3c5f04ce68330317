"""Fixtures shared by every test.

``stack`` starts (or finds) the real local services lazily: unit tests that do
not ask for it never start anything. Tests under ``tests/integration`` are
marked ``integration`` automatically; they must never be skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules import helpers as ``tests.…``; pytest's default (prepend) import
# mode puts only tests/ on sys.path, so add the repository root once.
# (`pythonpath = ["."]` in the pytest settings would make this unnecessary.)
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.stack import (  # noqa: E402
    Stack,
    StackUnavailableError,
    UniqueNames,
    load_stack,
)

_INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running local services (Kafka, PostgreSQL primary + replica, etcd)."""
    try:
        return load_stack()
    except StackUnavailableError as exc:
        pytest.fail(f"local services unavailable (run `make services`): {exc}", pytrace=False)


@pytest.fixture(scope="session")
def unique() -> UniqueNames:
    return UniqueNames()
