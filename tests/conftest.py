"""Fixtures shared by every test.

``stack`` starts (or finds) the real local services lazily: unit tests that do
not ask for it never start anything. Tests under ``tests/integration`` are
marked ``integration`` automatically; they must never be skipped.
"""

from __future__ import annotations

import asyncio
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


_USED_STACKS: list[Stack] = []
#: The session's one name source (it remembers what it handed out).
_UNIQUE = UniqueNames()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the topics this session's tests made (named after the ``t-…``
    names :class:`UniqueNames` handed out in this session).

    Every test works on topics of its own; without this a long-lived local
    broker accumulates thousands of partitions over many runs, until it runs
    out of file descriptors. Only this session's: another session running
    against the same broker at the same time keeps its topics.
    """
    for used in _USED_STACKS:
        asyncio.run(_delete_test_topics(used.kafka_bootstrap, UniqueNames.made))


def _made_here(topic: str, made: set[str]) -> bool:
    # Topics are a recorded name, or start with one ("t-e2e-1a2b3c4d.database…",
    # "t-1a2b3c4d-querybus.registry").
    return topic.startswith("t-") and any(topic.startswith(name) for name in made)


async def _delete_test_topics(bootstrap: str, made: set[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if _made_here(t, made)]
        for i in range(0, len(names), 100):
            await admin.delete_topics(names[i : i + 100])
    except Exception as exc:  # cleanup must never turn a green run red
        print(f"\nnote: could not delete the test topics: {exc!r}")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running local services (Kafka, PostgreSQL primary + replica, etcd)."""
    try:
        loaded = load_stack()
    except StackUnavailableError as exc:
        pytest.fail(f"local services unavailable (run `make services`): {exc}", pytrace=False)
    _USED_STACKS.append(loaded)
    return loaded


@pytest.fixture(scope="session")
def unique() -> UniqueNames:
    return _UNIQUE
