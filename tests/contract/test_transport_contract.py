"""One contract, two buses: every test runs on the in-memory and the real Kafka transport.

Each test creates its own topics and groups (unique names), polls with a
deadline instead of sleeping, and stops every client it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

import pytest
from tests.helpers import wait_for

from querybus.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    PayloadTooLargeError,
    TransportError,
)
from querybus.transport import (
    GroupConsumer,
    KafkaTransport,
    PartitionReader,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
    connect,
)


class _Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


@contextlib.asynccontextmanager
async def started(client: S) -> AsyncIterator[S]:
    """Start ``client`` and always stop it, also when ``start()`` fails half-way."""
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


async def collect(
    source: PartitionReader | GroupConsumer, count: int, *, within: float = 20.0
) -> list[Record]:
    """Poll ``source`` until ``count`` records arrived (fails after ``within`` s)."""
    deadline = time.monotonic() + within
    out: list[Record] = []
    while len(out) < count:
        assert time.monotonic() < deadline, f"got {len(out)} of {count} records in {within}s"
        out.extend(await source.getmany(0.2))
    return out


async def wait_until(predicate: Callable[[], bool], *, within: float = 20.0) -> None:
    """Poll ``predicate`` until it holds; fails after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def topic(transport: Transport, name: str, partitions: int = 1) -> str:
    await transport.create_topics([TopicSpec(name, partitions=partitions)])
    return name


async def test_create_topics_is_idempotent(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = unique("create")
    compacted = unique("compacted")
    await transport.create_topics([TopicSpec(name, partitions=3)])
    # A second call, even with another partition count, leaves the topic as it is.
    await transport.create_topics(
        [TopicSpec(name, partitions=5), TopicSpec(compacted, config={"cleanup.policy": "compact"})]
    )
    assert await transport.partition_count(name) == 3
    assert await transport.partition_count(compacted) == 1

    with pytest.raises(TransportError) as info:
        await transport.partition_count(unique("missing"))
    assert not isinstance(info.value, BrokerUnavailableError)


async def test_round_trip_with_key_headers_and_tombstone(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("roundtrip"))
    async with (
        started(transport.partition_reader(name)) as reader,
        started(transport.producer()) as producer,
    ):
        before = time.time()
        first = await producer.send(
            name, b"value", key=b"key", headers=[("correlation-id", b"c-1"), ("empty", b"")]
        )
        tomb = await producer.send(name, None, key=b"key")
        records = await collect(reader, 2)

    assert [(r.partition, r.offset) for r in records] == [
        (first.partition, first.offset),
        (tomb.partition, tomb.offset),
    ]
    assert tomb.offset == first.offset + 1
    record, tombstone = records
    assert (record.topic, record.key, record.value) == (name, b"key", b"value")
    assert record.headers == (("correlation-id", b"c-1"), ("empty", b""))
    assert record.header("correlation-id") == b"c-1"
    assert record.header("absent") is None
    assert record.timestamp >= before - 5  # broker clock, same machine
    assert (tombstone.key, tombstone.value, tombstone.headers) == (b"key", None, ())


async def test_partition_order_and_consecutive_offsets(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("order"), partitions=3)
    async with started(transport.producer()) as producer:
        sent = [await producer.send(name, str(i).encode()) for i in range(30)]
    # Keyless records are spread over the partitions.
    assert len({m.partition for m in sent}) > 1

    async with started(transport.partition_reader(name, start_at="beginning")) as reader:
        records = await collect(reader, 30)
    for p in range(3):
        in_partition = [r for r in records if r.partition == p]
        assert [r.offset for r in in_partition] == list(range(len(in_partition)))
        expected = [str(i).encode() for i, m in enumerate(sent) if m.partition == p]
        assert [r.value for r in in_partition] == expected


async def test_explicit_partition(transport: Transport, unique: Callable[[str], str]) -> None:
    name = await topic(transport, unique("explicit"), partitions=4)
    async with (
        started(transport.partition_reader(name, [2])) as reader,
        started(transport.producer()) as producer,
    ):
        meta = await producer.send(name, b"two", key=b"whatever", partition=2)
        assert (meta.topic, meta.partition, meta.offset) == (name, 2, 0)
        [record] = await collect(reader, 1)
        assert (record.partition, record.value) == (2, b"two")

        with pytest.raises(TransportError):
            await producer.send(name, b"nowhere", partition=7)


async def test_same_key_same_partition(transport: Transport, unique: Callable[[str], str]) -> None:
    name = await topic(transport, unique("keyed"), partitions=4)
    async with started(transport.producer()) as producer:
        partitions = {
            (await producer.send(name, b"x", key=b"user-42")).partition for _ in range(10)
        }
        spread = {
            (await producer.send(name, b"x", key=f"k{i}".encode())).partition for i in range(40)
        }
    assert len(partitions) == 1
    assert len(spread) > 1


async def test_reader_at_end_sees_only_what_is_sent_after_start(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("end"), partitions=2)
    async with started(transport.producer()) as producer:
        for i in range(4):
            await producer.send(name, f"old-{i}".encode())
        async with started(transport.partition_reader(name)) as reader:
            # Sent right after start() returned: none may be missed.
            for i in range(6):
                await producer.send(name, f"new-{i}".encode())
            records = await collect(reader, 6)
            records.extend(await reader.getmany(0.3))
    assert sorted(r.value or b"" for r in records) == [f"new-{i}".encode() for i in range(6)]


async def test_reader_from_beginning_sees_everything(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("beginning"), partitions=2)
    async with started(transport.producer()) as producer:
        for i in range(5):
            await producer.send(name, f"r-{i}".encode())
    async with started(transport.partition_reader(name, start_at="beginning")) as reader:
        records = await collect(reader, 5)
        records.extend(await reader.getmany(0.3))
    assert sorted(r.value or b"" for r in records) == [f"r-{i}".encode() for i in range(5)]


async def test_group_members_split_partitions_and_consume_each_record_once(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("split"), partitions=4)
    group = unique("group")
    all_tps = {(name, p) for p in range(4)}
    async with (
        started(transport.group_consumer([name], group)) as first,
        started(transport.group_consumer([name], group)) as second,
    ):
        # Produce only once the group has settled, so nothing is consumed by a
        # member that then loses the partition (which would redeliver it).
        await wait_until(
            lambda: (
                first.assignment() | second.assignment() == all_tps
                and not first.assignment() & second.assignment()
                and len(first.assignment()) == 2
            )
        )
        async with started(transport.producer()) as producer:
            for i in range(40):
                await producer.send(name, str(i).encode(), partition=i % 4)

        got: dict[str, list[Record]] = {"first": [], "second": []}
        deadline = time.monotonic() + 20
        while len(got["first"]) + len(got["second"]) < 40:
            assert time.monotonic() < deadline, {k: len(v) for k, v in got.items()}
            a, b = await asyncio.gather(first.getmany(0.2), second.getmany(0.2))
            got["first"].extend(a)
            got["second"].extend(b)
        extra = await asyncio.gather(first.getmany(0.3), second.getmany(0.3))
        assert extra == [[], []]
        first_tps, second_tps = first.assignment(), second.assignment()

    values = sorted(int(r.value or b"") for r in got["first"] + got["second"])
    assert values == list(range(40))  # each exactly once
    assert {(r.topic, r.partition) for r in got["first"]} == first_tps
    assert {(r.topic, r.partition) for r in got["second"]} == second_tps


async def test_new_member_resumes_after_committed_offset(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("resume"), partitions=1)
    group = unique("group")
    async with started(transport.producer()) as producer:
        for i in range(10):
            await producer.send(name, str(i).encode())

    async with started(transport.group_consumer([name], group)) as consumer:
        records = await collect(consumer, 10)
        assert [r.offset for r in records] == list(range(10))
        # Records 0..5 are done; 6..9 were read but not finished.
        await consumer.commit({(name, 0): 6})

    async with started(transport.group_consumer([name], group)) as successor:
        again = await collect(successor, 4)
        again.extend(await successor.getmany(0.3))
    assert [r.offset for r in again] == [6, 7, 8, 9]
    assert [r.value for r in again] == [b"6", b"7", b"8", b"9"]


async def test_on_revoke_is_awaited_when_members_join_and_leave(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("revoke"), partitions=4)
    group = unique("group")
    revoked: list[set[TopicPartition]] = []
    first: GroupConsumer | None = None

    async def on_revoke(partitions: set[TopicPartition]) -> None:
        # The member still owns the partitions here: committing must work.
        assert first is not None
        await first.commit({tp: 0 for tp in partitions})
        revoked.append(partitions)

    first = transport.group_consumer([name], group, on_revoke=on_revoke)
    async with started(first):
        await wait_until(lambda: len(first.assignment()) == 4)
        assert revoked == []
        async with started(transport.group_consumer([name], group)) as second:
            # Eager rebalancing: the first member gives back everything it held.
            await wait_until(lambda: len(revoked) == 1)
            assert revoked[0] == {(name, p) for p in range(4)}
            await wait_until(lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2)
        # The second member left: the first one is asked again, then gets all four.
        await wait_until(lambda: len(first.assignment()) == 4)
        assert len(revoked) == 2
        assert len(revoked[1]) == 2


# Records stamped an hour ago are "history"; a lookback of ten minutes must skip them.
HOUR = 3600.0
LOOKBACK = 600.0


def _values(records: list[Record]) -> list[bytes]:
    return sorted(r.value or b"" for r in records)


async def test_send_stamps_the_given_timestamp(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("stamp"))
    stamp = round(time.time() - HOUR, 3)  # Kafka keeps milliseconds
    async with started(transport.producer()) as producer:
        await producer.send(name, b"old", timestamp=stamp)
        before = time.time()
        await producer.send(name, b"now")
    async with started(transport.partition_reader(name, start_at="beginning")) as reader:
        old, now = await collect(reader, 2)
    assert old.timestamp == pytest.approx(stamp, abs=0.001)
    assert now.timestamp >= before - 5  # broker clock, same machine


# -- listing and deleting topics, the timestamp of a partition's last record ------------


async def test_list_topics_by_prefix_sorted_without_internal_topics(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    prefix = unique("list") + "."
    mine = [prefix + "b", prefix + "a", prefix + "a.c"]
    other = unique("other")
    await transport.create_topics([TopicSpec(name) for name in [*mine, other]])

    assert await transport.list_topics(prefix) == sorted(mine)
    assert await transport.list_topics(prefix + "a") == [prefix + "a", prefix + "a.c"]
    assert await transport.list_topics(prefix + "none") == []
    everything = await transport.list_topics()
    assert everything == sorted(everything)
    assert {*mine, other} <= set(everything)
    assert "__consumer_offsets" not in everything


async def test_delete_topics_twice_at_once_and_unknown_ones_succeed(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    prefix = unique("delete") + "."
    keep, gone = prefix + "keep", prefix + "gone"
    await transport.create_topics([TopicSpec(keep), TopicSpec(gone)])

    # Two deleters of the same topic at once (two adapters' sweeps), and a
    # topic that never existed: no error for anybody.
    await asyncio.gather(
        transport.delete_topics([gone]),
        transport.delete_topics([gone, unique("never")]),
    )
    await transport.delete_topics([gone])
    await transport.delete_topics([])
    await wait_for(
        lambda: transport.list_topics(prefix),
        15.0,
        interval=0.1,
        message="the deleted topic to disappear",
        accept=lambda names: names == [keep],
    )


async def test_latest_timestamp_is_the_last_records_or_none(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("latest"), partitions=2)
    assert await transport.latest_timestamp(name) is None
    assert await transport.latest_timestamp(name, 1) is None

    newer = round(time.time() - 60, 3)  # Kafka keeps milliseconds
    older = round(time.time() - HOUR, 3)
    async with started(transport.producer()) as producer:
        await producer.send(name, b"first", partition=1, timestamp=newer)
        # The last record by offset counts, not the newest stamp.
        await producer.send(name, b"last", partition=1, timestamp=older)
        # An empty record (an inbox heartbeat) counts too.
        await producer.send(name, b"", partition=0, headers=[("h", b"1")], timestamp=newer)

    assert await transport.latest_timestamp(name, 1) == pytest.approx(older, abs=0.001)
    assert await transport.latest_timestamp(name) == pytest.approx(newer, abs=0.001)
    for missing_topic, partition in ((name, 2), (unique("missing"), 0)):
        with pytest.raises(TransportError) as info:
            await transport.latest_timestamp(missing_topic, partition)
        assert not isinstance(info.value, BrokerUnavailableError)


async def test_fresh_group_with_lookback_skips_history_and_reads_recent_records(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("lookback"), partitions=2)
    long_ago = time.time() - HOUR
    async with started(transport.producer()) as producer:
        # Partition 0: history, then recent records. Partition 1: history only.
        for i in range(3):
            await producer.send(name, f"old-0-{i}".encode(), partition=0, timestamp=long_ago)
            await producer.send(name, f"old-1-{i}".encode(), partition=1, timestamp=long_ago)
        for i in range(2):
            await producer.send(name, f"new-0-{i}".encode(), partition=0)

        fresh = transport.group_consumer([name], unique("group"), start_lookback=LOOKBACK)
        async with started(fresh):
            records = await collect(fresh, 2)
            records.extend(await fresh.getmany(0.5))
            assert _values(records) == [b"new-0-0", b"new-0-1"]
            assert [r.offset for r in records] == [3, 4]
            # Partition 1 had nothing recent: it starts at its end, so what is
            # sent now is read and nothing older is.
            await producer.send(name, b"new-1-0", partition=1)
            later = await collect(fresh, 1)
            later.extend(await fresh.getmany(0.3))
            assert [(r.partition, r.offset, r.value) for r in later] == [(1, 3, b"new-1-0")]

    # Without a lookback a fresh group starts at the earliest offset, as before.
    async with started(transport.group_consumer([name], unique("group"))) as everything:
        records = await collect(everything, 9)
        records.extend(await everything.getmany(0.3))
    assert len(records) == 9


async def test_lookback_never_overrides_a_committed_offset(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("committed"), partitions=2)
    group = unique("group")
    long_ago = time.time() - HOUR
    async with started(transport.producer()) as producer:
        for i in range(5):
            await producer.send(name, f"old-0-{i}".encode(), partition=0, timestamp=long_ago)
            await producer.send(name, f"old-1-{i}".encode(), partition=1, timestamp=long_ago)
        await producer.send(name, b"new-1-0", partition=1)

    async with started(transport.group_consumer([name], group)) as first:
        await collect(first, 11)
        # Partition 0 is done up to offset 2; partition 1 was never committed.
        await first.commit({(name, 0): 2})

    successor = transport.group_consumer([name], group, start_lookback=LOOKBACK)
    async with started(successor):
        records = await collect(successor, 4)
        records.extend(await successor.getmany(0.5))
    # Old as they are, partition 0's records after the commit are still owed;
    # partition 1 has no commit, so only its recent record is read.
    assert sorted((r.partition, r.offset) for r in records) == [(0, 2), (0, 3), (0, 4), (1, 5)]


async def test_partition_moved_by_a_rebalance_starts_by_time_too(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("moved"), partitions=4)
    group = unique("group")
    all_tps = {(name, p) for p in range(4)}
    long_ago = time.time() - HOUR
    async with started(transport.producer()) as producer:
        for p in range(4):
            for i in range(3):
                await producer.send(name, f"old-{p}-{i}".encode(), partition=p, timestamp=long_ago)
            await producer.send(name, f"new-{p}".encode(), partition=p)
    recent = {f"new-{p}".encode() for p in range(4)}

    async def read_recent(members: list[GroupConsumer], want: set[bytes]) -> list[Record]:
        # Nothing is committed, so each (re)assignment hands the recent record
        # of every partition out again; an old one must never appear.
        got: list[Record] = []
        deadline = time.monotonic() + 20
        while not want <= {r.value for r in got}:
            assert time.monotonic() < deadline, _values(got)
            for batch in await asyncio.gather(*(m.getmany(0.2) for m in members)):
                got.extend(batch)
        return got

    first = transport.group_consumer([name], group, start_lookback=LOOKBACK)
    async with started(first):
        seen = await read_recent([first], recent)
        second = transport.group_consumer([name], group, start_lookback=LOOKBACK)
        async with started(second):
            await wait_until(
                lambda: (
                    first.assignment() | second.assignment() == all_tps
                    and len(second.assignment()) == 2
                    and not first.assignment() & second.assignment()
                )
            )
            moved = {f"new-{p}".encode() for _, p in second.assignment()}
            seen += await read_recent([first, second], moved)
        # The second member left: its partitions move back to the first one.
        await wait_until(lambda: first.assignment() == all_tps)
        seen += await read_recent([first], moved)
        seen += await first.getmany(0.3)
    assert {r.value for r in seen} == recent, _values(seen)


async def test_negative_lookback_is_refused(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    with pytest.raises(ConfigurationError):
        transport.group_consumer(["any"], unique("group"), start_lookback=-1.0)


async def test_oversized_record_is_refused(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("big"))
    async with started(transport.producer()) as producer:
        with pytest.raises(PayloadTooLargeError):
            await producer.send(name, b"x" * 1_100_000)
        # Below the limit is fine.
        meta = await producer.send(name, b"x" * 900_000)
    assert meta.offset == 0


async def test_stop_is_harmless_twice_and_without_start(
    transport: Transport, unique: Callable[[str], str]
) -> None:
    name = await topic(transport, unique("stop"), partitions=2)
    producer = transport.producer()
    reader = transport.partition_reader(name)
    consumer = transport.group_consumer([name], unique("group"))
    for client in (producer, reader, consumer):
        await client.stop()  # never started
        await client.start()
        await client.stop()
        await client.stop()
    await transport.close()
    await transport.close()


async def test_unreachable_broker_raises_broker_unavailable() -> None:
    # Port 1 on loopback refuses connections at once; the short timeout keeps
    # a blackholed address bounded too.
    bus = connect("127.0.0.1:1", request_timeout=2.0)
    assert isinstance(bus, KafkaTransport)
    began = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailableError):
            await bus.partition_count("anything")
        with pytest.raises(BrokerUnavailableError):
            await bus.create_topics([TopicSpec("anything")])
        with pytest.raises(BrokerUnavailableError):
            await bus.list_topics()
        with pytest.raises(BrokerUnavailableError):
            await bus.latest_timestamp("anything")
        with pytest.raises(BrokerUnavailableError):
            await bus.delete_topics(["anything"])
        for client in (
            bus.producer(),
            bus.partition_reader("anything", [0]),
            bus.group_consumer(["anything"], "group"),
        ):
            with pytest.raises(BrokerUnavailableError):
                async with started(client):
                    pass
    finally:
        await bus.close()
    assert time.monotonic() - began < 10
