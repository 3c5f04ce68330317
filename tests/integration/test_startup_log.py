"""A normal start logs no errors: expected start-up conditions of Kafka are not failures.

On a fresh topic prefix the broker has only just created the topics, so a
partition's leader may not be serving yet (``NotLeaderForPartitionError``), and
the coordinator of a new group may not be loaded yet
(``GroupCoordinatorNotAvailableError``). aiokafka logs those answers at ERROR
and retries; an operator must not see errors when nothing is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from tests.integration.conftest import Bus
from tests.stack import Stack, UniqueNames

from querybus.config import BusSettings, TopicNames


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def aiokafka_log() -> Iterator[list[logging.LogRecord]]:
    """Records of WARNING and above from aiokafka's loggers, as an operator's
    handler receives them (their levels are left as they are: WARNING by default)."""
    recorder = _Recorder()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        logger.removeHandler(recorder)


def _errors(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name} {r.levelname}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR
    ]


class _TransientSpy(logging.Filter):
    """Sees every record of a logger before any other filter does, to tell
    whether a start actually met a transient answer (whatever level it ends at)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if any(name in record.getMessage() for name in TRANSIENT):
            self.count += 1
        return True


TRANSIENT = ("NotLeaderForPartition", "LeaderNotAvailable", "CoordinatorNotAvailable")


@pytest.fixture
def transient_spy() -> Iterator[_TransientSpy]:
    spy = _TransientSpy()
    loggers = [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith("aiokafka")
    ]
    for logger in loggers:
        logger.filters.insert(0, spy)
    try:
        yield spy
    finally:
        for logger in loggers:
            logger.removeFilter(spy)


async def test_fresh_adapters_and_first_requests_log_no_aiokafka_errors(
    stack: Stack,
    unique: UniqueNames,
    aiokafka_log: list[logging.LogRecord],
    transient_spy: _TransientSpy,
) -> None:
    # Whether the broker still answers "not the leader" when the adapter looks
    # up its start offsets depends on how fast it takes up leadership of the
    # new partitions: with 32 of them nearly every start meets it. Start on
    # fresh prefixes until one did (a few at most), so the test exercises it.
    for _ in range(5):
        settings = BusSettings(
            bootstrap_servers=stack.kafka_bootstrap,
            topics=TopicNames(prefix=unique("startlog") + "."),
            request_partitions=32,
            response_partitions=4,
        )
        bus = Bus(settings, unique("group"), stack)
        try:
            await bus.adapter()  # creates the topics and a new group
            client = await bus.client()
            assert await client.fetchval("SELECT 41 + 1") == 42
        finally:
            await bus.close()
        if transient_spy.count:
            break
    assert _errors(aiokafka_log) == []


async def test_second_adapter_joining_logs_no_aiokafka_errors(
    bus: Bus, aiokafka_log: list[logging.LogRecord]
) -> None:
    await bus.adapter()
    client = await bus.client()
    await bus.adapter()  # joins the group: a rebalance, not a failure
    for i in range(8):
        assert await client.fetchval("SELECT $1::int", i) == i
    assert _errors(aiokafka_log) == []
