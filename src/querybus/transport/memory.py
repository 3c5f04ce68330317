"""An in-process bus with Kafka's semantics, for the embedded mode and unit tests.

``memory://NAME`` names a bus shared by every :class:`MemoryTransport` opened
with that name in one process, so a client and an adapter living in the same
process talk to each other exactly as they would through Kafka.

What is kept from Kafka, because callers depend on it:

* fixed partitions, offsets from 0 per partition, key-hash partitioning
  (keyless records go round-robin), headers, tombstones, a size limit;
* a :class:`~querybus.transport.base.PartitionReader` resolves its start
  position in ``start()``;
* consumer groups rebalance *eagerly*, like aiokafka's default protocol: when a
  member joins or leaves, every remaining member's ``on_revoke`` is awaited
  with its whole assignment, then partitions are dealt round-robin and each
  member resumes from the group's committed offset (when none: the earliest
  offset, or the first record stamped within the member's ``start_lookback``).
  So fetched-but-uncommitted records are redelivered after a rebalance, here
  as on Kafka, and code that is wrong about it fails in unit tests too.

What is not modelled: retention, compaction, replication, ``max_poll_interval``.
The bus lives on the event loop that first uses it; it is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Literal

from querybus.cancellation import wait_for
from querybus.errors import (
    ConfigurationError,
    InterfaceError,
    PayloadTooLargeError,
    TransportError,
)
from querybus.transport.base import (
    Record,
    RecordMetadata,
    RevokeCallback,
    TopicPartition,
    TopicSpec,
)

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "MemoryTransport"]

log = logging.getLogger(__name__)

#: Kafka's own default for ``max.request.size``.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
# A PartitionReader returns at most this many records per call, so one busy
# partition cannot make a single getmany() build an unbounded list.
_READER_BATCH = 10_000


class _Waiter:
    """A wake-up flag owned by one reader or group member.

    Appends and rebalances set it; the owner clears it before it looks for
    records, so a wake-up that happens in between is never lost.
    """

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await wait_for(self.event.wait(), seconds)


class _Topic:
    def __init__(self, spec: TopicSpec) -> None:
        self.name = spec.name
        self.config = dict(spec.config)
        self.logs: list[list[Record]] = [[] for _ in range(spec.partitions)]
        self.waiters: set[_Waiter] = set()
        self._round_robin = itertools.count()

    def choose_partition(self, key: bytes | None) -> int:
        if key is None:
            return next(self._round_robin) % len(self.logs)
        # crc32, not hash(): the mapping must be stable across processes and runs.
        return zlib.crc32(key) % len(self.logs)

    def notify(self) -> None:
        for waiter in self.waiters:
            waiter.event.set()


class _Group:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.committed: dict[TopicPartition, int] = {}
        self.members: list[_MemoryGroupConsumer] = []
        # One rebalance at a time, like a group coordinator.
        self.lock = asyncio.Lock()


class _Bus:
    def __init__(self, name: str) -> None:
        self.name = name
        self.topics: dict[str, _Topic] = {}
        self.groups: dict[str, _Group] = {}

    def topic(self, name: str) -> _Topic:
        try:
            return self.topics[name]
        except KeyError:
            raise TransportError(f"unknown topic {name!r} on memory://{self.name}") from None

    def group(self, group_id: str) -> _Group:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = _Group(group_id)
        return group


_BUSES: dict[str, _Bus] = {}


def _bus(name: str) -> _Bus:
    bus = _BUSES.get(name)
    if bus is None:
        bus = _BUSES[name] = _Bus(name)
    return bus


def _record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    size = len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += len(name.encode()) + len(header_value)
    return size


class _MemoryProducer:
    def __init__(self, bus: _Bus, max_message_bytes: int) -> None:
        self._bus = bus
        self._max_message_bytes = max_message_bytes
        self._started = False
        self._stopped = False

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._stopped = True

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
        """Append one record, stamped with ``timestamp`` (seconds since the
        epoch) or with the current time.

        Raises:
            InterfaceError: the producer is not started, or stopped.
            PayloadTooLargeError: the record exceeds ``max_message_bytes``.
            TransportError: unknown topic or partition.
        """
        if not self._started or self._stopped:
            raise InterfaceError("producer is not started")
        size = _record_size(key, value, headers)
        if size > self._max_message_bytes:
            raise PayloadTooLargeError(
                f"record of {size} bytes exceeds max_message_bytes={self._max_message_bytes}"
            )
        log_ = self._bus.topic(topic)
        if partition is None:
            partition = log_.choose_partition(key)
        elif not 0 <= partition < len(log_.logs):
            raise TransportError(f"topic {topic!r} has no partition {partition}")
        records = log_.logs[partition]
        offset = len(records)
        records.append(
            Record(
                topic=topic,
                partition=partition,
                offset=offset,
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp=time.time() if timestamp is None else timestamp,
            )
        )
        log_.notify()
        # Yield like a network round trip would, so a tight send loop cannot
        # starve the consumers sharing this event loop.
        await asyncio.sleep(0)
        return RecordMetadata(topic=topic, partition=partition, offset=offset)

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
        """:meth:`send` at once; the future is done (delivered) already."""
        meta = await self.send(
            topic, value, key=key, partition=partition, headers=headers, timestamp=timestamp
        )
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        ack.set_result(meta)
        return ack


class _MemoryPartitionReader:
    def __init__(
        self,
        bus: _Bus,
        topic: str,
        partitions: Sequence[int] | None,
        start_at: Literal["end", "beginning"],
    ) -> None:
        self._bus = bus
        self._topic_name = topic
        self._partitions = None if partitions is None else list(partitions)
        self._start_at = start_at
        self._positions: dict[int, int] = {}
        self._waiter = _Waiter()
        self._topic: _Topic | None = None

    async def start(self) -> None:
        """Resolve the start position of every partition.

        Raises:
            TransportError: unknown topic or partition.
        """
        topic = self._bus.topic(self._topic_name)
        partitions = list(range(len(topic.logs))) if self._partitions is None else self._partitions
        for p in partitions:
            if not 0 <= p < len(topic.logs):
                raise TransportError(f"topic {self._topic_name!r} has no partition {p}")
        self._positions = {
            p: (len(topic.logs[p]) if self._start_at == "end" else 0) for p in partitions
        }
        topic.waiters.add(self._waiter)
        self._topic = topic

    async def stop(self) -> None:
        if self._topic is not None:
            self._topic.waiters.discard(self._waiter)
            self._topic = None

    def _take(self, topic: _Topic) -> list[Record]:
        out: list[Record] = []
        for p, pos in self._positions.items():
            records = topic.logs[p]
            if pos < len(records):
                chunk = records[pos : pos + _READER_BATCH - len(out)]
                out.extend(chunk)
                self._positions[p] = pos + len(chunk)
                if len(out) >= _READER_BATCH:
                    break
        return out

    async def getmany(self, timeout: float) -> list[Record]:
        """Records available now, or those that arrive within ``timeout`` seconds.

        Raises:
            InterfaceError: the reader is not started.
        """
        topic = self._topic
        if topic is None:
            raise InterfaceError("partition reader is not started")
        deadline = time.monotonic() + timeout
        while True:
            self._waiter.event.clear()
            out = self._take(topic)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or self._topic is None:
                return out
            await self._waiter.wait(remaining)


class _MemoryGroupConsumer:
    def __init__(
        self,
        bus: _Bus,
        topics: Sequence[str],
        group_id: str,
        on_revoke: RevokeCallback | None,
        start_lookback: float | None,
    ) -> None:
        self._bus = bus
        self._topic_names = list(topics)
        self._group = bus.group(group_id)
        self._on_revoke = on_revoke
        self._start_lookback = start_lookback
        self._waiter = _Waiter()
        self._topics: list[_Topic] = []
        self._positions: dict[TopicPartition, int] = {}
        self._joined = False

    async def start(self) -> None:
        """Join the group; returns once this member has its assignment.

        Raises:
            TransportError: one of the topics does not exist.
        """
        if self._joined:
            return
        self._topics = [self._bus.topic(name) for name in self._topic_names]
        async with self._group.lock:
            self._group.members.append(self)
            self._joined = True
            for topic in self._topics:
                topic.waiters.add(self._waiter)
            await self._rebalance()

    async def stop(self) -> None:
        """Leave the group (without committing); the others rebalance."""
        if not self._joined:
            return
        async with self._group.lock:
            self._joined = False
            self._group.members.remove(self)
            self._positions = {}
            for topic in self._topics:
                topic.waiters.discard(self._waiter)
            self._waiter.event.set()
            await self._rebalance()

    async def _rebalance(self) -> None:
        # Called with the group lock held. Eager protocol: everybody gives up
        # everything first (awaiting on_revoke), then partitions are dealt out.
        group = self._group
        for member in list(group.members):
            await member._revoke()
        all_tps = sorted(
            {
                (topic.name, p)
                for member in group.members
                for topic in member._topics
                for p in range(len(topic.logs))
            }
        )
        members = list(group.members)
        assignment: dict[int, list[TopicPartition]] = {id(m): [] for m in members}
        # Round-robin over the members subscribed to each partition's topic,
        # as aiokafka's default RoundRobinPartitionAssignor does.
        turn = itertools.count()
        for tp in all_tps:
            eligible = [m for m in members if tp[0] in m._topic_names]
            while True:
                candidate = members[next(turn) % len(members)]
                if candidate in eligible:
                    assignment[id(candidate)].append(tp)
                    break
        for member in members:
            member._positions = {tp: member._start_offset(tp) for tp in assignment[id(member)]}
            member._waiter.event.set()

    def _start_offset(self, tp: TopicPartition) -> int:
        committed = self._group.committed.get(tp)
        if committed is not None:
            return committed
        if self._start_lookback is None:
            return 0
        # Kafka's offsets by timestamp: the first offset whose timestamp is at
        # or after the target, scanning in offset order (timestamps given by
        # producers need not increase); the end of the log when none is.
        since = time.time() - self._start_lookback
        records = self._bus.topic(tp[0]).logs[tp[1]]
        return next((r.offset for r in records if r.timestamp >= since), len(records))

    async def _revoke(self) -> None:
        revoked = set(self._positions)
        if revoked and self._on_revoke is not None:
            try:
                await self._on_revoke(revoked)
            except Exception:
                # aiokafka logs and carries on when a listener fails; a broken
                # callback must not wedge the whole group.
                log.exception("on_revoke callback failed for group %s", self._group.group_id)
        self._positions = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    async def getmany(
        self,
        timeout: float,
        max_records: int = 500,
    ) -> list[Record]:
        """Records from the assigned partitions, waiting up to ``timeout`` seconds.

        Raises:
            InterfaceError: the consumer is not started.
        """
        if not self._joined:
            raise InterfaceError("group consumer is not started")
        deadline = time.monotonic() + timeout
        topics = {topic.name: topic for topic in self._topics}
        while True:
            self._waiter.event.clear()
            out: list[Record] = []
            for tp, pos in self._positions.items():
                records = topics[tp[0]].logs[tp[1]]
                if pos < len(records):
                    chunk = records[pos : pos + max_records - len(out)]
                    out.extend(chunk)
                    self._positions[tp] = pos + len(chunk)
                    if len(out) >= max_records:
                        break
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or not self._joined:
                return out
            await self._waiter.wait(remaining)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, for each partition, the offset of the next record to read.

        Raises:
            TransportError: a partition is not assigned to this member.
        """
        for tp in offsets:
            if tp not in self._positions:
                raise TransportError(
                    f"cannot commit {tp}: not assigned to this member of {self._group.group_id!r}"
                )
        self._group.committed.update(offsets)


class MemoryTransport:
    """A :class:`~querybus.transport.base.Transport` over an in-process bus.

    Args:
        name: the bus; every transport with the same name in this process shares it.
        max_message_bytes: largest record (key + value + headers) a producer accepts.
    """

    def __init__(
        self, name: str = "", *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self.name = name
        self.max_message_bytes = max_message_bytes
        self._bus = _bus(name)

    def __repr__(self) -> str:
        return f"MemoryTransport('memory://{self.name}')"

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet.

        Raises:
            TransportError: a spec asks for fewer than one partition.
        """
        for spec in specs:
            if spec.partitions < 1:
                raise TransportError(f"topic {spec.name!r} needs at least one partition")
            if spec.name not in self._bus.topics:
                self._bus.topics[spec.name] = _Topic(spec)

    async def partition_count(self, topic: str) -> int:
        """Number of partitions of an existing topic.

        Raises:
            TransportError: unknown topic.
        """
        return len(self._bus.topic(topic).logs)

    async def list_topics(self, prefix: str = "") -> list[str]:
        """The names of the topics that start with ``prefix``, sorted (this
        bus has no internal topics)."""
        return sorted(name for name in self._bus.topics if name.startswith(prefix))

    async def delete_topics(self, names: Sequence[str]) -> None:
        """Delete topics (an unknown one is not an error).

        Readers and group members of a deleted topic keep what they hold and
        see nothing new; a send to it fails (unknown topic).
        """
        for name in names:
            topic = self._bus.topics.pop(name, None)
            if topic is not None:
                topic.notify()

    async def latest_timestamp(self, topic: str, partition: int = 0) -> float | None:
        """The timestamp of the last record of ``partition`` (None when it has none).

        Raises:
            TransportError: unknown topic or partition.
        """
        logs = self._bus.topic(topic).logs
        if not 0 <= partition < len(logs):
            raise TransportError(f"topic {topic!r} has no partition {partition}")
        records = logs[partition]
        return records[-1].timestamp if records else None

    def producer(self) -> _MemoryProducer:
        return _MemoryProducer(self._bus, self.max_message_bytes)

    def partition_reader(
        self,
        topic: str,
        partitions: Sequence[int] | None = None,
        *,
        start_at: Literal["end", "beginning"] = "end",
    ) -> _MemoryPartitionReader:
        return _MemoryPartitionReader(self._bus, topic, partitions, start_at)

    def group_consumer(
        self,
        topics: Sequence[str],
        group_id: str,
        *,
        on_revoke: RevokeCallback | None = None,
        max_poll_interval: float = 300.0,
        start_lookback: float | None = None,
    ) -> _MemoryGroupConsumer:
        """A member of ``group_id`` (see :meth:`Transport.group_consumer`).

        Raises:
            ConfigurationError: ``start_lookback`` is negative.
        """
        if start_lookback is not None and not start_lookback >= 0:
            raise ConfigurationError(f"start_lookback must be >= 0 seconds, got {start_lookback}")
        return _MemoryGroupConsumer(self._bus, topics, group_id, on_revoke, start_lookback)

    async def close(self) -> None:
        """Nothing to release: the bus outlives transports so others can reopen it."""
