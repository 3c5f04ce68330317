"""Inbox heartbeats and the sweep of gone adapters' inboxes, on real Kafka and PostgreSQL.

Each test has its own bus (topic prefix, group), so the inboxes it lists and
deletes are its own. Heartbeat, retire age and sweep interval are tiny here
(the settings allow it when the transaction lifetime is tiny too); every wait
polls for a condition, and times in assertions are hang guards only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from tests.helpers import bounded, collect, wait_for
from tests.integration.cli_helpers import cli_env, run_cli
from tests.integration.conftest import Bus
from tests.integration.test_transactions import kafka_transport, tx_adapter
from tests.stack import Stack, UniqueNames

from querybus.adapter.inbox import Inbox, is_heartbeat
from querybus.adapter.service import AdapterService
from querybus.config import BusSettings, TopicNames
from querybus.errors import TransportError
from querybus.transport import Record, TopicSpec

#: The retire age of the sweeping adapter (and so its transactions' lifetime).
RETIRE = 2.0


async def inbox_adapter(
    bus: Bus,
    *,
    heartbeat: float = 60.0,
    sweep_interval: float = 0.0,
    retire_after: float = 900.0,
    lifetime: float = 300.0,
) -> AdapterService:
    """A started adapter of ``bus``'s group with these inbox settings
    (stopped by the ``bus`` fixture)."""
    return await tx_adapter(
        bus,
        pool_size=2,
        grace=2.0,
        lifetime=lifetime,
        inbox_heartbeat=heartbeat,
        inbox_sweep_interval=sweep_interval,
        inbox_retire_after=retire_after,
    )


@bounded(120)
async def test_a_live_adapter_deletes_a_stopped_ones_inbox_and_keeps_the_live_ones(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    topics = bus.settings.topics
    observer = await bus.transport()

    # A: an adapter that ran and stopped. Its inbox stays, holding its heartbeat.
    gone = await inbox_adapter(bus)
    await wait_for(lambda: observer.latest_timestamp(gone.inbox_topic), message="A's heartbeat")
    await gone.stop()
    assert gone.inbox_topic in await observer.list_topics(topics.inbox_prefix)

    # A live adapter's inbox elsewhere: heartbeats only.
    async def no_requests(record: Record) -> None:
        raise AssertionError(f"no request was sent to this inbox: {record}")

    live = Inbox(observer, topics.inbox("live-elsewhere"), no_requests, heartbeat=0.3)
    producer = observer.producer()
    await producer.start()
    bus._cleanups.append(producer.stop)
    live_since = time.time()
    await live.start(producer)
    bus._cleanups.append(live.stop_reading)

    # B: sweeps every 0.5 s, retires after 2 s.
    sweeper = await inbox_adapter(
        bus, heartbeat=0.3, sweep_interval=0.5, retire_after=RETIRE, lifetime=RETIRE
    )
    assert sweeper.inbox_sweeper is not None
    names = await wait_for(
        lambda: observer.list_topics(topics.inbox_prefix),
        30.0,
        interval=0.1,
        message="A's inbox to be deleted",
        accept=lambda listed: gone.inbox_topic not in listed,
    )
    assert sweeper.inbox_topic in names

    # Once B has swept at a time when the live inbox would have been retired
    # without its heartbeats, it is still there.
    await wait_for(
        lambda: (sweeper.inbox_sweeper.last_started or 0.0) > live_since + RETIRE + 0.5,
        30.0,
        message="a sweep after the live inbox's retire age",
    )
    assert {sweeper.inbox_topic, live.topic} <= set(await observer.list_topics(topics.inbox_prefix))

    # Transactions through B go on.
    table = await make_table("id int PRIMARY KEY")
    client = await bus.client(timeout=20.0)
    async with client.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
        assert await tx.fetchval(f"SELECT count(*) FROM {table}") == 1
    assert tx.info is not None
    assert tx.info.inbox == sweeper.inbox_topic
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 1


@bounded(120)
async def test_heartbeats_reach_neither_the_handler_nor_the_dead_letters(
    bus: Bus, make_table: Callable[..., Any]
) -> None:
    topics = bus.settings.topics
    svc = await inbox_adapter(bus, heartbeat=0.05)
    handled: list[Record] = []
    process = svc._process

    async def spy(record: Record, received: float, started: float) -> None:
        handled.append(record)
        await process(record, received, started)

    svc._process = spy  # type: ignore[method-assign]
    observer = await bus.transport()
    inbox = observer.partition_reader(svc.inbox_topic, start_at="beginning")
    await inbox.start()
    bus._cleanups.append(inbox.stop)
    beats = await collect(inbox, 5, where=is_heartbeat)

    # Requests through the inbox (a transaction's), among more heartbeats.
    table = await make_table("id int PRIMARY KEY")
    client = await bus.client(timeout=20.0)
    async with client.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
    beats += await collect(inbox, 5, where=is_heartbeat)
    # Then a record that is dead-lettered: once it is in the dead-letter
    # topic, every heartbeat before it would have been too.
    producer = observer.producer()
    await producer.start()
    bus._cleanups.append(producer.stop)
    await producer.send(svc.inbox_topic, b"\x00 not a request")
    dead = observer.partition_reader(topics.dead_letter, start_at="beginning")
    await dead.start()
    bus._cleanups.append(dead.stop)
    letters = await collect(dead, 1)

    assert [(r.value, is_heartbeat(r)) for r in letters] == [(b"\x00 not a request", False)]
    assert handled, "the transaction's requests went through the inbox"
    assert not [r for r in handled if is_heartbeat(r)]
    assert len(handled) >= 3  # the statement, COMMIT, the bad record
    assert all(r.value == b"" for r in beats)


# -- querybus inboxes --------------------------------------------------------------------

CLI_BOUND = 60.0


@bounded(180)
async def test_inboxes_command_lists_and_sweeps_the_retired_ones(
    stack: Stack, unique: UniqueNames, tmp_path: Path
) -> None:
    prefix = unique("cli-inbox") + "."
    topics = TopicNames(prefix=prefix)
    old, live, empty = topics.inbox("old"), topics.inbox("live"), topics.inbox("empty")
    transport = kafka_transport(stack, BusSettings())
    try:
        await transport.create_topics([TopicSpec(old), TopicSpec(live), TopicSpec(empty)])
        producer = transport.producer()
        await producer.start()
        try:
            await producer.send(old, b"", timestamp=time.time() - 7200)
            await producer.send(live, b"", timestamp=time.time() - 60)
        finally:
            await producer.stop()
        env = cli_env(stack, prefix, registry=False)

        code, out, err = await run_cli(env, tmp_path, "inboxes", "--json", bound=CLI_BOUND)
        assert code == 0, err
        listed = {entry["topic"]: entry for entry in json.loads(out)}
        assert {t: e["state"] for t, e in listed.items()} == {
            old: "retired",
            live: "live",
            empty: "empty",
        }
        assert 7100 < listed[old]["age"] < 7300
        assert (listed[empty]["age"], listed[empty]["last_record"]) == (None, None)

        code, out, err = await run_cli(env, tmp_path, "inboxes", bound=CLI_BOUND)
        assert code == 0, err
        rows = out.splitlines()
        assert any(old in row and "retired" in row and "2.0 h" in row for row in rows), out
        assert any(empty in row and "no record" in row for row in rows), out
        assert "1 retired (last record older than 900 s)" in out

        # Younger than the adapters' settings allow: a usage error, nothing deleted.
        code, out, err = await run_cli(
            env, tmp_path, "inboxes", "--sweep", "--older-than", "60", bound=CLI_BOUND
        )
        assert code == 2, (out, err)
        assert "--older-than" in err

        code, out, err = await run_cli(
            env, tmp_path, "inboxes", "--sweep", "--older-than", "3600", "--json", bound=CLI_BOUND
        )
        assert code == 0, err
        assert {e["topic"]: e["state"] for e in json.loads(out)} == {
            old: "deleted",
            live: "live",
            empty: "empty",
        }
        await wait_for(
            lambda: transport.list_topics(topics.inbox_prefix),
            15.0,
            interval=0.1,
            message="the old inbox to disappear",
            accept=lambda names: names == sorted([empty, live]),
        )
    finally:
        await transport.close()


async def _last_record_or_none(transport: Any, topic: str) -> float | None:
    try:
        return await transport.latest_timestamp(topic)  # type: ignore[no-any-return]
    except TransportError:
        return None  # not there (yet)


@bounded(120)
async def test_an_inbox_deleted_under_a_live_adapter_is_created_again(
    bus: Bus, pg: asyncpg.Connection, make_table: Callable[..., Any]
) -> None:
    """The sweep's one race (an adapter restarting under a stable instance id
    right as another sweeps its old inbox) deletes a live inbox. The
    adapter's next heartbeat fails; it finds its inbox gone, creates it
    again and reads the new one, and its transactions work."""
    observer = await bus.transport()
    svc = await inbox_adapter(bus, heartbeat=0.2)
    await wait_for(lambda: observer.latest_timestamp(svc.inbox_topic), message="a heartbeat")
    await observer.delete_topics([svc.inbox_topic])
    deleted_at = time.time()
    await wait_for(
        lambda: _last_record_or_none(observer, svc.inbox_topic),
        90,
        interval=0.2,
        accept=lambda last: last is not None and last > deleted_at,
        message="the inbox created again, with a heartbeat in it",
    )
    table = await make_table("id int PRIMARY KEY")
    client = await bus.client(timeout=20.0)
    async with client.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1)")
        await tx.execute(f"INSERT INTO {table} VALUES (2)")  # through the inbox
    assert tx.info is not None
    assert tx.info.inbox == svc.inbox_topic
    assert await pg.fetchval(f"SELECT count(*) FROM {table}") == 2
