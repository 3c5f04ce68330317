"""The transport contract: what querybus needs from a log-structured message bus.

Two implementations honour it: :mod:`querybus.transport.kafka` (aiokafka, the
only module that imports it) and :mod:`querybus.transport.memory` (in-process,
for the embedded mode and unit tests). ``tests/contract/`` runs one suite
against both.

Semantics both must keep:

* A topic has a fixed number of partitions; records within a partition keep
  their order and get consecutive offsets starting at 0.
* ``Producer.send`` returns once the record is durably appended (acks=all on
  Kafka) and returns its partition and offset. Without an explicit
  partition, records with the same key go to the same partition; keyless
  records are spread.
* A :class:`PartitionReader` is assigned partitions manually — no group, no
  rebalance. Its start position ("end" or "beginning") is resolved during
  ``start()``, so a record appended after ``start()`` returns is never missed.
* ``Producer.send`` stamps the record with the bus's clock, or with the
  ``timestamp`` it is given (Kafka's ``CreateTime``; a topic configured with
  ``message.timestamp.type=LogAppendTime`` keeps the broker's clock instead).
* A :class:`GroupConsumer` shares its topics' partitions with the other
  members of its group. After every (re)assignment, each partition it is given
  resumes from the group's committed offset. A partition the group has *no*
  committed offset for starts at the earliest offset when the member was made
  with ``start_lookback=None``; with ``start_lookback=S`` it starts at the
  first record stamped at or after "now minus S seconds" (Kafka's offsets by
  timestamp), or at the end of the partition when there is no such record.
  So a new group neither works through old history nor loses what was sent
  during the last S seconds; this holds as well for a partition that moves to
  the member in a later rebalance before anybody committed it. Records are
  only committed by :meth:`GroupConsumer.commit`.
  ``on_revoke`` is awaited before partitions are taken away, so the member
  can finish and commit its in-flight work first.
* ``delete_topics`` of a topic that does not exist (any more) succeeds, so
  several callers may delete the same topic at once;
  ``latest_timestamp`` answers None for a partition that holds no record.
* All failures surface as :class:`~querybus.errors.TransportError`
  subclasses (``BrokerUnavailableError`` when the bus cannot be reached).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from querybus.protocol.headers import header

__all__ = [
    "GroupConsumer",
    "PartitionReader",
    "Producer",
    "Record",
    "RecordMetadata",
    "RevokeCallback",
    "TopicPartition",
    "TopicSpec",
    "Transport",
]

#: (topic, partition)
TopicPartition = tuple[str, int]
#: Awaited with the partitions about to be taken away from a group member.
RevokeCallback = Callable[[set[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from the bus. ``value`` is None for a tombstone."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float = 0.0  # seconds since the epoch, as stamped by the bus

    def header(self, name: str) -> bytes | None:
        """The first header called ``name``, or None."""
        return header(self.headers, name)


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where a sent record landed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create if it does not exist yet."""

    name: str
    partitions: int = 1
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)  # e.g. {"cleanup.policy": "compact"}


class Producer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp: float | None = None,
    ) -> RecordMetadata:
        """Append one record and wait until it is acknowledged.

        Args:
            topic: the topic to append to.
            value: the payload; None for a tombstone.
            key: records with the same key land in the same partition.
            partition: an explicit partition instead of the key's.
            headers: (name, value) pairs, in order.
            timestamp: seconds since the epoch to stamp the record with;
                None stamps it with the current time.

        Raises:
            TransportError: the record could not be appended (``PayloadTooLargeError``
                when the bus refuses its size).
        """
        ...

    async def start_send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp: float | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Append one record to the producer's buffer and return the future of
        its acknowledgement, without waiting for it: a caller that learns of
        the delivery another way (a request's reply) saves a wake-up. The
        arguments are :meth:`send`'s.

        Raises:
            TransportError: the record could not be buffered (the producer is
                not started, the record is too large, an unknown partition);
                the future then raises what a failed delivery raises with
                ``send``.
        """
        ...


class PartitionReader(Protocol):
    """Reads given partitions without a consumer group."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def getmany(self, timeout: float) -> list[Record]:
        """Records available now, or those that arrive within ``timeout`` seconds
        (an empty list when none does)."""
        ...


class GroupConsumer(Protocol):
    """A member of a consumer group."""

    async def start(self) -> None: ...
    async def stop(self) -> None:
        """Leave the group. Does not commit: commit what is done before."""
        ...

    async def getmany(self, timeout: float, max_records: int = 500) -> list[Record]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, for each partition, the offset of the *next* record to read.

        Raises:
            TransportError: the commit failed (e.g. the partition was reassigned).
        """
        ...

    def assignment(self) -> set[TopicPartition]: ...


class Transport(Protocol):
    """A connection to one bus: makes producers and consumers, manages topics."""

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""
        ...

    async def partition_count(self, topic: str) -> int:
        """Number of partitions of an existing topic.

        Raises:
            TransportError: unknown topic or unreachable bus.
        """
        ...

    async def list_topics(self, prefix: str = "") -> list[str]:
        """The names of the topics that start with ``prefix``, sorted.

        The bus's internal topics (Kafka's ``__consumer_offsets``…) are left
        out, and so, on Kafka, are topics this principal may not describe.

        Raises:
            TransportError: the bus could not be asked (``BrokerUnavailableError``
                when it cannot be reached).
        """
        ...

    async def delete_topics(self, names: Sequence[str]) -> None:
        """Delete topics. An unknown one is not an error, so that several
        callers deleting the same topic at once all succeed.

        Raises:
            BrokerAuthorizationError: this principal may not delete one of them.
            TransportError: the bus refused for another reason, or cannot be reached.
        """
        ...

    async def latest_timestamp(self, topic: str, partition: int = 0) -> float | None:
        """The timestamp (seconds since the epoch) of the last record of one
        partition, as the bus stored it; None when the partition holds no record.

        Bounded in time (the transport's request timeout on Kafka).

        Raises:
            BrokerAuthorizationError: this principal may not read the topic.
            BrokerUnavailableError: the bus cannot be reached.
            TransportError: unknown topic or partition, or the record could
                not be read in time.
        """
        ...

    def producer(self) -> Producer: ...

    def partition_reader(
        self,
        topic: str,
        partitions: Sequence[int] | None = None,
        *,
        start_at: Literal["end", "beginning"] = "end",
    ) -> PartitionReader:
        """A reader of ``partitions`` of ``topic`` (all of them when None)."""
        ...

    def group_consumer(
        self,
        topics: Sequence[str],
        group_id: str,
        *,
        on_revoke: RevokeCallback | None = None,
        max_poll_interval: float = 300.0,
        start_lookback: float | None = None,
    ) -> GroupConsumer:
        """A member of ``group_id`` consuming ``topics`` (not started).

        Args:
            topics: the topics whose partitions the group shares.
            group_id: the consumer group.
            on_revoke: awaited with the partitions about to be taken away.
            max_poll_interval: seconds between two ``getmany`` calls before the
                member is considered stuck and its partitions are reassigned.
            start_lookback: where a partition *without* a committed offset
                starts: None for its earliest offset; S seconds for the first
                record stamped at or after "now minus S" (the end of the
                partition when there is none). Committed partitions always
                resume from their commit.

        Raises:
            ConfigurationError: ``start_lookback`` is negative.
        """
        ...

    async def close(self) -> None:
        """Release shared resources (admin connections). Producers and consumers
        are stopped by their owners."""
        ...
