"""What the in-memory bus adds to the shared contract: naming, waking, misuse."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from querybus.errors import ConfigurationError, InterfaceError, TransportError
from querybus.transport import KafkaTransport, MemoryTransport, TopicPartition, TopicSpec, connect


def _name() -> str:
    return f"unit-{uuid.uuid4().hex[:8]}"


def test_connect_picks_the_implementation_from_the_address() -> None:
    name = _name()
    memory = connect(f"memory://{name}", max_message_bytes=10)
    assert isinstance(memory, MemoryTransport)
    assert (memory.name, memory.max_message_bytes) == (name, 10)
    assert isinstance(connect("memory://"), MemoryTransport)
    assert isinstance(connect("127.0.0.1:9092"), KafkaTransport)
    with pytest.raises(ConfigurationError):
        connect("  ")


async def test_same_name_shares_a_bus_other_names_do_not() -> None:
    name = _name()
    a, b, other = MemoryTransport(name), MemoryTransport(name), MemoryTransport(_name())
    await a.create_topics([TopicSpec("t", partitions=2)])
    assert await b.partition_count("t") == 2
    with pytest.raises(TransportError):
        await other.partition_count("t")


async def test_getmany_wakes_on_send_not_on_timeout() -> None:
    bus = MemoryTransport(_name())
    await bus.create_topics([TopicSpec("t")])
    reader, producer = bus.partition_reader("t"), bus.producer()
    await reader.start()
    await producer.start()
    try:
        waiting = asyncio.create_task(reader.getmany(30.0))
        await asyncio.sleep(0)  # let the reader park
        began = time.monotonic()
        await producer.send("t", b"hello")
        records = await asyncio.wait_for(waiting, 5.0)
        assert [r.value for r in records] == [b"hello"]
        assert time.monotonic() - began < 1.0
        assert await reader.getmany(0) == []
    finally:
        await reader.stop()
        await producer.stop()


async def test_misuse_is_reported() -> None:
    bus = MemoryTransport(_name(), max_message_bytes=100)
    await bus.create_topics([TopicSpec("t")])
    producer = bus.producer()
    with pytest.raises(InterfaceError):
        await producer.send("t", b"x")
    await producer.start()
    try:
        with pytest.raises(TransportError):
            await producer.send("missing", b"x")
    finally:
        await producer.stop()
    with pytest.raises(InterfaceError):
        await bus.partition_reader("t").getmany(0)
    with pytest.raises(TransportError):
        await bus.partition_reader("t", [3]).start()
    with pytest.raises(TransportError):
        await bus.group_consumer(["missing"], "g").start()
    with pytest.raises(TransportError):
        await bus.create_topics([TopicSpec("zero", partitions=0)])


async def test_commit_of_a_partition_not_owned_fails() -> None:
    bus = MemoryTransport(_name())
    await bus.create_topics([TopicSpec("t", partitions=2)])
    consumer = bus.group_consumer(["t"], "g")
    await consumer.start()
    try:
        with pytest.raises(TransportError):
            await consumer.commit({("t", 5): 1})
    finally:
        await consumer.stop()


async def test_failing_on_revoke_does_not_wedge_the_group(caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryTransport(_name())
    await bus.create_topics([TopicSpec("t", partitions=2)])

    async def broken(partitions: set[TopicPartition]) -> None:
        raise RuntimeError("boom")

    first = bus.group_consumer(["t"], "g", on_revoke=broken)
    second = bus.group_consumer(["t"], "g")
    await first.start()
    try:
        await second.start()
        try:
            assert first.assignment() == {("t", 0)}
            assert second.assignment() == {("t", 1)}
        finally:
            await second.stop()
    finally:
        await first.stop()
    assert "on_revoke callback failed" in caplog.text


async def test_groups_over_several_topics_only_get_their_topics() -> None:
    bus = MemoryTransport(_name())
    await bus.create_topics([TopicSpec("a", partitions=2), TopicSpec("b", partitions=2)])
    both = bus.group_consumer(["a", "b"], "g")
    only_a = bus.group_consumer(["a"], "g")
    await both.start()
    try:
        await only_a.start()
        try:
            assert {tp[0] for tp in only_a.assignment()} <= {"a"}
            assert both.assignment() | only_a.assignment() == {
                ("a", 0),
                ("a", 1),
                ("b", 0),
                ("b", 1),
            }
        finally:
            await only_a.stop()
    finally:
        await both.stop()


async def test_lookback_start_follows_offsets_by_timestamp_not_the_newest_stamp() -> None:
    # Producer-given timestamps need not increase along a partition. Like
    # Kafka's offsets by timestamp, the start is the first offset stamped at or
    # after the target; older-stamped records after it are still delivered.
    bus = MemoryTransport(_name())
    await bus.create_topics([TopicSpec("t")])
    now = time.time()
    producer = bus.producer()
    await producer.start()
    try:
        for value, stamp in [(b"a", now - 7200), (b"b", now), (b"c", now - 7200), (b"d", now)]:
            await producer.send("t", value, timestamp=stamp)
    finally:
        await producer.stop()
    consumer = bus.group_consumer(["t"], "g", start_lookback=60.0)
    await consumer.start()
    try:
        records = await consumer.getmany(0)
    finally:
        await consumer.stop()
    assert [(r.offset, r.value) for r in records] == [(1, b"b"), (2, b"c"), (3, b"d")]
    assert records[1].timestamp == now - 7200
