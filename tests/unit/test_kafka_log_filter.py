"""aiokafka's log records about expected, retried broker answers are not errors.

The records are logged here through aiokafka's own loggers, with the very
messages and arguments aiokafka uses (see the comments), so what an operator's
handler receives is exactly what it would receive from a running client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    LeaderNotAvailableError,
    NotCoordinatorForGroupError,
    NotLeaderForPartitionError,
    UnknownMemberIdError,
)

from querybus.transport.kafka import TransientBrokerAnswerFilter, install_log_filter


class _Recorder(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def operator_log() -> Iterator[_Recorder]:
    """A handler at WARNING on aiokafka's root logger, levels left at their defaults."""
    recorder = _Recorder(logging.WARNING)
    logging.getLogger("aiokafka").addHandler(recorder)
    try:
        yield recorder
    finally:
        logging.getLogger("aiokafka").removeHandler(recorder)


TRANSIENT: list[tuple[str, str, tuple[object, ...]]] = [
    # aiokafka/consumer/group_coordinator.py, ensure_coordinator_known()
    (
        "aiokafka.consumer.group_coordinator",
        "Group Coordinator Request failed: %s",
        (GroupCoordinatorNotAvailableError(),),
    ),
    # aiokafka/consumer/fetcher.py, _update_fetch_positions()
    (
        "aiokafka.consumer.fetcher",
        "Failed fetch offsets from %s: %s",
        (1, NotLeaderForPartitionError("TopicPartition(topic='t', partition=4)")),
    ),
    (
        "aiokafka.consumer.fetcher",
        "Failed fetch offsets from %s: %s",
        (1, LeaderNotAvailableError()),
    ),
    # aiokafka/producer/sender.py, InitPIDHandler (an error class, not an instance)
    (
        "aiokafka.producer.sender",
        "Unexpected error during InitProducerIdRequest: %s",
        (NotCoordinatorForGroupError,),
    ),
]


@pytest.mark.parametrize(("name", "message", "args"), TRANSIENT)
def test_transient_answers_do_not_reach_an_operator_as_errors(
    name: str, message: str, args: tuple[object, ...], operator_log: _Recorder
) -> None:
    logging.getLogger(name).error(message, *args)
    assert operator_log.records == []


@pytest.mark.parametrize(
    ("name", "message", "args"),
    [
        # The broker cannot be reached: an operator must see that.
        (
            "aiokafka.consumer.fetcher",
            "Failed fetch offsets from %s: %s",
            (1, KafkaConnectionError("refused")),
        ),
        (
            "aiokafka.consumer.group_coordinator",
            "Unexpected error from SyncGroup: %s",
            (UnknownMemberIdError(),),
        ),
        ("aiokafka.client", "Unable to update metadata from %s", ([1, 2],)),
        (
            "aiokafka.consumer.group_coordinator",
            "Heartbeat session expired - marking coordinator dead",
            (),
        ),
    ],
)
def test_real_errors_keep_their_level(
    name: str, message: str, args: tuple[object, ...], operator_log: _Recorder
) -> None:
    logging.getLogger(name).error(message, *args)
    assert [(r.name, r.levelno) for r in operator_log.records] == [(name, logging.ERROR)]


def test_a_lowered_record_shows_as_debug_when_debug_is_on() -> None:
    logger = logging.getLogger("aiokafka.consumer.fetcher")
    recorder = _Recorder(logging.DEBUG)
    logger.addHandler(recorder)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.error("Failed fetch offsets from %s: %s", 1, NotLeaderForPartitionError())
    finally:
        logger.setLevel(level)
        logger.removeHandler(recorder)
    [record] = recorder.records
    assert (record.levelno, record.levelname) == (logging.DEBUG, "DEBUG")
    assert "NotLeaderForPartitionError" in record.getMessage()


def test_every_aiokafka_logger_has_the_filter_once() -> None:
    install_log_filter()  # a second time: must not add another
    names = [
        name
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith("aiokafka")
    ]
    # The loggers that log broker answers at ERROR are among them.
    for expected in (
        "aiokafka.consumer.fetcher",
        "aiokafka.consumer.group_coordinator",
        "aiokafka.producer.sender",
        "aiokafka.cluster",
        "aiokafka.client",
    ):
        assert expected in names
    for name in names:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, TransientBrokerAnswerFilter) for f in filters) == 1, name
