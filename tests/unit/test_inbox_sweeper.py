"""The inbox sweep and the inbox heartbeats, on the in-memory bus.

The sweeper's clock is injected: ages are exact, nothing waits for time to
pass. The loops (heartbeats, periodic sweeps) run with tiny intervals and are
waited for by polling, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from tests.helpers import collect, wait_for

from querybus import cancellation
from querybus.adapter.inbox import Inbox, is_heartbeat
from querybus.adapter.inbox_sweep import InboxState, InboxSweeper
from querybus.cancellation import stop_task
from querybus.config import TopicNames
from querybus.errors import BrokerAuthorizationError, BrokerUnavailableError
from querybus.protocol import Headers
from querybus.transport import MemoryTransport, Producer, Record, RecordMetadata, TopicSpec

TOPICS = TopicNames(prefix="p.")
RETIRE = 900.0
NOW = 1_700_000_000.0


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bus() -> AsyncIterator[MemoryTransport]:
    transport = MemoryTransport(f"unit-sweep-{uuid.uuid4().hex[:8]}")
    yield transport
    await transport.close()


async def make_inbox(bus: MemoryTransport, instance: str, *stamps: float) -> str:
    """An inbox topic holding one heartbeat stamped at each of ``stamps``."""
    name = TOPICS.inbox(instance)
    await bus.create_topics([TopicSpec(name)])
    producer = bus.producer()
    await producer.start()
    try:
        for stamp in stamps:
            await producer.send(name, b"", headers=[(Headers.HEARTBEAT, b"60")], timestamp=stamp)
    finally:
        await producer.stop()
    return name


def sweeper(bus: MemoryTransport, clock: Clock, own: str | None = None) -> InboxSweeper:
    return InboxSweeper(bus, TOPICS.inbox_prefix, retire_after=RETIRE, own=own, clock=clock)


# -- what a sweep keeps and what it deletes -----------------------------------------------


async def test_live_inboxes_are_kept_old_ones_deleted_and_the_own_one_never(
    bus: MemoryTransport,
) -> None:
    clock = Clock()
    live = await make_inbox(bus, "live", NOW - 3600, NOW - 30)
    old = await make_inbox(bus, "old", NOW - 7200, NOW - RETIRE - 1)
    just = await make_inbox(bus, "just", NOW - RETIRE)  # not *older* than the retire age
    own = await make_inbox(bus, "own", NOW - 7200)
    # Not an inbox: never looked at.
    await bus.create_topics([TopicSpec(TOPICS.request), TopicSpec("database.query.inbox.x")])
    sweep = sweeper(bus, clock, own=own)

    surveyed = {s.topic: s.state for s in await sweep.survey()}
    assert surveyed == {
        live: InboxState.LIVE,
        old: InboxState.RETIRED,
        just: InboxState.LIVE,
        own: InboxState.OWN,
    }
    assert old in await bus.list_topics(TOPICS.inbox_prefix)  # a survey deletes nothing

    statuses = {s.topic: s for s in await sweep.sweep()}
    assert {t: s.state for t, s in statuses.items()} == {**surveyed, old: InboxState.DELETED}
    assert statuses[old].last_record == NOW - RETIRE - 1
    assert statuses[old].age == RETIRE + 1
    assert statuses[live].age == 30
    assert await bus.list_topics(TOPICS.inbox_prefix) == sorted([live, just, own])
    assert (sweep.completed, sweep.last_started) == (1, NOW)


async def test_an_empty_inbox_is_deleted_only_once_seen_empty_for_the_retire_age(
    bus: MemoryTransport,
) -> None:
    clock = Clock()
    empty = await make_inbox(bus, "empty")
    sweep = sweeper(bus, clock)

    assert [(s.state, s.age) for s in await sweep.sweep()] == [(InboxState.EMPTY, 0.0)]
    clock.now += RETIRE
    assert [(s.state, s.age) for s in await sweep.sweep()] == [(InboxState.EMPTY, RETIRE)]
    # Another sweeper (a restarted adapter) has seen nothing yet: it starts counting.
    assert [s.state for s in await sweeper(bus, clock).sweep()] == [InboxState.EMPTY]

    clock.now += 1
    assert [s.state for s in await sweep.sweep()] == [InboxState.DELETED]
    assert await bus.list_topics(TOPICS.inbox_prefix) == []
    assert empty not in await bus.list_topics()


async def test_an_empty_inbox_that_gets_a_record_is_judged_by_that_record(
    bus: MemoryTransport,
) -> None:
    clock = Clock()
    name = await make_inbox(bus, "late")
    sweep = sweeper(bus, clock)
    assert [s.state for s in await sweep.sweep()] == [InboxState.EMPTY]

    clock.now += RETIRE + 60  # seen empty long ago, but a heartbeat came since
    await make_inbox(bus, "late", clock.now - 10)
    [status] = await sweep.sweep()
    assert (status.topic, status.state, status.age) == (name, InboxState.LIVE, 10)


async def test_two_sweepers_deleting_the_same_inboxes_at_once_both_succeed(
    bus: MemoryTransport,
) -> None:
    clock = Clock()
    old = [await make_inbox(bus, f"old-{n}", NOW - 2 * RETIRE) for n in range(3)]
    first, second = sweeper(bus, clock), sweeper(bus, clock)

    results = await asyncio.gather(first.sweep(), second.sweep())

    assert await bus.list_topics(TOPICS.inbox_prefix) == []
    for topic in old:
        states = {s.state for result in results for s in result if s.topic == topic}
        # One of them deleted it; the other found it gone (or deleted it too).
        assert InboxState.DELETED in states
        assert states <= {InboxState.DELETED, InboxState.UNKNOWN}


# -- the periodic sweep --------------------------------------------------------------------


class RefusingBus(MemoryTransport):
    """A bus whose ACLs allow everything but deleting topics."""

    refusals = 0

    async def delete_topics(self, names: Sequence[str]) -> None:
        self.refusals += 1
        raise BrokerAuthorizationError(f"delete topic {names[0]!r}: TopicAuthorizationFailedError")


class FlakyBus(MemoryTransport):
    """A bus that cannot be reached for its first ``outage`` listings."""

    outage = 2

    async def list_topics(self, prefix: str = "") -> list[str]:
        if self.outage > 0:
            self.outage -= 1
            raise BrokerUnavailableError("connect: KafkaConnectionError")
        return await super().list_topics(prefix)


async def test_a_refused_deletion_stops_the_sweep_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = RefusingBus(f"unit-sweep-{uuid.uuid4().hex[:8]}")
    old = await make_inbox(bus, "old", NOW - 2 * RETIRE)
    sweep = sweeper(bus, Clock())

    with caplog.at_level(logging.WARNING, logger="querybus.adapter"):
        # Returns by itself: the sweep is over for this adapter, not retried.
        await cancellation.wait_for(sweep.run(0.01, first_delay=0.0), 5.0)

    assert bus.refusals == 1
    assert old in await bus.list_topics(TOPICS.inbox_prefix)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "inbox sweep stopped" in warnings[0]
    assert "DELETE" in warnings[0]
    assert TOPICS.inbox_prefix in warnings[0]


async def test_a_failed_sweep_is_logged_and_the_next_one_comes_as_planned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FlakyBus(f"unit-sweep-{uuid.uuid4().hex[:8]}")
    old = await make_inbox(bus, "old", NOW - 2 * RETIRE)
    sweep = sweeper(bus, Clock())
    observer = MemoryTransport(bus.name)  # the same bus, always reachable

    with caplog.at_level(logging.WARNING, logger="querybus.adapter"):
        task = asyncio.create_task(sweep.run(0.01, first_delay=0.0))
        try:
            await wait_for(
                lambda: observer.list_topics(TOPICS.inbox_prefix),
                5.0,
                message="the old inbox to be deleted",
                accept=lambda names: old not in names,
            )
        finally:
            await stop_task(task)

    failures = [r.getMessage() for r in caplog.records if "sweeping the inboxes failed" in r.msg]
    assert len(failures) == 2, failures
    assert sweep.completed >= 1


# -- heartbeats -------------------------------------------------------------------------------


class FlakyProducer:
    """A producer whose first ``failures`` sends fail."""

    def __init__(self, inner: Producer, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

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
        if self.failures > 0:
            self.failures -= 1
            raise BrokerUnavailableError("send: KafkaConnectionError")
        return await self.inner.send(
            topic, value, key=key, partition=partition, headers=headers, timestamp=timestamp
        )


async def test_heartbeats_are_appended_and_never_handled_as_requests(
    bus: MemoryTransport,
) -> None:
    handled: list[Record] = []

    async def handle(record: Record) -> None:
        handled.append(record)

    topic = TOPICS.inbox("beating")
    inbox = Inbox(bus, topic, handle, heartbeat=0.01)
    producer = bus.producer()
    await producer.start()
    try:
        await inbox.start(producer)
        reader = bus.partition_reader(topic, start_at="beginning")
        await reader.start()
        try:
            beats = await collect(reader, 3, timeout=5.0, where=is_heartbeat)
            await producer.send(topic, b"a request")
            await wait_for(lambda: handled, 5.0, message="the request to be handled")
            beats += await collect(reader, 3, timeout=5.0, where=is_heartbeat)
        finally:
            await reader.stop()
    finally:
        await inbox.stop_reading()
        await producer.stop()

    assert [r.value for r in handled] == [b"a request"]
    assert {(r.value, r.header(Headers.HEARTBEAT)) for r in beats} == {(b"", b"0.01")}
    await inbox.stop_reading()  # harmless twice


async def test_a_failing_heartbeat_is_logged_once_and_tried_again(
    bus: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    async def handle(record: Record) -> None:
        raise AssertionError(f"nothing but heartbeats was sent: {record}")

    topic = TOPICS.inbox("flaky")
    inbox = Inbox(bus, topic, handle, heartbeat=0.01)
    producer = FlakyProducer(bus.producer(), failures=5)
    await producer.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="querybus.adapter"):
            await inbox.start(producer)
            await wait_for(lambda: bus.latest_timestamp(topic), 5.0, message="a heartbeat")
    finally:
        await inbox.stop_reading()
        await producer.stop()

    records = [r for r in caplog.records if "heartbeat to the inbox" in r.msg]
    assert [r.levelno for r in records] == [logging.WARNING] + [logging.DEBUG] * 4
    assert any("go through again" in r.msg for r in caplog.records)
